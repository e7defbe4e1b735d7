"""Eigenmodes of a sheet's geometry and connectome match their analytic spectra (lattice
cosines, ring / torus Fourier modes, spherical harmonics); reconstruction accuracy behaves
as Pang et al.'s measure must; bad input is refused before any work; a trained sheet's
mode analysis lands in the report."""
import json

import matplotlib
import networkx as nx
import numpy as np
import pytest
import torch
from scipy.linalg import subspace_angles

matplotlib.use("Agg")

from colgraph import Columnformer
from colgraph.connectome import (MODE_FIGURES, Modes, connectome_modes, cotangent_laplacian,
                                 figures, geometric_modes, mode_analysis, reconstruct, report)
from colgraph.connectome import modes as modes_module
from colgraph.geometry import (Geometry, from_mesh, grid, knn, radius, ring, sphere, stack,
                               torus)


def lattice_spectrum(n):
    """Eigenvalues and (i, j) of the combinatorial Laplacian of the n x n path-graph product,
    ascending."""
    lam = 2 - 2 * np.cos(np.pi * np.arange(n) / n)
    values = (lam[:, None] + lam[None, :]).ravel()
    order = np.argsort(values, kind="stable")
    return values[order]


def lattice_mode(n, i, j):
    """cos(pi i (x + 1/2) / n) cos(pi j (y + 1/2) / n) in colgraph's row-major column order."""
    y, x = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    return (np.cos(np.pi * i * (x + 0.5) / n) * np.cos(np.pi * j * (y + 0.5) / n)).ravel()


@pytest.mark.parametrize("dense", [True, False])
def test_grid_modes_are_the_lattice_cosines(dense, monkeypatch):
    n = 7 if dense else 26  # 676 columns: the sparse shift-invert path
    if not dense:
        monkeypatch.setattr(modes_module, "DENSE_MAX", 0)
    geo = grid(n, wiring=radius(1.01))  # the 4-neighbour lattice (knn(4) is not, at borders)
    m = geometric_modes(geo, k=12, weights="binary")
    assert np.allclose(m.values, lattice_spectrum(n)[:12], atol=1e-8)
    assert m.values[1] == pytest.approx(2 - 2 * np.cos(np.pi / n))
    # the first nontrivial eigenvalue is double: compare the eigenspace with cos(x), cos(y)
    analytic = np.stack([lattice_mode(n, 1, 0), lattice_mode(n, 0, 1)], 1)
    assert np.degrees(subspace_angles(m.vectors[:, 1:3], analytic)).max() < 1e-4
    single = lattice_mode(n, 1, 1)  # 2 (2 - 2 cos(pi / n)): a simple eigenvalue
    v = m.vectors[:, 3]
    assert abs(v @ single) / np.linalg.norm(single) == pytest.approx(1.0, abs=1e-8)
    assert np.allclose(m.vectors[:, 0], 1 / n)  # the constant, normalised
    assert np.allclose(m.vectors.T @ m.vectors, np.eye(12), atol=1e-8)
    # deterministic signs: each vector's largest entry is positive (the first, on a tie:
    # a cosine is as large at both ends)
    mag = np.abs(m.vectors)
    top = np.argmax(mag >= mag.max(0) * (1 - 1e-6), axis=0)
    assert (m.vectors[top, np.arange(12)] > 0).all()
    # heat-kernel weights: every lattice edge has the median length, weight exp(-1/2)
    heat = geometric_modes(geo, k=12)
    assert np.allclose(heat.values, np.exp(-0.5) * lattice_spectrum(n)[:12], atol=1e-8)
    assert "heat kernel" in heat.operator and "binary" in m.operator


def test_sparse_and_dense_solvers_agree(monkeypatch):
    geo = sphere(700, wiring=knn(6))
    dense = geometric_modes(geo, k=9, weights="binary")  # 700 > DENSE_MAX: sparse
    monkeypatch.setattr(modes_module, "DENSE_MAX", 10 ** 6)
    assert geometric_modes(geo, k=9, weights="binary").values == pytest.approx(
        dense.values, abs=1e-9)


def test_ring_and_torus_give_fourier_modes():
    n = 24
    m = geometric_modes(ring(n, wiring=knn(2)), k=7)
    lam = np.exp(-0.5) * (2 - 2 * np.cos(2 * np.pi * np.arange(4) / n))
    assert np.allclose(m.values, [lam[0], lam[1], lam[1], lam[2], lam[2], lam[3], lam[3]])
    x = np.arange(n)
    for f in (1, 2, 3):  # each eigenvalue's pair spans cos and sin of frequency f
        fourier = np.stack([np.cos(2 * np.pi * f * x / n), np.sin(2 * np.pi * f * x / n)], 1)
        assert np.degrees(subspace_angles(m.vectors[:, 2 * f - 1:2 * f + 1], fourier)).max() < 1e-4
    side = 10
    t = geometric_modes(torus(side, wiring=knn(4)), k=20, weights="binary")
    ring_lam = 2 - 2 * np.cos(2 * np.pi * np.arange(side) / side)
    expected = np.sort((ring_lam[:, None] + ring_lam[None, :]).ravel())[:20]
    assert np.allclose(t.values, expected, atol=1e-8)
    assert list(np.round(t.values[:5], 6)).count(round(ring_lam[1], 6)) == 4  # 4-fold


def icosphere(subdivisions, r):
    """An icosahedron subdivided ``subdivisions`` times, projected on the sphere of radius
    ``r``: ``(vertices, faces)``."""
    p = (1 + 5 ** 0.5) / 2
    v = [(-1, p, 0), (1, p, 0), (-1, -p, 0), (1, -p, 0), (0, -1, p), (0, 1, p), (0, -1, -p),
         (0, 1, -p), (p, 0, -1), (p, 0, 1), (-p, 0, -1), (-p, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
         (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
         (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(u, float) / np.linalg.norm(u) for u in v]
    for _ in range(subdivisions):
        middle, faces = {}, []

        def mid(a, b):
            key = (min(a, b), max(a, b))
            if key not in middle:
                u = verts[a] + verts[b]
                verts.append(u / np.linalg.norm(u))
                middle[key] = len(verts) - 1
            return middle[key]

        for a, b, c in f:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            faces += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        f = faces
    return np.array(verts) * r, np.array(f)


def test_sphere_laplace_beltrami_gives_spherical_harmonics():
    r = 2.0
    verts, faces = icosphere(3, r)  # 642 vertices: the sparse path
    geo = from_mesh(verts, faces)
    assert geo.faces is not None and geo.faces.shape == (1280, 3)
    m = geometric_modes(geo, k=16)  # kind="auto": the mesh's triangles
    assert m.operator.startswith("cotangent Laplace-Beltrami")
    groups = [(0, 1, 0), (1, 4, 1), (4, 9, 2), (9, 16, 3)]  # multiplicities 1, 3, 5, 7
    for lo, hi, ell in groups:
        assert m.values[lo:hi] == pytest.approx(ell * (ell + 1) / r ** 2, rel=0.02, abs=1e-9)
    for (_, hi, ell), (lo, _, _) in zip(groups[:-1], groups[1:]):
        assert m.values[lo] - m.values[hi - 1] > 0.5 * (2 * (ell + 1)) / r ** 2  # gaps
    # l = 1 spans the coordinate functions x, y, z
    assert np.degrees(subspace_angles(m.vectors[:, 1:4], verts)).max() < 1.0
    B = cotangent_laplacian(verts, faces)[1]
    assert B.sum() == pytest.approx(4 * np.pi * r ** 2, rel=0.01)  # the sphere's area
    assert np.allclose(m.vectors.T @ (B @ m.vectors), np.eye(16), atol=1e-6)
    # the graph Laplacian of the same sheet is asked for explicitly
    assert "graph Laplacian" in geometric_modes(geo, k=4, kind="graph").operator


def test_faces_travel_with_the_geometry(tmp_path):
    verts, faces = icosphere(1, 1.0)
    geo = from_mesh(verts, faces, k_ring=2)
    back = Geometry.from_state_dict(torch.load(_saved(geo, tmp_path), weights_only=True))
    assert torch.equal(back.faces, geo.faces)
    assert torch.equal(geo.with_wiring(knn(3)).faces, geo.faces)
    model = Columnformer(from_mesh(verts, faces, areas={"input": [0], "output": [1]}),
                         channels=4, steps=4)
    assert torch.equal(model.geometry.faces, geo.faces)  # the model's current geometry
    from colgraph.parallel import partition

    renumbered = partition(geo, 3).renumber(geo)  # a sharded run's column order
    assert torch.equal(renumbered.pos[renumbered.faces], geo.pos[geo.faces])
    assert grid(3).faces is None and "faces" in grid(3).state_dict()
    with pytest.raises(ValueError, match="Expected 'faces' of shape"):
        Geometry(geo.pos, geo.edge_index, geo.edge_length, faces=[[0, 1, 99]])


def _saved(geo, tmp_path):
    path = tmp_path / "geo.pt"
    torch.save(geo.state_dict(), path)
    return path


def test_connectome_modes_are_normalised():
    G = nx.DiGraph()
    n = 10
    for i in range(n):  # a ring whose weights differ by direction and by column
        G.add_edge(i, (i + 1) % n, weight=1.0 + i)
        G.add_edge((i + 1) % n, i, weight=2.0)
    m = connectome_modes(G, k=5)
    A = nx.to_numpy_array(G, nodelist=range(n))
    W = A + A.T
    d = W.sum(1)
    sym = np.eye(n) - W / np.sqrt(np.outer(d, d))  # I - D^-1/2 W D^-1/2
    assert m.values == pytest.approx(np.linalg.eigvalsh(sym)[:5], abs=1e-9)
    assert np.allclose(m.vectors[:, 0], 1 / np.sqrt(d.sum()))  # D-normalised constant
    assert np.allclose(m.vectors.T @ (d[:, None] * m.vectors), np.eye(5), atol=1e-8)
    scaled = nx.DiGraph()
    scaled.add_weighted_edges_from((u, v, 7 * w) for u, v, w in G.edges(data="weight"))
    assert connectome_modes(scaled, k=5).values == pytest.approx(m.values)  # scale-free
    assert "normalised" in m.operator


# ---------------------------------------------------------------------- reconstruct
@pytest.fixture(scope="module")
def lattice():
    return geometric_modes(grid(8, wiring=radius(1.01)), k=63, weights="binary")


def test_a_combination_of_five_modes_needs_five(lattice):
    coef = np.array([3.0, 1.0, -2.0, 0.5, 1.5])
    x = lattice.vectors[:, :5] @ coef
    r = reconstruct(x, lattice, ks=range(1, 12))
    assert np.isnan(r[0])  # the first mode is the constant: no variance to correlate
    assert r[4] == pytest.approx(1.0, abs=1e-10)
    assert (r[1:4] < 0.99).all() and np.allclose(r[4:], 1.0)
    assert (np.diff(r[1:]) >= -1e-12).all()  # more modes never fit worse


def test_a_random_map_needs_almost_every_mode(lattice):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 200))
    r = reconstruct(x, lattice)  # (63, 200)
    assert r.shape == (63, 200)
    assert (np.diff(r[1:], axis=0) >= -1e-12).all()
    # k - 1 of the 63 non-constant modes catch (k - 1) / 63 of a white map's variance
    for k in (8, 32, 56):
        assert (r[k - 1] ** 2).mean() == pytest.approx((k - 1) / 63, abs=0.03)
    assert np.median(r[31]) < 0.8 and r[62].min() > 0.9


def test_reconstruct_is_least_squares_and_pearson():
    rng = np.random.default_rng(1)
    phi = rng.standard_normal((40, 6))  # any modes, not orthogonal
    x = rng.standard_normal((40, 3))
    r = reconstruct(torch.from_numpy(x), phi, ks=[2, 6])
    for j, k in enumerate([2, 6]):
        coef = np.linalg.lstsq(phi[:, :k], x, rcond=None)[0]
        fit = phi[:, :k] @ coef
        direct = [np.corrcoef(x[:, m], fit[:, m])[0, 1] for m in range(3)]
        assert r[j] == pytest.approx(direct, abs=1e-10)
    assert reconstruct(x[:, 0], phi, ks=3).shape == (1,)
    assert np.isnan(reconstruct(np.ones(40), phi, ks=[6])).all()  # a constant map: undefined


# ---------------------------------------------------------------------- bad input
def two_rings():
    a = ring(6, wiring=knn(2))
    n = a.num_columns
    pos = torch.cat([a.pos, a.pos + 100])
    edges = torch.cat([a.edge_index, a.edge_index + n], 1)
    return Geometry(pos, edges, torch.cat([a.edge_length, a.edge_length]))


@pytest.mark.parametrize("k, match", [(0, "k must be an integer >= 1"),
                                      (2.5, "k must be an integer >= 1"),
                                      (True, "k must be an integer >= 1"),
                                      (16, "k must be below the number of columns"),
                                      (30, "k must be below the number of columns")])
def test_bad_k_is_refused(k, match):
    with pytest.raises(ValueError, match=match):
        geometric_modes(grid(4, wiring=radius(1.01)), k=k)
    with pytest.raises(ValueError, match=match):
        connectome_modes(nx.cycle_graph(16, create_using=nx.DiGraph), k=k)


def test_bad_maps_and_ks_are_refused(lattice):
    with pytest.raises(ValueError, match=r"Expected maps of shape \[64\] or \[64, M\]"):
        reconstruct(np.zeros(63), lattice)
    with pytest.raises(ValueError, match=r"Expected maps of shape"):
        reconstruct(np.zeros((64, 2, 2)), lattice)
    x = np.zeros((64, 3))
    x[5, 2] = np.nan
    with pytest.raises(ValueError, match="1 NaN / inf value.*column 5 of map 2"):
        reconstruct(x, lattice)
    with pytest.raises(ValueError, match=r"integers in \[1, 63\]"):
        reconstruct(np.zeros(64), lattice, ks=[0, 3])
    with pytest.raises(ValueError, match=r"integers in \[1, 63\]"):
        reconstruct(np.zeros(64), lattice, ks=[64])


def test_a_disconnected_sheet_is_refused_or_split_into_components():
    geo = two_rings()
    with pytest.raises(ValueError, match="2 connected components .*eigenvalue 0 2 times"):
        geometric_modes(geo, k=4)
    m = geometric_modes(geo, k=5, allow_disconnected=True)
    assert m.components == 2 and m.values[:2].tolist() == [0.0, 0.0] and m.values[2] > 0
    first = np.r_[np.ones(6), np.zeros(6)] / np.sqrt(6)
    assert np.allclose(m.vectors[:, 0], first) and np.allclose(m.vectors[:, 1], first[::-1])
    for j in range(2, 5):  # every other mode lives on one ring
        v = m.vectors[:, j]
        assert np.allclose(v[:6], 0) or np.allclose(v[6:], 0)
    G = nx.DiGraph([(0, 1), (1, 0), (2, 3), (3, 2), (3, 4)])
    with pytest.raises(ValueError, match="2 connected components"):
        connectome_modes(G, k=2)


def test_a_sheet_without_edges_is_refused():
    loops = Geometry(torch.rand(5, 2), [[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]], torch.zeros(5))
    with pytest.raises(ValueError, match="has no edge between two different columns"):
        geometric_modes(loops, k=2)
    G = nx.DiGraph()
    G.add_nodes_from(range(4))
    G.add_edge(0, 0, weight=1.0)
    with pytest.raises(ValueError, match="The connectome has no edge between two different"):
        connectome_modes(G, k=2)


def test_bad_operators_are_refused():
    geo = grid(4, wiring=radius(1.01))
    with pytest.raises(ValueError, match="kind='mesh' needs the sheet's triangles"):
        geometric_modes(geo, k=3, kind="mesh")
    with pytest.raises(ValueError, match="Unknown kind 'lb'. Choices: auto, mesh, graph"):
        geometric_modes(geo, k=3, kind="lb")
    with pytest.raises(ValueError, match="Unknown weights 'gauss'. Choices: heat, binary"):
        geometric_modes(geo, k=3, weights="gauss")
    G = nx.DiGraph(nx.cycle_graph(5))  # no lengths: heat weights cannot be made
    with pytest.raises(ValueError, match="pass weights='binary'"):
        geometric_modes(G, k=2)
    assert geometric_modes(G, k=2, weights="binary").values[1] > 0
    flat = [[0.0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0]]
    with pytest.raises(ValueError, match="1 of 2 triangles have no area"):
        cotangent_laplacian(flat, [[0, 1, 2], [0, 1, 3]])
    with pytest.raises(TypeError, match="Expected a colgraph Geometry or a networkx graph"):
        geometric_modes(np.eye(3), k=1)


# ---------------------------------------------------------------------- a trained sheet
@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = Columnformer(stack([4, 3], wiring=knn(5)), channels=8, steps=2, heads=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):
        out = model(torch.randn(8, 16, 8))
        loss = out.output.pow(2).mean() + sum(a.pow(2).sum() for a in out.attention)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def tokens(batches=3):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(8, 16, 8, generator=g) for _ in range(batches)]


def test_mode_analysis_of_a_trained_sheet(trained):
    batches = iter(tokens())  # one pass only: kept for the export and the maps
    m = mode_analysis(trained, batches, k=10, samples=20)
    json.dumps(m, allow_nan=False)  # strict JSON as it is
    assert m["maps"] == 20 and m["ks"] == list(range(1, 11)) and m["columns"] == 25
    for name in ("geometric", "connectome"):
        s = m[name]
        assert len(s["eigenvalues"]) == 10 and s["eigenvalues"][0] == 0.0
        assert s["accuracy_mean"][0] is None  # k = 1: the constant mode
        acc = np.array(s["accuracy_mean"][1:], float)
        assert np.isfinite(acc).all() and (acc > -1).all() and (acc <= 1).all()
        assert (np.diff(acc) >= -1e-9).all() and s["accuracy_at_k"] == acc[-1]
    assert "heat kernel" in m["geometric"]["operator"]
    assert "attention" in m["connectome"]["operator"]
    assert any("k = [1]" in note for note in m["notes"])
    assert m["geometric_minus_connectome"] == pytest.approx(
        m["geometric"]["mean_accuracy"] - m["connectome"]["mean_accuracy"])
    with pytest.raises(ValueError, match="k must be below the number of columns"):
        mode_analysis(trained, tokens(), k=25)
    with pytest.raises(ValueError, match="needs a checkpoint path"):
        mode_analysis(trained, "test", k=5)


def test_report_writes_the_modes_section_and_figures(trained, tmp_path, monkeypatch):
    kept = []
    real_save = figures._save

    def keep(fig, path, tight=True):
        kept.append((path.name, fig))
        real_save(fig, path, tight)

    monkeypatch.setattr(figures, "_save", keep)
    import colgraph.connectome as connectome  # the other figures: tested elsewhere, slow

    monkeypatch.setattr(connectome, "plot_all", lambda G, metrics, out_dir: [])
    metrics = report(trained, tmp_path, loader=iter(tokens()), n_null=0, nulls=None, modes=40)
    for name in MODE_FIGURES:
        assert (tmp_path / name).stat().st_size > 1000, name
    saved = json.loads((tmp_path / "metrics.json").read_text(),
                       parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    section = saved["modes"]
    assert section["k"] == 24 and "k = 24: 40 modes asked" in section["notes"][0]
    assert section == json.loads(json.dumps(metrics["modes"]))
    figs = dict(kept)
    modes_fig = figs["modes.png"]
    panels = [ax for ax in modes_fig.axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 6 and len(modes_fig.axes) == 12  # a colour bar per mode
    assert panels[0].get_title().startswith("mode 2: eigenvalue")  # the constant is skipped
    assert "area0" in [t.get_text() for t in panels[0].texts]  # a stack laid out flat
    ax = figs["reconstruction.png"].axes[0]
    assert ax.get_xlabel() == "number of modes k" and "Pearson" in ax.get_ylabel()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0].startswith("geometric") and labels[1].startswith("connectome")
    # without data: no mode analysis
    bare = report(trained, tmp_path / "prior", loader=None, n_null=0, nulls=None)
    assert "modes" not in bare and not (tmp_path / "prior" / "modes.png").exists()
    with pytest.raises(ValueError, match="modes must be an integer >= 0"):
        report(trained, tmp_path / "bad", loader=None, modes=-1)


def test_modes_figure_of_a_sphere_is_3d(tmp_path, monkeypatch):
    kept = []
    monkeypatch.setattr(figures, "_save", lambda fig, path, tight=True: kept.append(fig))
    geo = sphere(300, wiring=knn(6))
    modes_module.plot_modes(geo, geometric_modes(geo, k=8), tmp_path / "m.png")
    panels = [ax for ax in kept[0].axes if ax.get_label() != "<colorbar>"]
    assert len(panels) == 6 and all(ax.name == "3d" for ax in panels)
    assert isinstance(geometric_modes(geo, k=2), Modes)
