"""Maps on the sheet: Moran's I against a dense reference, spatial nulls that are calibrated
where the naive test is not, and every bad input refused before any work."""
import json

import networkx as nx
import numpy as np
import pytest

from colgraph import Columnformer
from colgraph.connectome import (map_correlation, map_report, morans_i, spatial_nulls,
                                 spin_indices, to_networkx, write_json)
from colgraph.connectome import map_nulls as nulls
from colgraph.geometry import grid, knn, sphere, torus


def smooth_noise(pos, sigma, count, seed):
    """``count`` independent smooth random maps ``[count, N]``: white noise convolved with
    a Gaussian of width ``sigma`` (dense: small sheets only)."""
    d2 = ((pos[:, None] - pos[None]) ** 2).sum(-1)
    rng = np.random.default_rng(seed)
    return (np.exp(-d2 / (2 * sigma ** 2)) @ rng.standard_normal((len(pos), count))).T


def dense_moran(W, x):
    """Moran's I, its expectation and variance under randomisation, from a dense W."""
    W = W.copy()
    np.fill_diagonal(W, 0)
    n = x.size
    z = x - x.mean()
    S0 = W.sum()
    S1 = 0.5 * ((W + W.T) ** 2).sum()
    S2 = ((W.sum(0) + W.sum(1)) ** 2).sum()
    k = n * (z ** 4).sum() / (z @ z) ** 2
    E = -1 / (n - 1)
    var = (n * ((n * n - 3 * n + 3) * S1 - n * S2 + 3 * S0 ** 2)
           - k * ((n * n - n) * S1 - 2 * n * S2 + 6 * S0 ** 2)) \
        / ((n - 1) * (n - 2) * (n - 3) * S0 ** 2) - E ** 2
    return n / S0 * (z @ W @ z) / (z @ z), E, var


# ------------------------------------------------------------------ Moran's I
def test_morans_i_of_a_smooth_map_is_large_and_significant():
    geo = grid(20, wiring=knn(8))
    x, y = geo.pos.numpy().T
    m = morans_i(geo, np.cos(np.pi * x / 19) + np.cos(np.pi * y / 19), n_perm=199)
    assert m["I"] > 0.9 and m["z"] > 20
    assert m["p"] == 1 / 200  # no relabelling comes close
    assert m["expected"] == pytest.approx(-1 / 399) and m["n"] == 400
    assert m["weights"].startswith("binary") and "note" not in m


def test_morans_i_of_noise_is_near_its_expectation_and_not_significant():
    geo = grid(20, wiring=knn(8))
    rng = np.random.default_rng(0)
    results = [morans_i(geo, rng.standard_normal(400), n_perm=199, seed=i) for i in range(20)]
    I = np.array([m["I"] for m in results])
    assert abs(I.mean() - (-1 / 399)) < 0.01  # sd of one I is ~0.025 here
    assert sum(m["p"] < 0.05 for m in results) <= 3  # ~1 of 20 expected
    assert all(abs(m["z"]) < 3.5 for m in results)


@pytest.mark.parametrize("weighted", [True, False])
def test_morans_i_matches_a_dense_reference(weighted):
    G = nx.gnp_random_graph(30, 0.15, seed=1, directed=True)
    rng = np.random.default_rng(1)
    for u, v in G.edges:
        G.edges[u, v]["weight"] = float(rng.uniform(0.1, 2.0))
    G.add_edge(3, 3, weight=5.0)  # a self-loop: not a neighbour of itself
    A = nx.to_numpy_array(G, nodelist=range(30), weight="weight" if weighted else None)
    W = A + A.T
    if not weighted:
        W = (W > 0).astype(float)
    x = rng.standard_normal(30)
    I, E, var = dense_moran(W, x)
    m = morans_i(G, x, n_perm=20_000, seed=0, weighted=weighted)
    assert m["I"] == pytest.approx(I, rel=1e-10) and m["expected"] == pytest.approx(E)
    assert m["z"] == pytest.approx((I - E) / np.sqrt(var), rel=1e-10)
    # the variance formula is the permutation distribution's: check it by brute force
    np.fill_diagonal(W, 0)
    z = x - x.mean()
    perms = np.array([rng.permutation(z) for _ in range(20_000)])
    null = 30 / W.sum() * np.einsum("pi,ij,pj->p", perms, W, perms) / (z @ z)
    assert null.mean() == pytest.approx(E, abs=0.005)
    assert null.var() == pytest.approx(var, rel=0.05)
    # the permutation p agrees with the brute-force one (20,000 draws each)
    brute = (1 + (np.abs(null - E) >= abs(I - E)).sum()) / (null.size + 1)
    assert m["p"] == pytest.approx(brute, abs=0.02)


def test_a_geometry_is_its_binary_graph_and_positions_get_a_knn_graph():
    geo = grid(8, wiring=knn(8))
    x = np.sin(geo.pos[:, 0].numpy())
    a = morans_i(geo, x, n_perm=9)
    b = morans_i(geo.to_networkx(), x, n_perm=9, weighted=False)
    assert a["I"] == pytest.approx(b["I"]) and a["z"] == pytest.approx(b["z"])
    c = morans_i(geo.pos.numpy(), x, n_perm=9)  # bare positions: 8 nearest neighbours
    assert c["I"] == pytest.approx(a["I"], rel=0.05) and "8 nearest" in c["weights"]


def test_nan_columns_are_left_out_with_their_edges():
    geo = grid(10, wiring=knn(8))
    x = np.cos(geo.pos[:, 0].numpy() / 3)
    masked = x.copy()
    masked[:10] = np.nan  # the first row of the grid
    m = morans_i(geo, masked, n_perm=19)
    assert m["n"] == 90 and "10 of 100 columns hold NaN" in m["note"]
    sub = grid(10, 9, wiring=knn(8))  # the same sheet without that row
    ref = morans_i(sub, x[10:], n_perm=19)
    assert m["I"] == pytest.approx(ref["I"], rel=0.05)


# ------------------------------------------------------------------ spin test
def test_rotations_are_proper_and_spins_reproduce():
    R = nulls._random_rotations(50, np.random.default_rng(0))
    assert R.shape == (50, 3, 3)
    assert np.allclose(np.linalg.det(R), 1.0)  # proper: no reflections
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-12)
    geo = sphere(300)
    idx = spin_indices(geo, n_perm=20, seed=3)
    assert idx.shape == (20, 300) and idx.dtype.kind == "i"
    assert idx.min() >= 0 and idx.max() < 300
    # nearest-neighbour reassignment on a near-uniform lattice: close to a permutation
    assert min(len(np.unique(row)) for row in idx) > 0.6 * 300
    assert (idx == np.arange(300)).mean() < 0.05  # and not the identity
    assert np.array_equal(idx, spin_indices(geo, n_perm=20, seed=3))
    assert not np.array_equal(idx, spin_indices(geo, n_perm=20, seed=4))
    a = geo.pos[:, 2].numpy()
    assert np.array_equal(spatial_nulls(a, geo, null="spin", n_perm=20, seed=3), a[idx])
    # a spun smooth map stays smooth: its Moran's I is kept
    spun = morans_i(geo, a[idx[0]], n_perm=1)["I"]
    assert spun == pytest.approx(morans_i(geo, a, n_perm=1)["I"], abs=0.05)


def test_spin_test_is_calibrated_on_a_sphere_where_the_naive_test_is_not():
    geo = sphere(400)
    maps = smooth_noise(geo.pos.double().numpy(), 0.4, 80, seed=0)
    results = [map_correlation(maps[2 * i], maps[2 * i + 1], geo, n_perm=200, seed=i)
               for i in range(40)]
    assert {m["null"] for m in results} == {"spin"}  # "auto" on a sphere
    spatial = np.mean([m["p_spatial"] < 0.05 for m in results])
    naive = np.mean([m["p_naive"] < 0.05 for m in results])
    assert spatial <= 0.15 and naive >= 0.4, (spatial, naive)  # measured: 0.05 and 0.82
    a = maps[0]
    b = a + 0.3 * a.std() * np.random.default_rng(1).standard_normal(a.size)
    m = map_correlation(a, b, geo, null="spin", n_perm=200)
    assert m["r"] > 0.9 and m["p_spatial"] < 0.05 and m["n_perm"] == 200


def test_spheres_are_found_from_positions_or_given_as_coordinates():
    geo = sphere(300)
    unit = geo.pos.double().numpy()
    a, b = unit[:, 2], unit[:, 2] ** 3
    moved = unit * 3.0 + [5.0, -2.0, 1.0]  # any centre and radius
    m = map_correlation(a, b, moved, n_perm=20)
    assert m["null"] == "spin" and m["sphere"] == "positions on a sphere"
    G = geo.to_networkx()  # a graph whose nodes' pos lie on a sphere
    assert map_correlation(a, b, G, n_perm=20)["null"] == "spin"
    flat = grid(15, 20)  # positions of a flat sheet, with the columns' sphere given
    m = map_correlation(a, b, flat, n_perm=20, sphere=moved)
    assert m["null"] == "spin" and m["sphere"] == "sphere= coordinates"
    assert map_correlation(a, b, flat, n_perm=20)["null"] == "moran"  # "auto" off spheres


# ------------------------------------------------------------------ moran null
def test_moran_null_is_calibrated_on_a_grid_where_the_naive_test_is_not():
    geo = grid(20, wiring=knn(8))
    maps = smooth_noise(geo.pos.double().numpy(), 3.0, 120, seed=0)
    results = [map_correlation(maps[2 * i], maps[2 * i + 1], geo, n_perm=200, seed=i)
               for i in range(60)]
    assert {m["null"] for m in results} == {"moran"}  # "auto" off spheres
    spatial = np.mean([m["p_spatial"] < 0.05 for m in results])
    naive = np.mean([m["p_naive"] < 0.05 for m in results])
    # measured over 200 pairs: 0.085 on this open grid (its edges are not stationary),
    # 0.07 on a torus; the naive test: ~0.8
    assert spatial <= 0.15 and naive >= 0.4, (spatial, naive)
    assert max(m["variance_outside"] for m in results) < 0.05  # smooth: inside the basis
    a = maps[0]
    b = a + 0.3 * a.std() * np.random.default_rng(1).standard_normal(a.size)
    m = map_correlation(a, b, geo, null="moran", n_perm=200)
    assert m["r"] > 0.9 and m["p_spatial"] < 0.05 and "note" not in m


def test_moran_surrogates_keep_the_maps_autocorrelation_on_a_torus():
    geo = torus(16, wiring=knn(8))
    a = smooth_noise(geo.pos.double().numpy(), 2.0, 1, seed=2)[0]
    surrogates = spatial_nulls(a, geo, null="moran", n_perm=20, seed=0)
    assert surrogates.shape == (20, 256)
    I = morans_i(geo, a, n_perm=1)["I"]
    kept = [morans_i(geo, s, n_perm=1)["I"] for s in surrogates]
    assert np.allclose(kept, I, atol=0.03)
    shuffled = morans_i(geo, np.random.default_rng(0).permutation(a), n_perm=1)["I"]
    assert shuffled < 0.2 < I  # unlike a plain permutation's
    assert np.allclose(np.sort(surrogates, 1).std(1), a.std(), rtol=0.3)


def test_sparse_eigensolver_matches_the_dense_one():
    W = nulls._sheet(grid(24, wiring=knn(8))).graph()  # 576 columns: the sparse path
    vals, vecs = nulls._moran_basis(W, 20)
    M = W.toarray()
    M = M - M.mean(0) - M.mean(1)[:, None] + M.mean()
    dense = np.linalg.eigvalsh(M)[::-1][:20]
    assert np.allclose(vals, dense, rtol=1e-6)
    assert np.allclose(vecs.T @ vecs, np.eye(20), atol=1e-8)
    assert np.allclose(vecs.sum(0), 0, atol=1e-8)  # orthogonal to the constant map


def test_spearman_is_the_rank_correlation_and_nulls_are_ranked_again():
    from scipy.stats import spearmanr

    geo = grid(12, wiring=knn(8))
    maps = smooth_noise(geo.pos.double().numpy(), 2.0, 2, seed=5)
    a, b = np.exp(maps[0]), maps[0] + 0.1 * maps[1]
    m = map_correlation(a, b, geo, method="spearman", n_perm=50)
    assert m["method"] == "spearman" and m["r"] == pytest.approx(spearmanr(a, b)[0])
    assert m["p_naive"] == pytest.approx(spearmanr(a, b)[1]) and 0 < m["p_spatial"] <= 1


# ------------------------------------------------------------------ bad input
def sheet():
    return grid(6, wiring=knn(8))


def good():
    return np.arange(36.0) % 7


@pytest.mark.parametrize("call, error, match", [
    (lambda: morans_i(sheet(), np.ones(35)), ValueError,
     r"Expected values of shape \[36\] \(one value per column, in column order\), got \[35\]"),
    (lambda: map_correlation(good(), np.ones((36, 2)), sheet()), ValueError,
     r"Expected b of shape \[36\]"),
    (lambda: morans_i(sheet(), np.r_[np.inf, good()[1:]]), ValueError,
     r"column 0 holds inf"),
    (lambda: morans_i(sheet(), ["a"] * 36), TypeError, r"Expected values to be numbers"),
    (lambda: morans_i(sheet(), good(), n_perm=0), ValueError,
     r"n_perm must be an integer >= 1 \(got 0\)"),
    (lambda: map_correlation(good(), good(), sheet(), n_perm=10.5), ValueError,
     r"n_perm must be an integer >= 1 \(got 10.5\)"),
    (lambda: map_correlation(good(), good(), sheet(), n_perm=True), ValueError,
     r"n_perm must be an integer"),
    (lambda: morans_i(sheet(), good(), seed=-1), ValueError, r"seed must be an integer >= 0"),
    (lambda: map_correlation(good(), good(), sheet(), seed=1.5), ValueError,
     r"seed must be an integer >= 0 \(got 1.5\)"),
    (lambda: spin_indices(sheet(), seed="0"), ValueError, r"seed must be an integer"),
    (lambda: map_correlation(good(), good(), sheet(), null="spin"), ValueError,
     r"null='spin' needs columns on a sphere: expected positions \[N, 3\] .* got positions "
     r"\[36, 2\] \(a 2-D sheet\)\. Pass sphere=.*or use null='moran'"),
    (lambda: spin_indices(grid(4, 4, wiring=knn(4)).pos.numpy() @ np.ones((2, 3))),
     ValueError, r"needs columns on a sphere.*distances from the best centre vary"),
    (lambda: map_correlation(good(), good(), sheet(), sphere=np.ones((35, 3))), ValueError,
     r"Expected sphere= coordinates of shape \[36, 3\]"),
    (lambda: map_correlation(good(), good(), sheet(), sphere=np.random.default_rng(0)
                             .normal(size=(36, 3))), ValueError,
     r"Expected sphere= points on a sphere .* not the pial or white one"),
    (lambda: map_correlation(good(), good(), sheet(), null="variogram"), ValueError,
     r"Unknown null 'variogram'. Choices: auto, spin, moran"),
    (lambda: map_correlation(good(), good(), sheet(), method="kendall"), ValueError,
     r"Unknown method 'kendall'. Choices: pearson, spearman"),
    (lambda: map_correlation(good(), good(), sheet(), n_eig=0), ValueError,
     r"n_eig must be an integer >= 1"),
    (lambda: morans_i("grid", good()), TypeError, r"Expected where= to be a colgraph Geometry"),
    (lambda: morans_i(sheet(), good(), weighted="yes"), TypeError, r"weighted must be True"),
    (lambda: morans_i(sheet(), np.r_[1.0, 2.0, 3.0, [np.nan] * 33]), ValueError,
     r"Moran's I needs at least 4 columns with a value \(got 3 of 36"),
])
def test_bad_input_is_refused_before_any_work(call, error, match, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the input was checked")

    monkeypatch.setattr(nulls, "_moran_basis", no_work)
    monkeypatch.setattr(nulls, "_spins", no_work)
    with pytest.raises(error, match=match):
        call()


def test_constant_maps_are_undefined_with_a_note():
    m = morans_i(sheet(), np.full(36, 2.0))
    assert m["I"] is None and m["z"] is None and m["p"] is None
    assert "constant" in m["note"]
    c = map_correlation(good(), np.full(36, 2.0), sheet())
    assert c["r"] is None and c["p_naive"] is None and c["p_spatial"] is None
    assert c["note"] == ("map b is constant over the 36 columns (up to float rounding): the "
                         "correlation is undefined")
    assert c["null"] == "moran"  # resolved, though no null map was needed


def test_nan_in_either_map_leaves_the_column_out_of_the_correlation():
    geo = sphere(200)
    a = geo.pos[:, 2].double().numpy()
    b = a + 0.1 * np.random.default_rng(0).standard_normal(200)
    b[:7] = np.nan
    m = map_correlation(a, b, geo, n_perm=20)
    assert m["n"] == 193 and m["note"].startswith("7 of 200 columns hold NaN in a or b")
    ref = map_correlation(a[7:], b[7:], geo.pos.numpy()[7:], n_perm=20)
    assert m["r"] == pytest.approx(ref["r"])
    assert np.isnan(spatial_nulls(b, geo, n_perm=3)[:, :7]).all()


# ------------------------------------------------------------------ the report's section
def test_map_report_is_strict_json_and_says_what_is_undefined(tmp_path):
    G = to_networkx(Columnformer(grid(8, wiring=knn(8)), channels=4, steps=1))
    m = map_report(G, n_perm=49)
    assert sorted(m["morans_i"]) == ["in_strength", "out_strength", "receptive_field"]
    # the prior softmax sums to one over each column's inputs: in-strength is constant
    assert m["morans_i"]["in_strength"]["I"] is None
    assert "constant" in m["morans_i"]["in_strength"]["note"]
    assert m["morans_i"]["receptive_field"]["weights"].startswith("weighted: w_ij + w_ji")
    c = m["correlation"]
    assert (c["a"], c["b"], c["null"], c["n_perm"]) == ("receptive_field", "out_strength",
                                                        "moran", 49)
    text = write_json(tmp_path / "m.json", m).read_text()
    back = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert back["morans_i"]["in_strength"]["z"] is None
