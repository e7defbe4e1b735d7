"""Partitioning the sheet's columns across processes: Partition, partition(), renumbering."""
import importlib
import sys

import pytest
import torch

from colgraph.geometry import (Geometry, exponential, from_coords, grid, knn, sphere, stack,
                               torus, union)
from colgraph.parallel import Partition, column_weight, partition

partition_module = importlib.import_module("colgraph.parallel.partition")  # the function shadows it


def metis_or_skip():
    pytest.importorskip("pymetis")


def same_geometry(a: Geometry, b: Geometry) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    for k in sa:
        x, y = sa[k], sb[k]
        if k == "areas":
            if x.keys() != y.keys() or not all(torch.equal(x[n], y[n]) for n in x):
                return False
        elif isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            if x is None or y is None or not torch.equal(x, y):
                return False
        elif x != y:
            return False
    return True


@pytest.fixture(scope="module")
def sheet():
    """A random sheet with local + long-range wiring, an unsorted input area, an input map."""
    g = torch.Generator().manual_seed(0)
    pos = torch.rand(400, 2, generator=g) * 20
    areas = {"input": torch.randperm(400, generator=g)[:30], "output": torch.arange(390, 400)}
    input_map = torch.full((400,), -1)
    input_map[areas["input"]] = torch.arange(30)
    return from_coords(pos, union(knn(6), exponential(m=2, lam=3.0)), areas, name="random",
                       input_map=input_map)


# ---------------------------------------------------------------------- partition()
@pytest.mark.parametrize("method", ["sfc", "metis"])
def test_parts_are_contiguous_balanced_and_deterministic(sheet, method):
    if method == "metis":
        metis_or_skip()
    part = partition(sheet, 4, method)
    assert part.parts == 4 and part.method == method and (part.sizes > 0).all()
    assert torch.equal(torch.sort(part.order).values, torch.arange(400))
    assert part == partition(sheet, 4, method)  # same input, same partition
    s = part.stats(sheet)
    assert s.edges.sum() == sheet.num_edges and s.columns.tolist() == part.sizes.tolist()
    assert s.edge_balance < 1.1 and s.column_balance < 1.1
    assert s.cut_fraction < 0.3  # local wiring: most edges stay inside a part


def test_sfc_order_does_not_depend_on_parts(sheet):
    p2, p3, p7 = (partition(sheet, p) for p in (2, 3, 7))
    assert torch.equal(p2.order, p3.order) and torch.equal(p3.order, p7.order)
    assert p2.bounds.tolist() != p3.bounds.tolist()


@pytest.mark.parametrize("method", ["sfc", "metis"])
def test_one_part_is_the_identity(sheet, method, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymetis", None)  # P = 1 needs no METIS
    part = partition(sheet, 1, method)
    assert torch.equal(part.order, torch.arange(400)) and part.bounds.tolist() == [0, 400]
    assert same_geometry(part.renumber(sheet), sheet)  # one process: the sheet unchanged
    assert part.stats(sheet).cut_edges == 0 and part.stats(sheet).halo.tolist() == [0]


@pytest.mark.parametrize("parts", [4, 16])
def test_metis_cuts_a_grid_about_as_well_as_the_curve(parts):
    metis_or_skip()
    geo = grid(24, wiring=knn(8))
    sfc, metis = (partition(geo, parts, m).stats(geo) for m in ("sfc", "metis"))
    # 36 columns a part at P = 16: METIS's k-way with a tight tolerance cut half the edges
    assert metis.cut_fraction < 1.5 * sfc.cut_fraction
    assert metis.columns.max() - metis.columns.min() <= 2  # within a column or two of equal
    part = partition(geo, parts, "metis")
    place = torch.empty(geo.num_columns, dtype=torch.long)
    place[partition(geo, 2).order] = torch.arange(geo.num_columns)  # sfc place of a column
    for p in range(parts):  # inside a part, columns keep their sfc order
        assert (place[part.columns(p)].diff() > 0).all()


def test_metis_missing_is_a_clear_error(sheet, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymetis", None)
    with pytest.raises(ImportError, match=r"pip install 'colgraph\[metis\]'.*method='sfc'"):
        partition(sheet, 2, "metis")


def test_metis_leaving_a_part_empty_is_refused(sheet, monkeypatch):
    metis_or_skip()
    monkeypatch.setattr(partition_module, "_metis", lambda *args: torch.zeros(400).long().numpy())
    with pytest.raises(ValueError, match=r"METIS left 2 of 3 parts empty for 400 columns"):
        partition(sheet, 3, "metis")


def test_balance_by_columns_and_by_custom_weights(sheet):
    assert partition(sheet, 5, balance="columns").sizes.tolist() == [80] * 5
    heavy = torch.ones(400)
    heavy[7] = 1e6  # one column outweighs the rest: the others still get >= 1 column a part
    part = partition(sheet, 4, balance=heavy)
    assert (part.sizes > 0).all() and part.sizes.sum() == 400
    deg = sheet.in_degree().double()
    assert torch.allclose(column_weight(sheet), deg + deg.mean())


def test_curve_through_other_positions(sheet):
    flipped = sheet.pos.flip(1)  # the same sheet, axes swapped: another curve, same edges
    part = partition(sheet, 4, pos=flipped)
    assert torch.equal(part.order, partition(sheet, 2, pos=flipped).order)
    assert not torch.equal(part.order, partition(sheet, 4).order)
    assert part.stats(sheet).cut_fraction < 0.3
    with pytest.raises(ValueError, match=r"finite positions \[N, D\] for the 400 columns \(got "
                                         r"shape \[399, 2\]\)"):
        partition(sheet, 2, pos=flipped[:399])
    with pytest.raises(ValueError, match=r"got shape \[400, 2\], with NaN/inf"):
        partition(sheet, 2, pos=flipped.index_fill(0, torch.tensor([5]), float("nan")))


def test_every_part_nonempty_when_parts_equal_columns():
    geo = grid(3, wiring=knn(2))
    part = partition(geo, 9)
    assert part.sizes.tolist() == [1] * 9


@pytest.mark.parametrize("parts, error, match", [
    (0, ValueError, r"parts >= 1 \(got 0\)"),
    (-2, ValueError, r"parts >= 1 \(got -2\)"),
    (True, TypeError, r"integer number of parts \(got True of type bool\)"),
    (2.0, TypeError, r"integer number of parts \(got 2.0 of type float\)"),
    ("2", TypeError, r"got '2' of type str"),
    (401, ValueError, r"sheet of 400 columns \(\d+ edges\) into 401 parts.*1 would be left "
                      r"empty\. Use parts <= 400"),
])
def test_bad_parts(sheet, parts, error, match):
    with pytest.raises(error, match=match):
        partition(sheet, parts)


def test_bad_method_balance_geometry_and_positions(sheet):
    with pytest.raises(ValueError, match=r"Unknown partition method 'kway'. Choices: sfc, metis"):
        partition(sheet, 2, "kway")
    with pytest.raises(ValueError, match=r"Unknown balance 'flops'. Choices: edges, columns"):
        partition(sheet, 2, balance="flops")
    with pytest.raises(ValueError, match=r"weights of shape \[400\].*got shape \[3\]"):
        partition(sheet, 2, balance=torch.ones(3))
    with pytest.raises(TypeError, match=r"expects a colgraph.geometry.Geometry, got Tensor"):
        partition(sheet.pos, 2)
    geo = grid(4, wiring=knn(4))
    with pytest.raises(ValueError, match=r"Expected finite column positions"):
        Geometry(geo.pos.index_fill(0, torch.tensor([2]), float("nan")), geo.edge_index,
                 geo.edge_length)  # a geometry refuses NaN on construction ...
    geo.pos[2, 0] = float("nan")
    with pytest.raises(ValueError, match=r"columns \[2\] have NaN/inf \(set after"):
        partition(geo, 2)  # ... and partition catches positions changed afterwards


# ---------------------------------------------------------------------- Partition
def test_lookups_agree():
    part = Partition(torch.tensor([4, 0, 3, 1, 2]), torch.tensor([0, 2, 3, 5]), "custom")
    assert part.parts == 3 and part.num_columns == 5 and part.sizes.tolist() == [2, 1, 2]
    assert part.inverse.tolist() == [1, 3, 4, 2, 0]
    assert torch.equal(part.order[part.inverse], torch.arange(5))
    assert part.rank_of(torch.arange(5)).tolist() == [0, 0, 1, 2, 2]
    assert part.owner.tolist() == [0, 2, 2, 1, 0]  # original column -> part
    assert [part.columns(p).tolist() for p in range(3)] == [[4, 0], [3], [1, 2]]
    assert repr(part) == "Partition(columns=5, parts=3, method='custom')"
    with pytest.raises(ValueError, match=r"new column ids in \[0, 4\], got min 0, max 5"):
        part.rank_of(torch.tensor([0, 5]))
    with pytest.raises(ValueError, match=r"part index in \[0, 2\], got 3"):
        part.columns(3)


@pytest.mark.parametrize("order, bounds, match", [
    ([0, 0, 1], [0, 3], r"permutation of 0 \.\. 2"),
    ([0, 1, 3], [0, 3], r"permutation of 0 \.\. 2"),
    ([0, 1, 2], [1, 3], r"'bounds' \[P \+ 1\] from 0 to N = 3, got \[1, 3\]"),
    ([0, 1, 2], [0, 2], r"from 0 to N = 3"),
    ([0, 1, 2], [0, 2, 2, 3], r"Part 1 of the partition is empty"),
    ([], [0], r"at least one column"),
])
def test_partition_refuses_bad_plans(order, bounds, match):
    with pytest.raises(ValueError, match=match):
        Partition(torch.tensor(order, dtype=torch.long), torch.tensor(bounds), "custom")


def test_stats_match_a_brute_force_count(sheet):
    part = partition(sheet, 3)
    s = part.stats(sheet)
    owner = part.owner.tolist()
    edges = sheet.edge_index.t().tolist()
    cut = [(u, v) for u, v in edges if owner[u] != owner[v]]
    halo = [len({u for u, v in cut if owner[v] == p}) for p in range(3)]
    assert s.cut_edges == len(cut) and s.cut_fraction == pytest.approx(len(cut) / len(edges))
    assert s.halo.tolist() == halo and s.halo_fraction == pytest.approx(sum(halo) / 400)
    assert s.edges.tolist() == [sum(owner[v] == p for _, v in edges) for p in range(3)]
    sizes = part.sizes.tolist()
    assert s.max_halo_ratio == pytest.approx(max(h / c for h, c in zip(halo, sizes)))
    assert s.edge_balance == pytest.approx(max(s.edges.tolist()) / (len(edges) / 3))
    assert s.column_balance == pytest.approx(max(sizes) / (400 / 3))
    assert s.as_dict()["halo"] == halo and "cut=" in str(s)
    assert part.stats(sheet.edge_index).as_dict() == s.as_dict()  # edges or geometry
    with pytest.raises(ValueError, match=r"values in \[0, 399\].*max 400.*another sheet"):
        part.stats(torch.tensor([[0], [400]]))


def test_state_dict_loads_weights_only(sheet, tmp_path):
    part = partition(sheet, 3)
    torch.save(part.state_dict(), tmp_path / "p.pt")
    back = Partition.from_state_dict(torch.load(tmp_path / "p.pt", weights_only=True))
    assert back == part and torch.equal(back.inverse, part.inverse)
    with pytest.raises(KeyError, match=r"lacks \['bounds'\]"):
        Partition.from_state_dict({"order": part.order, "method": "sfc"})


# ---------------------------------------------------------------------- renumber
def test_renumber_keeps_every_field(sheet):
    part = partition(sheet, 4)
    new = part.renumber(sheet)
    order, inverse = part.order, part.inverse
    assert torch.equal(new.pos, sheet.pos[order])
    assert torch.equal(new.input_map, sheet.input_map[order])
    for name, idx in sheet.areas.items():  # each id mapped, the sequence (token order) kept
        assert torch.equal(new.areas[name], inverse[idx])
        assert torch.equal(order[new.areas[name]], idx)
    assert new.labels == order.tolist()  # exports keep the original ids
    assert (new.name, new.metric, new.period) == (sheet.name, sheet.metric, sheet.period)
    assert new.fingerprint() != sheet.fingerprint()
    # edges map 1:1, each with its own stored length; target-sorted, so parts own slices
    back = order[new.edge_index]
    key = lambda ei: (ei[1] * 400 + ei[0]).tolist()  # noqa: E731
    assert sorted(key(back)) == key(sheet.edge_index)
    length = dict(zip(key(sheet.edge_index), sheet.edge_length.tolist()))
    assert [length[k] for k in key(back)] == new.edge_length.tolist()
    assert (part.rank_of(new.edge_index[1]).diff() >= 0).all()


def test_renumber_then_inverse_is_the_same_geometry(sheet):
    part = partition(sheet, 4)
    new = part.renumber(sheet)
    undo = Partition(part.inverse, torch.tensor([0, 400]), "undo")
    assert same_geometry(undo.renumber(new), sheet)


def test_renumber_keeps_stored_lengths_labels_period_and_metric():
    geo = torus(6, wiring=knn(4))
    doubled = Geometry(geo.pos, geo.edge_index, geo.edge_length * 2, geo.areas, geo.period,
                       "mesh-like", [f"v{i}" for i in range(36)])
    part = partition(doubled, 3)
    new = part.renumber(doubled)
    assert torch.equal(new.period, geo.period)
    assert new.labels == [f"v{i}" for i in part.order.tolist()]
    assert torch.allclose(new.edge_length, new.measure(*new.edge_index) * 2)  # not re-measured
    ball = sphere(60, wiring=knn(5))
    assert partition(ball, 2).renumber(ball).metric == "sphere"
    with pytest.raises(ValueError, match=r"covers 36 columns but the geometry has 60"):
        part.renumber(ball)


@pytest.mark.parametrize("method", ["sfc", "metis"])
def test_stack_parts_cover_areas(method):
    if method == "metis":
        metis_or_skip()
    geo = stack([8, 6, 4], wiring=knn(8))
    part = partition(geo, 3, method)
    new = part.renumber(geo)
    for name in geo.areas:
        assert sorted(part.order[new.areas[name]].tolist()) == sorted(geo.areas[name].tolist())
