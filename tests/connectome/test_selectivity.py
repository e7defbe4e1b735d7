"""Class selectivity: d' per column and class from responses, streamed over batches from a
model, as node attributes, a figure on the sheet and a part of the report."""
import json

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from colgraph import Columnformer
from colgraph.connectome import (add_selectivity, class_selectivity, figures, plot_selectivity,
                                 read_connectome, report, selectivity_from_responses,
                                 to_networkx)
from colgraph.connectome.selectivity import _ClassMoments
from colgraph.geometry import grid, knn, sphere, stack
from colgraph.objectives import column_activity


def one_selective_column(samples=600, columns=6, seed=0):
    """Responses where column 3 responds (by +2) only to class 2; the rest is noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(samples) % 4
    r = rng.normal(size=(samples, columns))
    r[:, 3] += 2.0 * (y == 2)
    return r, y


def test_a_column_that_responds_to_one_class_prefers_it():
    r, y = one_selective_column()
    s = selectivity_from_responses(r, y)
    assert s["dprime"].shape == (6, 4) and list(s["classes"]) == [0, 1, 2, 3]
    assert s["preferred_class"][3] == 2 and s["selectivity"][3] > 1.8
    others = np.delete(s["dprime"], 3, axis=0)
    assert np.abs(others).max() < 0.35  # noise: d' near 0 for every other column and class
    assert np.abs(s["dprime"][3, [0, 1, 3]]).max() < 1.0  # and only class 2 stands out
    # d' as defined: (mean_c - mean_rest) / sqrt((var_c + var_rest) / 2)
    c, rest = r[y == 2, 3], r[y != 2, 3]
    expected = (c.mean() - rest.mean()) / np.sqrt((c.var(ddof=1) + rest.var(ddof=1)) / 2)
    assert s["dprime"][3, 2] == pytest.approx(expected, rel=1e-10)
    assert list(s["samples"]) == [150] * 4 and "note" not in s


def test_batches_accumulate_to_the_whole_data_set():
    r, y = one_selective_column()
    r = r + 1000.0  # far from 0: the shifted sums keep their precision
    streamed = _ClassMoments(6)
    for i in range(0, 600, 64):
        streamed.add(r[i:i + 64], y[i:i + 64])
    whole = selectivity_from_responses(r, y)
    assert np.allclose(streamed.result()["dprime"], whole["dprime"], rtol=1e-8)


def test_undefined_d_primes_say_why():
    r, y = one_selective_column(samples=41)
    r[:, 0] = 5.0  # responds the same to everything
    y = y.copy()
    y[-1] = 7  # a class with one sample
    s = selectivity_from_responses(r, y)
    assert list(s["classes"]) == [0, 1, 2, 3, 7]
    assert np.isnan(s["dprime"][:, 4]).all()
    assert s["preferred_class"][0] == -1 and np.isnan(s["selectivity"][0])
    assert "class(es) [7] have fewer than 2 samples" in s["note"]
    assert "1 column(s) respond the same to every sample" in s["note"]


@pytest.mark.parametrize("responses, labels, match", [
    (np.zeros(10), np.zeros(10, int), r"Expected responses of shape \[S, N\]"),
    (np.full((4, 3), np.nan), np.zeros(4, int), r"Expected finite responses"),
    (np.zeros((4, 3)), np.zeros(4), r"Expected integer class labels of shape \[4\]"),
    (np.zeros((4, 3)), np.zeros(5, int), r"Expected integer class labels of shape \[4\]"),
    (np.zeros((4, 3)), np.array([0, 1, -1, 0]), r"Expected class labels >= 0 .* got -1"),
])
def test_bad_responses_and_labels_are_refused(responses, labels, match):
    with pytest.raises(ValueError, match=match):
        selectivity_from_responses(responses, labels)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Columnformer(grid(6, wiring=knn(8)), channels=8, steps=2, heads=2)


def labelled(n=3, batch=20):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(batch, 36, 8, generator=g), torch.arange(batch) % 3) for _ in range(n)]


def test_through_a_model_it_is_the_selectivity_of_the_column_activity(model):
    batches = labelled()
    model.train()
    s = class_selectivity(model, batches)
    assert model.training  # measured in eval mode, then put back
    model.eval()
    with torch.no_grad():
        r = torch.cat([column_activity(model(x).state) for x, _ in batches]).double().numpy()
    ref = selectivity_from_responses(r, torch.cat([y for _, y in batches]).numpy())
    assert s["dprime"].shape == (36, 3)
    assert np.allclose(s["dprime"], ref["dprime"], rtol=1e-6, atol=1e-9)
    assert np.array_equal(s["preferred_class"], ref["preferred_class"])
    assert "RMS over channels" in s["response"]
    assert class_selectivity(model, batches, max_batches=1)["samples"].sum() == 20


def test_class_selectivity_refuses_what_it_cannot_measure(model):
    with pytest.raises(ValueError, match=r"Expected \(x, y\) batches with class labels"):
        class_selectivity(model, [torch.randn(4, 36, 8)])
    with pytest.raises(ValueError, match=r"Expected integer class labels of shape \[4\] in "
                                         r"batch 0"):
        class_selectivity(model, [(torch.randn(4, 36, 8), torch.randn(4))])
    with pytest.raises(ValueError, match="loader must be 'test'"):
        class_selectivity(model, None)
    with pytest.raises(ValueError, match="loader='test' needs a checkpoint path"):
        class_selectivity(model, "test")
    with pytest.raises(ValueError, match="max_batches must be an integer >= 1"):
        class_selectivity(model, labelled(), max_batches=0)
    with pytest.raises(ValueError, match="The loader yielded no batches"):
        class_selectivity(model, [])


def test_node_attributes_and_the_figure(model, tmp_path, monkeypatch):
    G = add_selectivity(to_networkx(model), class_selectivity(model, labelled()))
    d = G.nodes[0]
    assert isinstance(d["preferred_class"], int) and isinstance(d["selectivity"], float)
    kept = []
    monkeypatch.setattr(figures, "_save", lambda fig, path, tight=True: kept.append(fig))
    plot_selectivity(G, tmp_path / "s.png")
    ax = kept[-1].axes[0]
    assert ax.get_title().startswith("Preferred class per column (opacity and size: "
                                     "selectivity d'")
    assert ax.get_xlabel() == "x" and ax.get_ylabel() == "y"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    classes = sorted(set(int(G.nodes[v]["preferred_class"]) for v in G))
    counts = [sum(G.nodes[v]["preferred_class"] == c for v in G) for c in classes]
    assert legend == [f"class {c} ({n} column{'s' if n != 1 else ''})"
                      for c, n in zip(classes, counts)]
    with pytest.raises(ValueError, match="plot_selectivity needs the node attributes"):
        plot_selectivity(to_networkx(model), tmp_path / "t.png")
    with pytest.raises(ValueError, match="Expected selectivity for the graph's 36 columns"):
        add_selectivity(to_networkx(model), {"selectivity": np.zeros(3),
                                             "preferred_class": np.zeros(3, int)})


@pytest.mark.parametrize("geo, kind", [(stack([4, 3], wiring=knn(5)), "areas"),
                                       (sphere(60, wiring=knn(6)), "3d")])
def test_the_figure_lays_out_stacks_and_spheres_as_the_other_sheet_figures(geo, kind,
                                                                           monkeypatch, tmp_path):
    G = geo.to_networkx()  # the geometry's graph: pos and areas, as a connectome has them
    rng = np.random.default_rng(0)
    add_selectivity(G, {"selectivity": rng.uniform(0, 2, geo.num_columns),
                        "preferred_class": rng.integers(0, 12, geo.num_columns)})
    kept = []
    monkeypatch.setattr(figures, "_save", lambda fig, path, tight=True: kept.append(fig))
    plot_selectivity(G, tmp_path / "s.png")
    ax = kept[-1].axes[0]
    assert (ax.name == "3d") == (kind == "3d")
    if kind == "areas":
        assert ax.get_xlabel() == "position within each area (areas side by side)"
        assert {t.get_text() for t in ax.texts} == {"area0", "area1"}
    assert len(ax.get_legend().get_texts()) == len(set(
        G.nodes[v]["preferred_class"] for v in G))  # 12 classes: tab20 colours


def test_report_adds_selectivity_maps_and_the_figure(model, tmp_path):
    loader = (batch for batch in labelled())  # one pass only: the report reads it twice
    m = report(model, tmp_path, loader=loader, n_null=1, n_perm=49)
    maps = m["maps"]
    assert sorted(maps["morans_i"]) == ["in_strength", "out_strength", "receptive_field",
                                        "selectivity"]
    assert maps["correlation"]["a"] == "receptive_field"
    assert maps["correlation"]["b"] == "selectivity"
    assert maps["correlation"]["null"] == "moran" and maps["correlation"]["n_perm"] == 49
    assert (tmp_path / "selectivity.png").stat().st_size > 5000
    G = read_connectome(tmp_path / "connectome.graphml")
    assert {"selectivity", "preferred_class"} <= set(G.nodes[0])
    text = (tmp_path / "metrics.json").read_text()
    back = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert back["maps"]["morans_i"]["selectivity"]["n"] == 36
    assert any(n.startswith("maps: Moran's I of in_strength: the map is constant") and
               "sum to one over each column's inputs" in n for n in back["notes"])


def test_report_without_labels_says_so(model, tmp_path):
    m = report(model, tmp_path, loader=[torch.randn(4, 36, 8)], n_null=1, n_perm=9)
    assert "selectivity: n/a: the loader's batches carry no class labels (x, y)" in m["notes"]
    assert "selectivity" not in m["maps"]["morans_i"]
    assert m["maps"]["correlation"]["b"] == "out_strength"
    assert not (tmp_path / "selectivity.png").exists()
    with pytest.raises(ValueError, match="n_perm must be an integer >= 1"):
        report(model, tmp_path / "bad", loader=None, n_perm=0)
    assert not (tmp_path / "bad").exists()
