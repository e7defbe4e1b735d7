"""The registries of geometries and wiring rules: each option a dataclass whose fields ARE its
settings (``geometry=grid geometry.width=16``, ``geometry.wiring.rule=knn
geometry.wiring.k=8``).

* :data:`GEOMETRIES` ``{"grid": GridConfig, ...}``: every option subclasses
  :class:`GeometryConfig` (the shared field ``wiring``) and builds its sheet with
  ``build()``. Add one with :func:`register_geometry`.
* :data:`WIRINGS` ``{"knn": KnnWiring, ...}``: every option subclasses :class:`WiringConfig`
  (the shared fields ``long_range``, ``lam``, ``seed``, ``self_loops``) and builds its rule
  with ``build()``. Add one with :func:`register_wiring`.

A setting the chosen option does not read is an unknown key, refused with the option's own
settings (:meth:`~colgraph.validation.Option.from_dict`). Hydra composes each group with one
permissive schema (:meth:`~colgraph.validation.Option.schema`: every option's settings,
``None`` = the option's default), so a key no option has fails at compose time.

Example:
    >>> from colgraph.geometry import GridConfig, KnnWiring, build_geometry
    >>> geo = build_geometry(GridConfig(width=4, wiring=KnnWiring(k=3, long_range=1)))
    >>> geo.num_columns, geo.in_degree().tolist()[:3]
    (16, [4, 4, 4])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from ..registry import Registry
from ..validation import Option, check_types, one_of, positive, require
from .base import Geometry
from .builders import (STACK_INTER, grid, hex_lattice, line, random_sheet, ring, scramble,
                       sphere, stack, torus)
from .io import read_geometry
from .wiring import Wiring, exponential, full, knn, radius, uniform, union

__all__ = ["WiringConfig", "WIRINGS", "register_wiring", "KnnWiring", "RadiusWiring",
           "FullWiring", "ExponentialWiring", "UniformWiring", "NoWiring", "build_wiring",
           "get_wiring", "GeometryConfig", "GEOMETRIES", "register_geometry", "GridConfig",
           "TorusConfig", "HexConfig", "StackConfig", "SphereConfig", "RingConfig", "LineConfig",
           "RandomConfig", "GraphConfig", "build_geometry"]


def _plain(node: Any) -> dict[str, Any]:
    """A config node (OmegaConf or any mapping) as a plain dict."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else \
        dict(node)


def _check_k(cfg: Any) -> None:
    require(cfg.k >= 1, "geometry.wiring.k", cfg.k, ">= 1 (incoming edges per column)",
            "Raise geometry.wiring.k.")


# -- wiring rules -------------------------------------------------------------------------

WIRINGS = Registry("wiring rule", hint="Pick one with geometry.wiring.rule=<name>.")


@dataclass
class WiringConfig(Option):
    """Base of the ``geometry.wiring`` options: the settings every rule shares.

    An option (see :func:`register_wiring`) adds its own settings as fields, checks them in
    ``__post_init__`` (after ``super().__post_init__()``) and returns its rule from
    :meth:`local`; the config builds it with :meth:`build`. Options are plain data: the same
    settings give the same rule (random rules are seeded by ``seed``).

    Args:
        long_range: extra exponential-distance-rule inputs per column (0: none), joined to
            the rule's own edges with :func:`~colgraph.geometry.union`.
        lam: their length scale, ``P(length) ~ exp(-length / lam)`` (read only with
            ``long_range > 0``, or by ``exponential`` itself).
        seed: the random seed of the long-range (and random) edges.
        self_loops: each column also attends to itself.
    """

    registry: ClassVar[Registry] = WIRINGS
    key: ClassVar[str] = "rule"
    group: ClassVar[str] = "geometry.wiring"
    legacy: ClassVar[dict[str, Any]] = {"k": 16, "r": 1.5, "long_range": 0, "lam": 4.0,
                                        "seed": 0, "self_loops": False}
    rule: ClassVar[str]
    reads_lam: ClassVar[bool] = False  # the rule itself reads lam (not only long_range)

    long_range: int = 0
    lam: float = 4.0
    seed: int = 0
    self_loops: bool = False

    def __post_init__(self) -> None:
        check_types(self, "geometry.wiring")
        require(self.long_range >= 0, "geometry.wiring.long_range", self.long_range, ">= 0")
        positive("geometry.wiring.lam", self.lam)
        require(self.seed >= 0, "geometry.wiring.seed", self.seed, ">= 0")
        if not (self.long_range or self.reads_lam) and self.lam != WiringConfig.lam:
            raise ValueError(f"geometry.wiring.lam={self.lam!r} does not apply to "
                             f"geometry.wiring.rule={self.rule} without long-range inputs: "
                             f"set geometry.wiring.long_range > 0, or drop lam.")

    def local(self) -> Wiring | None:
        """The rule's own edges (without the long-range ones)."""
        raise NotImplementedError

    def build(self) -> Wiring | None:
        """The wiring rule: :meth:`local`, joined by ``long_range`` exponential-distance-rule
        inputs per column when ``long_range > 0``. ``None``: no edges (``rule=none``)."""
        base = self.local()
        if not self.long_range:
            return base
        extra = exponential(m=self.long_range, lam=self.lam, seed=self.seed)
        return extra if base is None else union(base, extra)


def register_wiring(name: str) -> Callable[[type], type]:
    """Decorator: make a :class:`WiringConfig` dataclass the option
    ``geometry.wiring.rule=<name>``; its fields are its config keys, its ``local()`` returns
    the rule (a :class:`~colgraph.geometry.Wiring`).

    Example:
        >>> from dataclasses import dataclass
        >>> from colgraph.geometry import WIRINGS, WiringConfig, knn, register_wiring
        >>> @register_wiring("ring_knn")
        ... @dataclass
        ... class RingKnn(WiringConfig):
        ...     k: int = 2
        ...     def local(self):
        ...         return knn(self.k, self_loops=self.self_loops)
        >>> get_wiring("ring_knn", k=3)
        KNN(self_loops=False, k=3)
        >>> del WIRINGS["ring_knn"]
    """
    return WiringConfig.register(name)


@register_wiring("knn")
@dataclass
class KnnWiring(WiringConfig):
    """``k`` nearest-neighbour inputs per column (:func:`~colgraph.geometry.knn`)."""

    k: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_k(self)

    def local(self) -> Wiring:
        return knn(self.k, self_loops=self.self_loops)


@register_wiring("radius")
@dataclass
class RadiusWiring(WiringConfig):
    """Inputs from every column within distance ``r`` (:func:`~colgraph.geometry.radius`)."""

    r: float = 1.5

    def __post_init__(self) -> None:
        super().__post_init__()
        positive("geometry.wiring.r", self.r)

    def local(self) -> Wiring:
        return radius(self.r, self_loops=self.self_loops)


@register_wiring("full")
@dataclass
class FullWiring(WiringConfig):
    """All-to-all (:func:`~colgraph.geometry.full`): small sheets and references only."""

    def local(self) -> Wiring:
        return full(self_loops=self.self_loops)


@register_wiring("exponential")
@dataclass
class ExponentialWiring(WiringConfig):
    """Only random inputs with ``P(length) ~ exp(-length / lam)``
    (:func:`~colgraph.geometry.exponential`): ``long_range`` of them per column (4 when 0)."""

    reads_lam: ClassVar[bool] = True

    def local(self) -> Wiring:
        return exponential(m=self.long_range or 4, lam=self.lam, seed=self.seed,
                           self_loops=self.self_loops)

    def build(self) -> Wiring:
        return self.local()  # long_range is the rule's own count: no second set of edges


@register_wiring("uniform")
@dataclass
class UniformWiring(WiringConfig):
    """``k`` inputs per column from uniformly random sources, no spatial prior
    (:func:`~colgraph.geometry.uniform`)."""

    k: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_k(self)

    def local(self) -> Wiring:
        return uniform(self.k, seed=self.seed, self_loops=self.self_loops)


@register_wiring("none")
@dataclass
class NoWiring(WiringConfig):
    """No edges of a rule: a geometry's own edges only (``geometry=graph``), plus the
    long-range inputs when ``long_range > 0``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.self_loops:
            raise ValueError("geometry.wiring.self_loops=true needs a rule (rule=none adds no "
                             "edges): add the self-loops to the file, or choose a rule.")

    def local(self) -> None:
        return None


def build_wiring(cfg: Any) -> Wiring | None:
    """The wiring rule a ``geometry.wiring`` config describes.

    ``cfg``: a :class:`WiringConfig` option (``KnnWiring(k=8)``), or a config node / dict
    with ``rule`` (one of :data:`WIRINGS`) and that rule's settings (``None``: its default).
    ``rule=none`` gives ``None`` (the geometry's own edges only), or the long-range edges
    alone.

    Example:
        >>> build_wiring({"rule": "knn", "k": 8, "long_range": 2})
        Union(self_loops=False, rules=(KNN(self_loops=False, k=8), Exponential(self_loops=False, m=2, lam=4.0, seed=0, max_rounds=20)))
    """
    if not isinstance(cfg, WiringConfig):
        cfg = WiringConfig.from_dict(_plain(cfg))
    return cfg.build()


def get_wiring(rule: str | Wiring, **settings: Any) -> Wiring | None:
    """A wiring rule by name with its config settings (``get_wiring("knn", k=8)``, the same as
    ``build_wiring({"rule": "knn", "k": 8})``; ``None`` for ``none``); a
    :class:`~colgraph.geometry.Wiring` passes through."""
    if isinstance(rule, Wiring):
        return rule
    WIRINGS.lookup(rule)
    return build_wiring({"rule": rule, **settings})


# -- geometries ---------------------------------------------------------------------------

GEOMETRIES = Registry("geometry", hint="Pick one with geometry=<name>.")


@dataclass
class GeometryConfig(Option):
    """Base of the ``geometry`` options: the setting every geometry shares.

    An option (see :func:`register_geometry`) adds its own settings as fields, checks them
    in ``__post_init__`` (after ``super().__post_init__()``) and returns its sheet from
    :meth:`build`, wired by ``self.wiring.build()``: a pure function of the settings.

    Args:
        wiring: the wiring rule (a :class:`WiringConfig` option; ``geometry.wiring.*``).
        scramble: a seed: place the columns at random sites of the sheet, keeping their
            edges (:func:`~colgraph.geometry.scramble`; applied by :func:`build_geometry`),
            a sheet whose wiring ignores its layout, the starting point of migration
            experiments. ``None``: as built.
    """

    registry: ClassVar[Registry] = GEOMETRIES
    key: ClassVar[str] = "name"
    group: ClassVar[str] = "geometry"
    picked_by_group: ClassVar[bool] = True
    legacy: ClassVar[dict[str, Any]] = {
        "width": 8, "widths": [8, 6, 4], "spacing": 2.0, "inter": "knn", "inter_k": 9,
        "n": 256, "shape": "box", "dim": 2, "seed": 0, "input_size": 64, "output_size": 16}
    name: ClassVar[str]
    own_edges: ClassVar[bool] = False  # has edges without a wiring rule (rule=none allowed)

    wiring: WiringConfig = field(default_factory=KnnWiring)
    scramble: int | None = None

    def __post_init__(self) -> None:
        check_types(self, "geometry")
        if self.scramble is not None:
            require(self.scramble >= 0, "geometry.scramble", self.scramble,
                    ">= 0 (a random seed) or null")
        if not isinstance(self.wiring, WiringConfig):
            raise TypeError(f"geometry.wiring must be a wiring rule's config such as "
                            f"KnnWiring(k=8) (got {self.wiring!r}).")
        if isinstance(self.wiring, NoWiring) and not self.own_edges:
            own = [n for n, g in GEOMETRIES.items() if g.own_edges]
            raise ValueError(f"geometry.wiring.rule=none gives geometry={self.name} no edges "
                             f"(only geometry={' / '.join(own)} has edges of its own). Choose "
                             f"a rule: {', '.join(r for r, w in WIRINGS.items() if w is not NoWiring)}.")

    def build(self) -> Geometry:
        """The sheet this config describes."""
        raise NotImplementedError


def register_geometry(name: str) -> Callable[[type], type]:
    """Decorator: make a :class:`GeometryConfig` dataclass the option ``geometry=<name>``;
    its fields are its config keys, its ``build()`` returns the
    :class:`~colgraph.geometry.Geometry`. For hydra, add ``configs/geometry/<name>.yaml``
    (``defaults: [base_geometry, _self_]``, ``name: <name>``) and call
    :func:`colgraph.config.register_configs` after registering.

    Example:
        >>> from dataclasses import dataclass
        >>> from colgraph.geometry import GEOMETRIES, GeometryConfig, grid, register_geometry
        >>> @register_geometry("strip")
        ... @dataclass
        ... class StripConfig(GeometryConfig):
        ...     length: int = 32
        ...     def build(self):
        ...         return grid(self.length, 2, wiring=self.wiring.build())
        >>> build_geometry({"name": "strip", "length": 10}).num_columns
        20
        >>> del GEOMETRIES["strip"]
    """
    return GeometryConfig.register(name)


def _check_n(cfg: Any) -> None:
    require(cfg.n >= 1, "geometry.n", cfg.n, ">= 1 (number of columns)")


def _check_ends(cfg: Any) -> None:
    require(cfg.size is None or cfg.size > 0, "geometry.size", cfg.size, "> 0 or null")
    require(cfg.input_size >= 1 and cfg.output_size >= 1, "geometry.input_size / output_size",
            (cfg.input_size, cfg.output_size), ">= 1")


@register_geometry("grid")
@dataclass
class GridConfig(GeometryConfig):
    """A flat ``width x height`` sheet (:func:`~colgraph.geometry.grid`); ``height`` None:
    square."""

    width: int = 8
    height: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.width >= 1, "geometry.width", self.width, ">= 1")
        require(self.height is None or self.height >= 1, "geometry.height", self.height,
                ">= 1 or null (= width)")

    def build(self) -> Geometry:
        return grid(self.width, self.height, wiring=self.wiring.build())


@register_geometry("torus")
@dataclass
class TorusConfig(GridConfig):
    """A grid whose edges wrap around (:func:`~colgraph.geometry.torus`)."""

    def build(self) -> Geometry:
        return torus(self.width, self.height, wiring=self.wiring.build())


@register_geometry("stack")
@dataclass
class StackConfig(GeometryConfig):
    """Square areas stacked ``spacing`` apart, input first (:func:`~colgraph.geometry.stack`);
    ``inter``: how areas connect (knn | feedforward | bidirectional | all), ``inter_k``:
    inter-area inputs per column (feedforward / bidirectional)."""

    widths: list[int] = field(default_factory=lambda: [8, 6, 4])
    spacing: float = 2.0
    inter: str = "knn"
    inter_k: int = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        require(len(self.widths) > 0 and all(isinstance(w, int) and w >= 1
                                             for w in self.widths),
                "geometry.widths", list(self.widths), "a non-empty list of integers >= 1")
        positive("geometry.spacing", self.spacing)
        one_of("geometry.inter", self.inter, STACK_INTER)
        require(self.inter_k >= 1, "geometry.inter_k", self.inter_k, ">= 1")

    def build(self) -> Geometry:
        return stack(list(self.widths), spacing=self.spacing, wiring=self.wiring.build(),
                     inter=self.inter, inter_k=self.inter_k)


@register_geometry("sphere")
@dataclass
class SphereConfig(GeometryConfig):
    """``n`` columns on a sphere of radius ``size`` (None: 1), great-circle lengths
    (:func:`~colgraph.geometry.sphere`); input / output areas round the poles."""

    n: int = 256
    size: float | None = None
    input_size: int = 64
    output_size: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_n(self)
        _check_ends(self)

    def build(self) -> Geometry:
        return sphere(self.n, radius=self.size or 1.0, wiring=self.wiring.build(),
                      input_size=self.input_size, output_size=self.output_size)


@register_geometry("ring")
@dataclass
class RingConfig(GeometryConfig):
    """``n`` columns on a circle (1D, wrapped; :func:`~colgraph.geometry.ring`)."""

    n: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_n(self)

    def build(self) -> Geometry:
        return ring(self.n, wiring=self.wiring.build())


@register_geometry("line")
@dataclass
class LineConfig(RingConfig):
    """``n`` columns on a line (1D, open ends; :func:`~colgraph.geometry.line`)."""

    def build(self) -> Geometry:
        return line(self.n, wiring=self.wiring.build())


@register_geometry("random")
@dataclass
class RandomConfig(GeometryConfig):
    """``n`` columns at random in a ``dim``-dimensional box or disc of side ``size`` (None:
    unit density), positions seeded by ``seed`` (:func:`~colgraph.geometry.random_sheet`)."""

    n: int = 256
    shape: str = "box"
    dim: int = 2
    size: float | None = None
    seed: int = 0
    input_size: int = 64
    output_size: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_n(self)
        one_of("geometry.shape", self.shape, ("box", "disc"))
        require(self.dim in (1, 2, 3), "geometry.dim", self.dim, "1, 2 or 3")
        _check_ends(self)

    def build(self) -> Geometry:
        return random_sheet(self.n, shape=self.shape, dim=self.dim, size=self.size,
                            seed=self.seed, wiring=self.wiring.build(),
                            input_size=self.input_size, output_size=self.output_size)


@register_geometry("hex")
@dataclass
class HexConfig(GeometryConfig):
    """A hexagonal sheet of the hexagons within ``extent`` steps of the centre
    (:func:`~colgraph.geometry.hex_lattice`: 3 e (e + 1) + 1 columns); ``input_size`` /
    ``output_size``: the columns nearest the centre (None: all)."""

    extent: int = 5
    input_size: int | None = 64
    output_size: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.extent >= 1, "geometry.extent", self.extent,
                ">= 1 (rings of hexagons round the centre)")
        columns = 3 * self.extent * (self.extent + 1) + 1
        for key in ("input_size", "output_size"):
            size = getattr(self, key)
            require(size is None or 1 <= size <= columns, f"geometry.{key}", size,
                    f"in [1, {columns}] (the columns of extent {self.extent}) or null (all)")

    def build(self) -> Geometry:
        return hex_lattice(self.extent, wiring=self.wiring.build(), input_size=self.input_size,
                           output_size=self.output_size)


@register_geometry("graph")
@dataclass
class GraphConfig(GeometryConfig):
    """A sheet read from a file (:func:`~colgraph.geometry.read_geometry`): GraphML / GML,
    or an edge-list CSV ``path`` with a coordinates CSV ``coords``. Its edges are used as
    they are; a wiring rule other than ``none`` adds edges on top of them."""

    own_edges: ClassVar[bool] = True

    path: str | None = None
    coords: str | None = None
    wiring: WiringConfig = field(default_factory=NoWiring)

    def build(self) -> Geometry:
        if not self.path:
            raise ValueError("geometry=graph needs a file: set geometry.path=my_sheet.graphml "
                             "(GraphML / GML, or an edge-list CSV with "
                             "geometry.coords=nodes.csv).")
        geo = read_geometry(self.path, coords=self.coords)
        wiring = self.wiring.build()
        return geo if wiring is None else geo.with_wiring(wiring)


def build_geometry(cfg: Any) -> Geometry:
    """Build the geometry a config describes.

    ``cfg``: a :class:`GeometryConfig` option (``GridConfig(width=16)``), or a config node /
    dict with ``name`` (one of :data:`GEOMETRIES`), that option's settings (``None``: its
    default) and a ``wiring`` node: a composed ``cfg.geometry``, or the config stored in a
    checkpoint (also one from before the registry, whose flat dict held every option's
    settings). Pure: the same config gives the same sheet.

    Example:
        >>> build_geometry({"name": "stack", "widths": [4, 2], "wiring": {"rule": "knn", "k": 4}})
        Geometry(stack([4, 2], spacing=2.0), columns=20, edges=80, dim=3, areas=[area0=16, area1=4, input=16, output=4])
    """
    if not isinstance(cfg, GeometryConfig):
        data = _plain(cfg)
        GEOMETRIES.lookup(data.get("name"))
        cfg = GeometryConfig.from_dict(data)
    geometry = cfg.build()
    return geometry if cfg.scramble is None else scramble(geometry, cfg.scramble)
