"""What training changed: the sheet as built, per-edge changes, the metrics' change against
the prior null families, and their course over snapshots."""
import json

import matplotlib
import pytest

matplotlib.use("Agg")

from colgraph import Columnformer
from colgraph.connectome import changes, plot_changes, prior_connectome, to_networkx
from colgraph.connectome.changes import changes_summary
from colgraph.geometry import grid, knn


@pytest.fixture(scope="module")
def sheet():
    return Columnformer(grid(8, wiring=knn(8)), channels=8, steps=20)


def _planted(G, strength=1.0):
    """``G`` with four quadrant modules planted in its weights (strong within)."""
    H = G.copy()
    for u, v, d in H.edges(data=True):
        pu, pv = H.nodes[u]["pos"], H.nodes[v]["pos"]
        same = (pu[0] < 4, pu[1] < 4) == (pv[0] < 4, pv[1] < 4)
        d["weight"] = d["weight"] * (1.0 + strength if same else 1.0)
    return H


def test_the_sheet_as_built_is_the_bias_prior(sheet):
    P = prior_connectome(sheet)
    G = to_networkx(sheet)  # untrained: its bias IS the prior
    assert P.graph["weight"] == "prior softmax(bias)"
    assert sorted(P.edges) == sorted(G.edges)
    for u, v, d in P.edges(data=True):
        assert d["weight"] == pytest.approx(G.edges[u, v]["weight"], rel=1e-6)
    with pytest.raises(TypeError, match="Expected a Columnformer"):
        prior_connectome(42)


def test_planted_modules_are_a_change_beyond_both_prior_nulls(sheet):
    P = prior_connectome(sheet)
    L = _planted(P)
    half = _planted(P, 0.5)
    out = changes(L, P, [("epoch1", half)], n_null=6)
    assert out["families"] == ["prior", "prior_length"]
    assert out["edges"]["kept"] == P.number_of_edges() and out["edges"]["pruned"] == 0
    assert out["edges"]["weight_spearman"] > 0.5
    m = out["metrics"]["modularity_Q"]
    assert m["change"] > 0.05 and m["learned"] - m["as_built"] == pytest.approx(m["change"])
    assert m["nulls"]["prior_length"]["z"] > 3 and m["nulls"]["prior"]["z"] > 3
    traj = out["trajectory"]
    assert traj["labels"] == ["prior", "epoch1", "learned"]
    q = traj["modularity_Q"]["value"]
    assert q[0] < q[1] < q[2]  # half the planted strength lies between
    assert len(traj["modularity_Q"]["null"]["prior_length"]["mean"]) == 3
    json.dumps(out, allow_nan=False)  # strict JSON
    assert "modularity_Q:" in changes_summary(out) and "0 pruned" in changes_summary(out)


def test_pruned_and_grown_edges_are_counted(sheet):
    P = prior_connectome(sheet)
    L = P.copy()
    drop = list(L.edges)[:10]
    L.remove_edges_from(drop)
    u, v = 0, 63  # opposite corners: not k-NN neighbours
    assert not P.has_edge(u, v)
    L.add_edge(u, v, weight=0.5, length=9.9)
    out = changes(L, P, n_null=0)
    assert (out["edges"]["kept"], out["edges"]["grown"], out["edges"]["pruned"]) == (
        P.number_of_edges() - 10, 1, 10)
    assert out["families"] == [] and out["metrics"]["modularity_Q"]["learned"] is not None


def test_the_figure_draws_the_bands(sheet, tmp_path, monkeypatch):
    from colgraph.connectome import figures

    kept = []
    monkeypatch.setattr(figures, "_save", lambda fig, path, tight=True: kept.append(fig))
    P = prior_connectome(sheet)
    plot_changes(changes(_planted(P), P, [("e1", P)], n_null=2), tmp_path / "c.png")
    ax = kept[-1].axes[0]
    assert ax.get_title() == "modularity_Q"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["prior null ± 2 s.d.", "prior_length null ± 2 s.d.", "value"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["prior", "e1", "learned"]


def test_bad_input_is_refused(sheet):
    P = prior_connectome(sheet)
    other = prior_connectome(Columnformer(grid(5, wiring=knn(4)), channels=8, steps=20))
    with pytest.raises(ValueError, match="same columns"):
        changes(other, P, n_null=0)
    with pytest.raises(TypeError, match="str label"):
        changes(P, P, [(1, P)], n_null=0)
    with pytest.raises(ValueError, match="n_null must be an integer >= 0"):
        changes(P, P, n_null=-1)
    with pytest.raises(TypeError, match="Expected a networkx graph"):
        changes(P, "not a graph", n_null=0)
