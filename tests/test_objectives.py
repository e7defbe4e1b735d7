import torch

from colgraph.geometry import grid, radius
from colgraph.objectives import wiring_cost, wiring_length


def local_and_uniform(geo):
    uniform = 1.0 / geo.in_degree()[geo.edge_index[1]].float()
    # all attention on each column's shortest incoming edge
    local = torch.zeros(geo.num_edges)
    for t in range(geo.num_columns):
        idx = (geo.edge_index[1] == t).nonzero().flatten()
        local[idx[geo.edge_length[idx].argmin()]] = 1.0
    return local.unsqueeze(1), uniform.unsqueeze(1)


def test_uniform_attention_costs_one_and_local_less():
    geo = grid(6, wiring=radius(2.5))
    local, uniform = local_and_uniform(geo)
    assert torch.isclose(wiring_cost([uniform], geo.edge_index, geo.edge_length), torch.tensor(1.0))
    assert wiring_cost([local], geo.edge_index, geo.edge_length) < 0.7
    assert torch.isclose(wiring_length([local], geo.edge_index, geo.edge_length), torch.tensor(1.0))


def test_cost_is_independent_of_sheet_size_and_units():
    small, big = grid(6, wiring=radius(1.5)), grid(30, wiring=radius(1.5))
    costs = []
    for geo in (small, big):
        local, _ = local_and_uniform(geo)
        costs.append(wiring_cost([local, local], geo.edge_index, geo.edge_length))
        scaled = wiring_cost([local], geo.edge_index, 10 * geo.edge_length)
        assert torch.isclose(costs[-1], scaled)
    assert abs(float(costs[0] - costs[1])) < 0.05
