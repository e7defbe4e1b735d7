"""colgraph.registry.Registry: the one registry every concept (tasks, data sets, attention
kernels, geometries, wiring rules, prune / grow rules) is built on. (Not tests/test_registry.py:
pytest imports test files by basename, and tests/geometry/test_registry.py has that one.)"""
import dataclasses

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


def test_an_entry_declares_the_settings_it_reads(layers):
    def scaled(x, factor=2):
        return factor * x

    assert layers.register("scaled", settings=("factor",))(scaled) is scaled
    assert layers.settings_of("scaled") == ("factor",)
    assert layers.settings_of("double") is None  # registered without: undeclared
    assert layers.settings_of("absent") is None
    with pytest.warns(UserWarning, match="Replacing"):
        layers.register("scaled")(scaled)  # registered again without settings: undeclared
    assert layers.settings_of("scaled") is None
    with pytest.warns(UserWarning, match="Replacing"):
        layers.register("scaled", settings=["factor", "bias"])(scaled)
    assert layers.settings_of("scaled") == ("factor", "bias")
    layers["scaled"] = abs  # replaced by hand: what it reads is not known
    assert layers.settings_of("scaled") is None
    layers.register("other", settings=())(scaled)
    assert layers.settings_of("other") == ()  # declared: reads none
    del layers["other"]
    assert layers.settings_of("other") is None and "other" not in layers


@pytest.mark.parametrize("settings", ["factor", ("factor", 3), 3, ("",)])
def test_declared_settings_are_names(layers, settings):
    with pytest.raises(TypeError, match=r"register\('x', settings=\.\.\.\) takes the names of "
                                        r"the config keys the layer reads, a tuple of strings"):
        layers.register("x", settings=settings)
    assert "x" not in layers


def test_built_in_tasks_and_data_sets_declare_their_settings():
    """One mechanism: every built-in task and data set is registered with the settings it
    reads (the 'settings that cannot take effect' checks read them from the registries)."""
    from colgraph.config import DataConfig, TaskConfig
    from colgraph.data import DATASETS
    from colgraph.tasks import TASKS

    for registry, cls in ((TASKS, TaskConfig), (DATASETS, DataConfig)):
        keys = {f.name for f in dataclasses.fields(cls)}
        for name in registry:
            declared = registry.settings_of(name)
            assert declared is not None and set(declared) <= keys, name
    assert TASKS.settings_of("masked_image") == ("patch_size", "mask_ratio", "norm_pix",
                                                 "decoder_area")
    assert DATASETS.settings_of("file") == ("path", "test_fraction", "split_seed")
