import pytest

from colgraph import Columnformer
from colgraph.geometry import grid, knn, stack


def test_hops_from_and_reachability():
    geo = stack([4, 4, 4], spacing=1.0, wiring=knn(4), inter="feedforward", inter_k=1)
    hops = geo.hops_from(geo.area("input"))
    assert hops[geo.area("area0")].max() == 0
    assert geo.check_reachable("input", "output", steps=4) == int(hops[geo.area("output")].max())
    with pytest.raises(ValueError, match=r"'output' is 2 hops from input area 'input', but the "
                                         r"model runs 1 steps.*model.steps=2"):
        geo.check_reachable("input", "output", steps=1)
    with pytest.raises(ValueError, match="Output area 'output' is 2 hops"):
        Columnformer(geo, channels=8, steps=1)


def test_unreachable_output():
    # feedforward only: nothing flows from the top area back down
    geo = stack([3, 3], spacing=1.0, wiring=knn(3), inter="feedforward", inter_k=1)
    with pytest.raises(ValueError, match="cannot be reached from input area 'output'"):
        geo.check_reachable("output", "input", steps=10)


def test_summary_lists_areas():
    text = stack([4, 2], wiring=knn(3)).summary()
    assert "area0" in text and "area1" in text and "deg min/mean/max" in text


@pytest.mark.parametrize("geo", [grid(6, wiring=knn(4)), stack([4, 2], wiring=knn(3))],
                         ids=["2d", "3d"])
def test_plot_writes_figure(tmp_path, geo):
    path = tmp_path / "geo.png"
    geo.plot(path=path)
    assert path.stat().st_size > 5_000
