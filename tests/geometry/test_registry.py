"""The geometry and wiring-rule registries: every registered option builds from its own
default config (timm's tests/test_models.py style: a new option is tested without editing a
list here), config dicts pick the option, and a setting the option does not read is refused."""
import dataclasses

import pytest
import torch
from omegaconf import OmegaConf

from colgraph.geometry import (GEOMETRIES, WIRINGS, GeometryConfig, GridConfig, KnnWiring,
                               NoWiring, WiringConfig, build_geometry, build_wiring, get_wiring,
                               grid, write_geometry)
from colgraph.validation import ConfigProblems


def test_unknown_geometry_lists_choices():
    cfg = OmegaConf.create({"name": "grd", "wiring": {"rule": "knn", "k": 4, "r": 1.0,
                                                      "self_loops": False}})
    with pytest.raises(ValueError, match="Unknown geometry 'grd'. Choices: grid, torus, stack"):
        build_geometry(cfg)


def test_unknown_wiring_lists_choices():
    with pytest.raises(ValueError, match="Unknown wiring rule 'nn'. Choices: knn, radius, full"):
        get_wiring("nn")


@pytest.fixture
def sheet_file(tmp_path):
    """A small sheet on disk, for options that read one (a field ``path``)."""
    path = tmp_path / "sheet.graphml"
    write_geometry(grid(4), path)
    return str(path)


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_every_geometry_builds_from_its_default_config(name, sheet_file):
    option = GEOMETRIES[name]
    assert option.name == name and issubclass(option, GeometryConfig)
    needs_file = {f.name for f in dataclasses.fields(option) if f.name == "path"}
    cfg = option(**{k: sheet_file for k in needs_file})
    geo = build_geometry(cfg).validate()
    assert geo.num_columns > 1 and geo.num_edges > 0, f"{name} built an empty sheet"
    # the same config as a dict (how hydra and checkpoints hold it) gives the same sheet
    data = {"name": name, **{k: sheet_file for k in needs_file}}
    assert build_geometry(data).fingerprint() == geo.fingerprint()
    assert GeometryConfig.from_dict(data) == cfg


@pytest.mark.parametrize("rule", list(WIRINGS))
def test_every_wiring_rule_builds_edges_on_a_small_sheet(rule):
    option = WIRINGS[rule]
    assert option.rule == rule and issubclass(option, WiringConfig)
    cfg = option(k=4) if "k" in option.settings() else option(long_range=2)
    geo = grid(5, wiring=cfg.build())  # rule=none alone adds nothing: its long-range edges
    assert geo.num_edges > 0 and geo.in_degree().min() > 0, f"{rule} left columns unwired"
    assert torch.equal(grid(5, wiring=build_wiring({"rule": rule, **vars(cfg)})).edge_index,
                       geo.edge_index)


def test_setting_of_another_option_is_an_unknown_key():
    with pytest.raises(ValueError, match=r"Unknown key\(s\) geometry.widths for geometry=grid: "
                       r"geometry.widths=\[4, 4\] does not apply to geometry=grid \(its "
                       r"settings: width, height, wiring, scramble\). widths is read by geometry=stack"):
        build_geometry({"name": "grid", "widths": [4, 4]})
    with pytest.raises(ValueError, match=r"geometry.wiring.r=2.0 does not apply to "
                       r"geometry.wiring.rule=knn \(its settings: k, long_range, lam, seed, "
                       r"self_loops\). r is read by geometry.wiring.rule=radius"):
        build_wiring({"rule": "knn", "r": 2.0})
    with pytest.raises(ValueError, match=r"Unknown key\(s\) geometry.wdth. Choices: height, "
                       r"scramble, width, wiring \(the settings of geometry=grid\)"):
        build_geometry({"name": "grid", "wdth": 4})
    with pytest.raises(TypeError, match="geometry.wiring.k must be int"):
        build_wiring({"rule": "knn", "k": 2.5})


def test_every_problem_of_a_geometry_is_reported_at_once():
    with pytest.raises(ConfigProblems) as info:
        build_geometry({"name": "stack", "width": 5, "wiring": {"rule": "none", "k": 4}})
    first = ["Unknown key(s) geometry.width for", "Unknown key(s) geometry.wiring.k for",
             "geometry.wiring.rule=none gives geometry=stack no edges"]
    assert [p[:len(f)] for p, f in zip(info.value.problems, first)] == first


def test_none_means_the_options_default():
    """Hydra's permissive schema holds every option's settings as None."""
    cfg = {"name": "grid", "width": 4, "widths": None, "n": None,
           "wiring": {"rule": "knn", "k": 3, "r": None, "lam": None}}
    assert GeometryConfig.from_dict(cfg) == GridConfig(width=4, wiring=KnnWiring(k=3))


def test_missing_wiring_rule_is_the_geometrys_default():
    assert GeometryConfig.from_dict({"name": "graph", "wiring": {"long_range": 2}}).wiring == \
        NoWiring(long_range=2)
    assert GeometryConfig.from_dict({"name": "grid"}).wiring == KnnWiring()


def test_lam_needs_long_range_unless_the_rule_reads_it():
    with pytest.raises(ValueError, match=r"geometry.wiring.lam=8.0 does not apply to "
                       r"geometry.wiring.rule=knn without long-range inputs"):
        KnnWiring(lam=8.0)
    assert KnnWiring(lam=8.0, long_range=2).build().rules[1].lam == 8.0
    assert WIRINGS["exponential"](lam=8.0).build().lam == 8.0


def test_schema_holds_every_options_settings():
    """Hydra composes each group with one schema: every setting of every registered option
    (so only keys no option has fail at compose time), each optional."""
    for base in (GeometryConfig, WiringConfig):
        schema = {f.name: f for f in dataclasses.fields(base.schema())}
        assert base.key in schema
        for option in base.registry.values():
            missing = set(option.settings()) - set(schema)
            assert not missing, f"{option.__name__}: {missing} not in the schema"
        assert all(f.default is None for k, f in schema.items() if k != "wiring")


def test_registering_an_option_adds_it_to_config_and_schema():
    @GeometryConfig.register("strip_test")
    @dataclasses.dataclass
    class Strip(GeometryConfig):
        length: int = 6

        def build(self):
            return grid(self.length, 2, wiring=self.wiring.build())

    try:
        assert "length" in {f.name for f in dataclasses.fields(GeometryConfig.schema())}
        geo = build_geometry({"name": "strip_test", "length": 5, "wiring": {"k": 3}})
        assert geo.num_columns == 10
        with pytest.raises(TypeError, match="Only a @dataclass subclass of GeometryConfig"):
            GeometryConfig.register("bad")(dict)
        with pytest.warns(UserWarning, match="Replacing the geometry registered as "
                                             "'strip_test' .* with"):
            GeometryConfig.register("strip_test")(Strip)
    finally:
        del GEOMETRIES["strip_test"]


def test_scramble_places_columns_at_random_sites_keeping_their_edges():
    knn4 = {"rule": "knn", "k": 4}
    built = build_geometry({"name": "grid", "width": 5, "wiring": knn4})
    mixed = build_geometry({"name": "grid", "width": 5, "scramble": 3, "wiring": knn4})
    assert torch.equal(mixed.edge_index, built.edge_index)
    assert sorted(map(tuple, mixed.pos.tolist())) == sorted(map(tuple, built.pos.tolist()))
    assert not torch.equal(mixed.pos, built.pos) and "scrambled(3)" in mixed.name
    with pytest.raises(ValueError, match="geometry.scramble"):
        build_geometry({"name": "grid", "width": 5, "scramble": -1})
