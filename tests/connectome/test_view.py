"""The connectome explorer page without a browser: what the figure holds (columns, edges,
colour bars, axis labels, hover, area filter, snapshot slider) and the refusals of bad
input. tests/connectome/test_view_browser.py opens the pages in chromium."""
import networkx as nx
import numpy as np
import pytest

pytest.importorskip("plotly", reason="the explorer draws with plotly: pip install 'colgraph[view]'")

from colgraph import Columnformer
from colgraph.connectome import to_networkx, view, write_connectome
from colgraph.connectome.view import METRICS
from colgraph.geometry import grid, knn, sphere, stack


def connectome(geo, steps):
    return to_networkx(Columnformer(geo, channels=8, steps=steps))


@pytest.fixture(scope="module")
def stacked():
    return connectome(stack([6, 4], wiring=knn(6)), 4)


def snapshots(G, count=3, seed=0):
    """``count`` graphs of ``G``'s sheet over "training": each drops some edges (pruned)
    and adds a few (grown), weights redrawn."""
    rng = np.random.default_rng(seed)
    nodes, out = list(G.nodes), []
    H = G.copy()
    for k in range(count):
        edges = list(H.edges)
        H.remove_edges_from([edges[i] for i in rng.choice(len(edges), 5, replace=False)])
        while H.number_of_edges() < G.number_of_edges():
            u, v = rng.choice(len(nodes), 2, replace=False)
            if not H.has_edge(nodes[u], nodes[v]):
                H.add_edge(nodes[u], nodes[v], length=1.0, bias=0.0, weight=1.0)
        for _, _, d in H.edges(data=True):
            d["weight"] = float(rng.random())
        out.append((f"epoch {k + 1}", H.copy()))
    return out


def points(page, frame=-1):
    frame = frame % len(page.frames)
    return [t for t in page.figure.data if (t.meta or {}).get("role") == "points"
            and t.meta["frame"] == frame]


def test_page_shows_every_column_edges_colour_bars_and_labels(stacked, tmp_path):
    page = view(stacked, color="in_strength", top_k=2)
    assert page.columns == 52 and repr(page).startswith("ConnectomeView(columns=52")
    assert sum(len(t.x) for t in points(page)) == 52
    assert {tuple(t.meta["areas"]) for t in points(page)} == {("area0",), ("area1",)}
    edges = [t for t in page.figure.data if (t.meta or {}).get("role") == "edges"]
    segments = sum(len(t.x) for t in edges) // 3  # source, target, gap per edge
    assert segments == sum(min(2, d) for _, d in stacked.in_degree())
    assert len({t.line.width for t in edges}) > 1 and len({t.line.color for t in edges}) > 1
    bars = [t.marker.colorbar.title.text for t in page.figure.data
            if t.marker is not None and t.marker.showscale]
    assert bars[0] == "in_strength" and bars[1].startswith("edge weight")
    layout = page.figure.layout
    assert layout.xaxis.title.text.startswith("position within each area")
    assert layout.yaxis.title.text == "y"
    assert [b.label for b in layout.updatemenus[0].buttons] == ["all areas", "area0", "area1"]
    assert [b.label for b in layout.updatemenus[1].buttons] == [  # the page's metric first
        "colour: in_strength", "colour: in_degree", "colour: out_degree",
        "colour: out_strength", "colour: receptive_field"]
    assert not layout.sliders  # one graph: no slider
    hover = points(page)[0].hovertemplate
    assert "column %{text}" in hover and "in_degree" in hover and "receptive_field" in hover
    assert "(area0)" in points(page)[0].text[0]
    path = page.save(tmp_path / "sub" / "c.html")
    html = path.read_text()
    assert "plotly_click" in html and 'src="http' not in html  # plotly.js and script inlined
    assert 'id="colgraph-view"' in page._repr_html_()


@pytest.mark.parametrize("metric", METRICS)
def test_every_metric_colours_the_columns(stacked, metric):
    page = view(stacked, color=metric, top_k=1)
    colour = np.concatenate([np.asarray(t.marker.color) for t in points(page)])
    assert colour.shape == (52,) and np.isfinite(colour).all()


def test_a_node_attribute_is_a_metric_and_an_unknown_one_lists_the_choices(stacked):
    G = stacked.copy()
    nx.set_node_attributes(G, {v: float(i) for i, v in enumerate(G)}, "selectivity")
    page = view(G, color="selectivity")
    assert "selectivity: %{customdata" in points(page)[0].hovertemplate
    with pytest.raises(ValueError, match=r"Unknown colour metric 'selectivty'. Choices: area, "
                                         r"degree.*community, selectivity"):
        view(G, color="selectivty")


def test_snapshots_on_a_slider_with_grown_and_pruned_edges(stacked, tmp_path):
    snaps = snapshots(stacked)
    for label, g in snaps:
        write_connectome(g, tmp_path / "connectome" / f"epoch{int(label.split()[1]):04d}.graphml")
    page = view(stacked, snapshots=tmp_path)  # a run directory: its connectome/ folder
    assert page.frames == ["epoch 1", "epoch 2", "epoch 3", "learned"]
    steps = page.figure.layout.sliders[0].steps
    assert [s.label for s in steps] == page.frames and page.figure.layout.sliders[0].active == 3
    for f in range(4):
        assert sum(len(t.x) for t in points(page, f)) == 52
        assert all(t.visible == (f == 3) for t in points(page, f))
    changes = [t for t in page.figure.data if (t.meta or {}).get("role") == "changes"]
    assert {t.meta["frame"] for t in changes} == {1, 2, 3}
    assert any(t.name.startswith("grown") for t in changes)
    assert any(t.name.startswith("pruned") for t in changes)
    kinds = {(t.meta["frame"], t.name) for t in changes}  # split by the target's areas
    for frame, name in kinds:
        parts = [t for t in changes if (t.meta["frame"], t.name) == (frame, name)]
        assert f"({sum(t.meta['count'] for t in parts)} drawn)" in name
        assert sum(bool(t.showlegend) for t in parts) == 1  # one legend entry per kind
        assert all(len(t.x) == 3 * t.meta["count"] for t in parts)
    assert {a for t in changes for a in t.meta["areas"]} == {"area0", "area1"}
    write_connectome(stacked, tmp_path / "analysis" / "connectome.graphml")
    assert view(tmp_path).frames == ["epoch 1", "epoch 2", "epoch 3", "learned"]
    assert view(snaps[0][1], snapshots=snaps[1:]).frames == ["epoch 2", "epoch 3", "learned"]


def test_sheets_flat_and_3d_with_a_surface():
    flat = view(connectome(grid(6, wiring=knn(4)), 12), color="degree")
    assert flat.figure.layout.xaxis.title.text == "x"
    ball = view(connectome(sphere(60, wiring=knn(6)), 12), color="receptive_field")
    mesh = [t for t in ball.figure.data if t.type == "mesh3d"]
    assert len(mesh) == 1 and len(mesh[0].i) > 60  # the sphere's hull
    assert ball.figure.layout.scene.zaxis.title.text == "z"
    assert all(t.type == "scatter3d" for t in points(ball))


def test_bad_input_is_refused_with_a_way_out(stacked, tmp_path):
    G = nx.DiGraph([(0, 1), (1, 2)])
    with pytest.raises(ValueError, match="no node positions.*spring_layout"):
        view(G)
    with pytest.raises(ValueError, match="top_k must be an integer >= 1"):
        view(stacked, top_k=0)
    with pytest.raises(ValueError, match="faces= draws the surface of a 3-D sheet"):
        view(stacked, faces=np.zeros((1, 3), int))
    ball = connectome(sphere(60, wiring=knn(6)), 12)
    with pytest.raises(ValueError, match=r"Expected faces of shape \[F, 3\]"):
        view(ball, faces=np.array([[0, 1, 60]]))
    other = connectome(grid(6, wiring=knn(4)), 12)
    write_connectome(stacked, tmp_path / "connectome" / "epoch0001.graphml")
    write_connectome(other, tmp_path / "connectome" / "epoch0002.graphml")
    with pytest.raises(ValueError, match="The snapshots are of different sheets: 'epoch 2' "
                                         "has 36 columns in 2-D.*one sheet"):
        view(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no connectome.*connectome_every"):
        view(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="No connectome file or run directory"):
        view(tmp_path / "missing.graphml")
    with pytest.raises(TypeError, match=r"\(label, graph\) pairs"):
        view(stacked, snapshots=[stacked])


def test_analyze_writes_the_explorer_with_the_runs_snapshots(tmp_path):
    """colgraph-analyze writes analysis/connectome.html: the learned connectome after the
    run's snapshots (here two written by hand: the sheet as built, and with edits)."""
    import subprocess
    import sys
    from pathlib import Path

    from conftest import TINY

    root = Path(__file__).resolve().parents[2]

    def run(script, *args):
        proc = subprocess.run([sys.executable, str(root / "scripts" / script), *args],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    run("train.py", *TINY, "train.max_steps=2", f"hydra.run.dir={tmp_path}")
    built = to_networkx(tmp_path)  # the prior connectivity of the run's sheet
    alone = view(tmp_path)  # a run with a checkpoint only: its connectome
    assert alone.frames == ["checkpoint"] and alone.columns == built.number_of_nodes()
    for k, (_, g) in enumerate([("as built", built), *snapshots(built, 1)]):
        write_connectome(g, tmp_path / "connectome" / f"epoch{k:04d}.graphml")
    run("analyze.py", str(tmp_path), "--null-models", "0", "--max-batches", "1")
    html = (tmp_path / "analysis" / "connectome.html").read_text()
    for label in ("epoch 0", "epoch 1", "learned", "plotly_sliderchange", "grown since"):
        assert label in html, label
