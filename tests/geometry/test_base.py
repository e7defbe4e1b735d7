import pytest
import torch

from colgraph.geometry import Geometry, grid, knn


def make(pos=None, edge_index=None, length=None, areas=None):
    pos = torch.rand(4, 2) if pos is None else pos
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]]) if edge_index is None else edge_index
    length = torch.ones(edge_index.size(1) if edge_index.dim() == 2 else 4) if length is None else length
    return Geometry(pos, edge_index, length, areas or {})


def test_canonical_order_is_target_then_source():
    geo = make(edge_index=torch.tensor([[3, 0, 2, 1, 1], [0, 1, 0, 3, 2]]),
               length=torch.arange(1.0, 6.0))
    assert geo.edge_index.tolist() == [[2, 3, 0, 1, 1], [0, 0, 1, 2, 3]]
    assert geo.edge_length.tolist() == [3.0, 1.0, 2.0, 5.0, 4.0]  # lengths follow their edges


def test_edge_index_wrong_shape():
    with pytest.raises(ValueError, match=r"'edge_index' to have shape \[2, E\] \(got \[3, 4\]\)"):
        make(edge_index=torch.zeros(3, 4, dtype=torch.long), length=torch.ones(4))


def test_edge_index_out_of_range():
    with pytest.raises(ValueError, match=r"values in \[0, 3\].*max 7"):
        make(edge_index=torch.tensor([[0, 7], [1, 2]]), length=torch.ones(2))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_positions(bad):
    pos = torch.rand(4, 2)
    pos[2, 1] = bad
    with pytest.raises(ValueError, match=r"NaN/inf at columns \[2\]"):
        make(pos=pos)


def test_area_with_missing_columns():
    with pytest.raises(ValueError, match="Area 'V1' names columns outside"):
        make(areas={"V1": torch.tensor([0, 9])})


def test_unknown_area_lists_choices():
    geo = make(areas={"V1": torch.tensor([0, 1])})
    with pytest.raises(KeyError, match="Unknown area 'IT'.*V1"):
        geo.area("IT")


def test_duplicate_edges_rejected():
    ring = [[0, 1, 2, 3, 0], [1, 2, 3, 0, 1]]
    with pytest.raises(ValueError, match="Duplicate edge 0 -> 1"):
        make(edge_index=torch.tensor(ring), length=torch.ones(5))


def test_zero_length_between_distinct_columns_rejected():
    with pytest.raises(ValueError, match="Edge 1 -> 2 joins two different columns but has length 0"):
        make(length=torch.tensor([1.0, 0.0, 1.0, 1.0]))


def test_self_loops_may_have_zero_length():
    ei = torch.tensor([[0, 1, 2, 3, 0], [1, 2, 3, 0, 0]])
    geo = make(edge_index=ei, length=torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0]))
    assert geo.num_edges == 5


def test_duplicate_positions_rejected():
    pos = torch.rand(4, 2)
    pos[3] = pos[1]
    with pytest.raises(ValueError, match=r"Columns \[1, 3\] share a position"):
        make(pos=pos)


def test_columns_without_inputs_rejected():
    with pytest.raises(ValueError, match=r"1 column\(s\) have no incoming edges \(e.g. \[3\]\)"):
        make(edge_index=torch.tensor([[0, 1, 2], [1, 2, 0]]), length=torch.ones(3))


def test_negative_length_rejected():
    with pytest.raises(ValueError, match="non-negative 'edge_length'"):
        make(length=torch.tensor([1.0, -1.0, 1.0, 1.0]))


def test_state_dict_round_trip_and_fingerprint():
    geo = grid(5, wiring=knn(4))
    back = Geometry.from_state_dict(geo.state_dict())
    assert torch.equal(back.edge_index, geo.edge_index)
    assert back.fingerprint() == geo.fingerprint()
    assert grid(5, wiring=knn(3)).fingerprint() != geo.fingerprint()
    assert "columns=25" in repr(geo)
