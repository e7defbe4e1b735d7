"""Every analysis figure carries its labelled elements: titles, axis labels, colour bars,
legends; constant panels are dropped, stacks are drawn flat, each area on its own scale."""
import matplotlib
import pytest

matplotlib.use("Agg")

from colgraph import Columnformer
from colgraph.connectome import analyze, figures, plot_all, plot_sheet, to_networkx
from colgraph.connectome.analysis import arrays
from colgraph.curves import plot_training
from colgraph.geometry import grid, knn, sphere, stack


@pytest.fixture
def kept(monkeypatch):
    """The figures as they would be saved, kept open for inspection."""
    saved = []
    monkeypatch.setattr(figures, "_save", lambda fig, path, tight=True: saved.append(fig))
    return saved


def colorbars(fig):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def connectome(geo, steps):
    return to_networkx(Columnformer(geo, channels=8, steps=steps))


@pytest.fixture(scope="module")
def stacked():
    return connectome(stack([6, 4], wiring=knn(6)), 4)


def test_layouts_flat_areas_and_3d():
    assert figures.layout(arrays(connectome(stack([6, 4], wiring=knn(6)), 4)))[1] == "areas"
    assert figures.layout(arrays(connectome(grid(6, wiring=knn(4)), 12)))[1] == "flat"
    assert figures.layout(arrays(connectome(sphere(120, wiring=knn(6)), 12)))[1] == "3d"
    xy, _ = figures.layout(arrays(connectome(stack([6, 4], wiring=knn(6)), 4)))
    a = arrays(connectome(stack([6, 4], wiring=knn(6)), 4))
    assert xy[a.areas["area0"], 0].max() < xy[a.areas["area1"], 0].min()  # side by side


def test_sheet_has_arrows_colour_bar_and_legend(kept, stacked, tmp_path):
    plot_sheet(stacked, tmp_path / "s.png")
    fig = kept[-1]
    ax = fig.axes[0]
    assert "source -> target" in ax.get_title()
    assert ax.get_xlabel() and ax.get_ylabel() == "y"
    (cbar,) = colorbars(fig)
    assert "edge weight" in cbar.get_ylabel()
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"area0", "area1"}
    assert any(type(c).__name__ == "Quiver" for c in ax.collections)  # directed arrows


def test_degrees_drop_constant_panels_and_split_by_area(kept, stacked, tmp_path):
    figures.plot_degrees(arrays(stacked), tmp_path / "d.png")
    fig = kept[-1]
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    # k-NN wiring: in-degree 6 everywhere; the prior's weights sum to 1 per column
    assert "in-degree" not in titles and not any(t.startswith("in-strength") for t in titles)
    assert "in-degree = 6 for every column" in fig._suptitle.get_text()
    assert "out-degree" in titles
    for ax in fig.axes:
        if ax.axison:
            assert ax.get_ylabel() == "columns" and ax.get_xlabel()
            assert {t.get_text() for t in ax.get_legend().get_texts()} == {"area0", "area1"}


def test_receptive_fields_each_area_on_its_own_scale(kept, tmp_path):
    G = connectome(stack([6, 4], wiring=knn(6)), 4)
    for e in G.edges:  # make the two areas' sizes differ tenfold
        G.edges[e]["length"] *= 10.0 if G.nodes[e[1]]["area"].startswith("area1") else 1.0
    figures.plot_receptive_fields(arrays(G), tmp_path / "r.png")
    fig = kept[-1]
    bars = colorbars(fig)
    assert len(bars) == 2 and all("receptive-field size" in b.get_ylabel() for b in bars)
    (lo0, hi0), (lo1, hi1) = (b.get_ylim() for b in bars)
    assert hi1 > 5 * hi0  # not one shared scale
    assert [ax.get_title() for ax in fig.axes if ax not in bars] == ["area0 (36 columns)",
                                                                  "area1 (16 columns)"]


def test_receptive_fields_of_a_sphere_are_drawn_in_3d(kept, tmp_path):
    figures.plot_receptive_fields(arrays(connectome(sphere(120, wiring=knn(6)), 12)),
                                  tmp_path / "r.png")
    assert all(ax.name == "3d" for ax in kept[-1].axes if ax.get_label() != "<colorbar>")


def test_lengths_fit_is_clipped_to_the_data(kept, stacked, tmp_path):
    m = analyze(stacked, n_null=1)
    figures.plot_lengths(m, tmp_path / "l.png")
    ax = kept[-1].axes[0]
    assert ax.get_xlabel().startswith("edge length") and "density" in ax.get_ylabel()
    assert "exponential distance rule" in ax.get_title()
    (fit,) = ax.get_lines()
    x, y = fit.get_data()
    lo, hi = ax.get_ylim()
    assert y.min() >= lo and y.max() <= hi  # no decades below the data
    assert x.max() <= m["edr"]["hist_edges"][-1] + 1e-9
    assert "EDR fit" in ax.get_legend().get_texts()[0].get_text()


def test_flow_has_colour_bar_and_axis_names(kept, stacked, tmp_path):
    figures.plot_flow(analyze(stacked, n_null=1), tmp_path / "f.png")
    fig = kept[-1]
    assert "share of target's input" in colorbars(fig)[0].get_ylabel()
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("to") and ax.get_ylabel().startswith("from")
    assert "feedforward index" in ax.get_title()


def test_plot_all_writes_every_figure(stacked, tmp_path):
    paths = plot_all(stacked, analyze(stacked, n_null=1), tmp_path)
    assert [p.name for p in paths] == list(figures.FIGURES) + ["significance.png"]
    assert all(p.stat().st_size > 5000 for p in paths)
    names = [p.name for p in plot_all(stacked, analyze(stacked, n_null=0), tmp_path / "no")]
    assert names == list(figures.FIGURES)  # no null tests: no significance figure


def test_significance_figure_marks_the_band(kept, stacked, tmp_path):
    sig = analyze(stacked, n_null=2)["significance"]
    figures.plot_significance(sig, tmp_path / "s.png")
    ax = kept[-1].axes[0]
    assert ax.get_xlabel().startswith("z = ") and "2 samples per family" in ax.get_title()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert set(labels) == set(sig["families"]) | {"|z| < 3"}
    assert [t.get_text() for t in ax.get_yticklabels()][0] == "modularity_Q"


def test_training_curves(tmp_path, monkeypatch):
    rows = ["epoch,step,train_loss,train_acc,lr,edges,test_acc,test_loss,wiring_length",
            "1,10,2.0,0.3,0.001,100,,,",  # an unevaluated epoch: empty cells
            "2,20,1.5,0.5,0.002,90,0.55,1.4,1.9",
            "3,30,1.0,0.7,0.001,80,0.72,1.1,1.7"]
    (tmp_path / "metrics.csv").write_text("\n".join(rows) + "\n")
    import matplotlib.pyplot as plt

    kept = []
    monkeypatch.setattr(plt.Figure, "savefig", lambda self, *a, **k: kept.append(self))
    plot_training(tmp_path, tmp_path / "training.png")
    fig = kept[-1]
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert titles == ["loss", "accuracy", "attention-weighted wiring length", "learning rate",
                      "edges (plasticity)"]
    loss = fig.axes[0]
    assert loss.get_xlabel() == "epoch" and loss.get_ylabel() == "loss"
    assert [t.get_text() for t in loss.get_legend().get_texts()] == ["train", "test"]
    assert list(loss.get_lines()[1].get_xdata()) == [2.0, 3.0]  # test: evaluated epochs only


def test_training_curves_need_metrics(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No metrics file at .*metrics.csv"):
        plot_training(tmp_path, tmp_path / "t.png")
    (tmp_path / "metrics.csv").write_text("epoch,step\n")
    with pytest.raises(ValueError, match=r"holds no rows yet"):
        plot_training(tmp_path, tmp_path / "t.png")


def test_topography_figure(kept, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    d = rng.uniform(0, 10, 500)
    figures.plot_topography(d, np.exp(-d / 3) + 0.05 * rng.standard_normal(500),
                            tmp_path / "t.png", smoothness=0.12)
    ax = kept[-1].axes[0]
    assert "distance between columns" in ax.get_xlabel()
    assert "response correlation" in ax.get_ylabel()
    assert "smoothness (neighbours - random pairs) = 0.120" in ax.get_title()
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"± 1 s.d.",
                                                                 "mean over column pairs"}


def test_plasticity_history_figure(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from colgraph.plasticity import plot_history

    rows = ["step,edges,removed,added,mean_edge_length,added_mean_length,"
            "attention_weighted_length",
            "10,100,10,10,1.5,2.0,1.2", "20,90,20,10,1.4,nan,1.1"]
    (tmp_path / "plasticity.csv").write_text("\n".join(rows) + "\n")
    kept = []
    monkeypatch.setattr(plt.Figure, "savefig", lambda self, *a, **k: kept.append(self))
    plot_history(tmp_path, tmp_path / "p.png")
    axes = kept[-1].axes
    assert [ax.get_title() for ax in axes] == ["edges E", "edges changed per update",
                                              "wiring length"]
    assert all(ax.get_xlabel() == "optimizer step" and ax.get_ylabel() for ax in axes)
    assert [t.get_text() for t in axes[1].get_legend().get_texts()] == ["added", "removed"]
