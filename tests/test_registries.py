"""colgraph.registry.Registry: the one registry every concept (tasks, data sets, attention
kernels, geometries, wiring rules, prune / grow rules) is built on. (Not tests/test_registry.py:
pytest imports test files by basename, and tests/geometry/test_registry.py has that one.)"""
import pytest

from colgraph.registry import Registry


@pytest.fixture
def layers():
    registry = Registry("layer", hint="Add one with @register_layer('{name}').")

    @registry.register("double")
    def double(x):
        return 2 * x

    return registry


def test_register_adds_the_entry_and_returns_it_unchanged(layers):
    @layers.register("half")
    def half(x):
        return x / 2

    assert layers["half"] is half and half(4) == 2
    assert list(layers) == ["double", "half"] and "half" in layers
    assert layers.lookup("half") is half
    assert repr(layers) == "Registry('layer': double, half)"


def test_reregistering_replaces_with_a_warning(layers):
    def triple(x):
        return 3 * x

    with pytest.warns(UserWarning, match=r"Replacing the layer registered as 'double' "
                                         r"\(.*\.double\) with .*\.triple\.") as record:
        assert layers.register("double")(triple) is triple
    assert record[0].filename == __file__  # the warning points at the line that registered
    assert layers.lookup("double") is triple and list(layers) == ["double"]


def test_unknown_name_lists_the_choices_and_the_hint(layers):
    with pytest.raises(ValueError, match=r"^Unknown layer 'dbl'\. Choices: double\. Add one "
                                         r"with @register_layer\('dbl'\)\.$"):
        layers.lookup("dbl")
    with pytest.raises(ValueError, match=r"^Unknown thing 'x'\. Choices: \.$"):
        Registry("thing").lookup("x")


def test_a_callable_passes_through(layers):
    assert layers.lookup(abs) is abs
    assert layers.lookup(Registry) is Registry
    with pytest.raises(TypeError, match=r"Expected a layer name or a callable \(got int\)\. "
                                        r"Choices: double"):
        layers.lookup(3)
    with pytest.raises(TypeError, match="Expected an attention kernel name"):
        Registry("attention kernel").lookup(None)


def test_only_named_callables_register(layers):
    with pytest.raises(TypeError, match="non-empty name"):
        layers.register("")
    with pytest.raises(TypeError, match="non-empty name"):
        layers.register(abs)
    with pytest.raises(TypeError, match=r"register\('three'\) takes a callable layer \(got int\)"):
        layers.register("three")(3)
    assert "three" not in layers


def test_del_unregisters(layers):
    del layers["double"]
    assert "double" not in layers and list(layers) == []
    with pytest.raises(ValueError, match="Unknown layer 'double'"):
        layers.lookup("double")


def test_every_concept_keeps_its_names_in_one_registry():
    from colgraph.data import DATASETS
    from colgraph.geometry import GEOMETRIES, WIRINGS
    from colgraph.nn import KERNELS
    from colgraph.plasticity import GROW_RULES, PRUNE_CRITERIA
    from colgraph.tasks import TASKS

    registries = [TASKS, DATASETS, KERNELS, GEOMETRIES, WIRINGS, PRUNE_CRITERIA, GROW_RULES]
    assert all(isinstance(r, Registry) and len(r) > 0 for r in registries)
    assert len({r.kind for r in registries}) == len(registries)
