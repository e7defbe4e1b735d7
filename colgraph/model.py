"""The Columnformer: one sheet of untied columns applied recurrently for ``T`` steps.

Symbols: ``B`` batch, ``N`` columns, ``N_in`` / ``N_out`` columns of the input / output
area, ``E`` edges, ``H`` heads, ``C`` channels, ``T`` steps.

Read top to bottom: the Block (one recurrent step over every column), the config, then the
Columnformer.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .geometry import Geometry
from .parallel.shard import ColumnShard
from .validation import (Checks, check_types, non_negative, one_of, positive, require,
                         unread_settings)
from .nn import (KERNELS, SHARING, ColumnAttention, ColumnDropout, ColumnLayerNorm, ColumnLinear,
                 ColumnMLP, SheetEdges, Sharing)

__all__ = ["Block", "ColumnformerConfig", "ColumnformerOutput", "Activity", "Columnformer",
           "column_groups"]


def column_groups(geometry: Geometry) -> Tensor:
    """``[N]`` group id of each column for ``sharing=groups``: the first of the geometry's
    areas (in its order) that holds the column; columns in no area form one more group.
    For a stack this is its areas (``input`` / ``output`` only alias them); a sheet with
    one area that holds every column shares fully."""
    group = torch.full((geometry.num_columns,), -1, dtype=torch.long)
    for i, name in enumerate(geometry.areas):
        idx = geometry.area(name)
        free = idx[group[idx] < 0]
        group[free] = i
    group[group < 0] = len(geometry.areas)
    return group


class Block(nn.Module):
    """One recurrent step of the sheet: pre-norm attention (optional skip), then a pre-norm
    MLP, over every column (each with its own parameters; ``Columnformer.blocks`` holds one
    block applied ``T`` times, or one per step with ``tied_depth=False``).

    Works on the columns-first state ``x [N, B, C]``.
    """

    def __init__(self, edges: SheetEdges, cfg: "ColumnformerConfig",
                 sharing: Sharing | None = None) -> None:
        super().__init__()
        C, columns = cfg.channels, edges.num_owned
        self.skip = cfg.skip
        self.norm1 = ColumnLayerNorm(columns, C, sharing=sharing)
        self.attn = ColumnAttention(edges, C, heads=cfg.heads,
                                    qk_dim=cfg.qk_dim, value_proj=cfg.value_proj,
                                    dropout=cfg.attn_dropout, bias_sigma=cfg.bias_sigma,
                                    bias_clamp=cfg.bias_clamp, backend=cfg.backend,
                                    sharing=sharing)
        self.norm2 = ColumnLayerNorm(columns, C, sharing=sharing)
        self.mlp = ColumnMLP(columns, C, int(cfg.mlp_ratio * C), dropout=cfg.dropout,
                             sharing=sharing)

    def reset_parameters(self) -> None:
        for m in (self.norm1, self.attn, self.norm2, self.mlp):
            m.reset_parameters()

    def forward(self, x: Tensor, need_attention: bool = True) -> tuple[Tensor, Tensor | None]:
        a, attention = self.attn(self.norm1(x), need_attention)  # (N, B, C), (E, H) / None
        x = x + a if self.skip else a
        x = x + self.mlp(self.norm2(x))
        return x, attention


@dataclass
class ColumnformerConfig:
    """Architecture of a Columnformer (the ``model`` config group)."""

    channels: int = 64
    steps: int = 4
    heads: int = 1
    qk_dim: int | None = None  # per head; default channels // heads
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    attn_dropout: float = 0.0
    value_proj: bool = False  # untied value + output projections
    skip: bool = True  # residual connection around attention
    inject: str = "first"  # "first": tokens enter at step 0 only; "every": at every step
    step_embedding: bool = True  # learned per-step vector added to every column
    tied_depth: bool = True  # False: a separate Block per step (feed-forward ablation)
    bias_sigma: float | None = None  # initial edge-bias length scale; default mean length
    bias_clamp: float = 4.0  # long edges start weak (>= e^-4 of the strongest), not dead
    backend: str = "sparse"  # an attention kernel of colgraph.nn.KERNELS: sparse | pyg | dense
    recompute: bool = False  # activation checkpointing: keep only each step's input state
    # per-column matmul weights (89% of the parameters at 10^6 columns): "bfloat16" halves
    # them, their gradients and AdamW state, and runs those matmuls in bf16; norms,
    # attention and states stay fp32
    weight_dtype: str = "float32"
    sharing: str = "none"  # none (untied) | full | lowrank | groups (per area): see nn.Sharing
    sharing_rank: int = 4  # lowrank: rank of each column's correction to the shared weights
    input_area: str = "input"
    output_area: str = "output"
    activity_threshold: float = 0.1  # a unit / column is silent below this x its step's RMS

    # settings that change how the sheet runs, not what it is (train.init_from may differ)
    RUNTIME = ("dropout", "attn_dropout", "backend", "recompute", "activity_threshold",
               "weight_dtype")
    WEIGHT_DTYPES = ("float32", "bfloat16")

    def __post_init__(self) -> None:
        check_types(self, "model")
        with Checks() as check:
            check.refuse(self.channels < 1 or self.steps < 1 or self.heads < 1,
                         f"model.channels, model.steps and model.heads must be >= 1 (got "
                         f"{self.channels}, {self.steps}, {self.heads}).")
            check.refuse(self.heads >= 1 and self.channels % self.heads != 0,
                         f"'heads' must divide 'channels' (got channels={self.channels}, "
                         f"heads={self.heads}). Set model.heads to a divisor of "
                         f"model.channels.")
            for key in ("dropout", "attn_dropout"):
                p = getattr(self, key)
                check.refuse(not 0.0 <= p < 1.0,  # also refuses NaN
                             f"model.{key} must be in [0, 1) (got {p}); 0 turns it off.")
            check.refuse(self.sharing not in SHARING, f"Unknown model.sharing "
                         f"'{self.sharing}'. Choices: {', '.join(SHARING)}.")
            check.refuse(self.sharing_rank < 1,
                         f"model.sharing_rank must be >= 1 (got {self.sharing_rank}).")
            check.refuse(self.inject not in ("first", "every"),
                         f"model.inject must be 'first' or 'every' (got {self.inject!r}).")
            check(positive, "model.mlp_ratio", self.mlp_ratio)
            check(require, self.channels < 1 or int(self.mlp_ratio * self.channels) >= 1,
                  "model.mlp_ratio", self.mlp_ratio,
                  f">= 1 / model.channels = {1 / max(self.channels, 1):.3g} (MLP hidden size "
                  f"int(mlp_ratio x channels) >= 1)")
            check(require, self.qk_dim is None or self.qk_dim >= 1, "model.qk_dim",
                  self.qk_dim, ">= 1 or null (= channels // heads)")
            check(require, self.bias_sigma is None or (math.isfinite(self.bias_sigma)
                                                       and self.bias_sigma > 0),
                  "model.bias_sigma", self.bias_sigma, "> 0 or null (= the mean edge length)")
            check(non_negative, "model.bias_clamp", self.bias_clamp)
            check(non_negative, "model.activity_threshold", self.activity_threshold)
            check(one_of, "model.backend", self.backend, KERNELS)
            check.refuse(self.weight_dtype not in self.WEIGHT_DTYPES,
                         f"model.weight_dtype must be one of {', '.join(self.WEIGHT_DTYPES)} "
                         f"(got {self.weight_dtype!r}).")
            if check.errors:  # what follows assumes valid values
                return
            unread_settings(check, self, "model", "model.sharing", self.sharing,
                            {mode: ("sharing_rank",) if mode == "lowrank" else ()
                             for mode in SHARING})
            one_step = ("with model.steps=1 (one recurrent step): set model.steps > 1 or "
                        "drop the override.")
            check.unread(self.steps == 1 and not self.tied_depth,
                         f"model.tied_depth=false has no effect {one_step}")
            check.unread(self.steps == 1 and self.inject == "every",
                         f"model.inject=every has no effect {one_step}")


class Activity:
    """How much of the sheet is active, per step (relative to each step's RMS state, so the
    numbers do not depend on the states' scale).

    Each statistic is computed when first read, from the states after each step (tensors
    the forward pass keeps anyway): a training step whose objectives and logs read none of
    them pays nothing (measured: 3-5% of a step otherwise). ``l1`` is differentiable when
    first read with gradients enabled. On a column-sharded sheet each is over every
    process's columns, so every process must read the same statistics (they all-reduce).
    """

    def __init__(self, states: list[Tensor], threshold: float, shard: ColumnShard,
                 columns: int) -> None:
        self._states, self._threshold, self._shard = states, threshold, shard
        self._numel = columns * states[0].size(1) * states[0].size(2)  # the whole sheet's
        self._cache: dict[str, Tensor] = {}

    def _rms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per column and sample norms ``(N, B)`` and the step's RMS state (one pass each:
        ``vector_norm`` reduces without an ``[N, B, C]`` temporary)."""
        norm = torch.linalg.vector_norm(x, dim=-1)
        return norm, (self._shard.mean(norm.pow(2)) / x.size(-1)).sqrt().clamp_min(1e-12)

    @property
    def l1(self) -> Tensor:
        """Scalar: mean over steps of ``mean|x_t| / RMS(x_t)``."""
        if "l1" not in self._cache:
            self._cache["l1"] = torch.stack([
                self._shard.sum(torch.linalg.vector_norm(x, ord=1)) / self._numel
                / self._rms(x)[1] for x in self._states]).mean()
        return self._cache["l1"]

    @property
    def silent(self) -> Tensor:
        """``(T,)`` fraction of state units with ``|x| < threshold * RMS(x_t)``."""
        if "silent" not in self._cache:
            self._counts()
        return self._cache["silent"]

    @property
    def active(self) -> Tensor:
        """``(T,)`` mean number of columns per sample whose RMS > ``threshold * RMS(x_t)``."""
        if "active" not in self._cache:
            self._counts()
        return self._cache["active"]

    @torch.no_grad()
    def _counts(self) -> None:
        silent, active = [], []
        for x in self._states:
            norm, rms = self._rms(x)
            cut = self._threshold * rms
            silent.append(self._shard.sum(torch.count_nonzero(x.abs() < cut)) / self._numel)
            active.append(self._shard.sum((norm > cut * x.size(-1)**0.5).sum(0).float()).mean())
        self._cache["silent"], self._cache["active"] = torch.stack(silent), torch.stack(active)

    def __repr__(self) -> str:
        return f"Activity(steps={len(self._states)}, computed={sorted(self._cache)})"


class ColumnformerOutput(NamedTuple):
    output: Tensor  # (B, N_out, C) final states of the output area
    state: Tensor  # (B, N, C) final states of all columns
    attention: list[Tensor] | None  # T tensors (E, H): per-step edge attention, batch mean
    # (None from forward(..., need_attention=False))
    outputs: Tensor | None = None  # (B, T, N_out, C) output area after each step (frames in)
    activity: Activity | None = None  # sparsity statistics of the states after each step


class Columnformer(nn.Module):
    """A sheet of untied columns on a geometry, applied recurrently for ``steps`` steps.

    Args:
        geometry: the :class:`~colgraph.geometry.Geometry` (positions, edges, areas).
        config: a :class:`ColumnformerConfig`; keyword arguments override its fields.

    The current edges (which plasticity may change) are owned by ``model.edges``, a
    :class:`~colgraph.nn.SheetEdges`; ``model.geometry`` is the current wiring as a
    ``Geometry``, ``model.edge_index`` / ``model.edge_length`` read the owner.

    ``forward(tokens)`` takes ``tokens [B, N_in, C]`` (one token per input-area column, in
    the input area's order) and returns a :class:`ColumnformerOutput`. ``tokens
    [B, T, N_in, C]`` are frames: frame ``t`` enters at step ``t`` (a recurrent model of a
    signal) and ``outputs`` holds the output area's states after every step.
    ``forward(tokens, need_attention=False)`` skips the per-step attention weights
    (``attention`` is then ``None``): for a step whose loss, plasticity and metrics do not
    read them (no wiring cost), so the attention kernel computes no batch mean.

    Example:
        >>> from colgraph.geometry import stack, knn
        >>> geo = stack([8, 6, 4], spacing=2.0, wiring=knn(k=16))
        >>> model = Columnformer(geo, channels=32, steps=3)
        >>> out = model(torch.randn(2, 64, 32))
        >>> out.output.shape, len(out.attention), out.attention[0].shape
        (torch.Size([2, 16, 32]), 3, torch.Size([1856, 1]))
    """

    def __init__(self, geometry: Geometry, config: ColumnformerConfig | None = None,
                 shard: ColumnShard | None = None, **overrides) -> None:
        super().__init__()
        if not isinstance(geometry, Geometry):
            raise TypeError(f"Columnformer needs a colgraph Geometry as its first argument "
                            f"(got {type(geometry).__name__}). Build one with e.g. "
                            f"colgraph.geometry.grid(8) or read_geometry(path).")
        config = config or ColumnformerConfig()
        if overrides:
            names = {f.name for f in fields(ColumnformerConfig)}
            unknown = sorted(set(overrides) - names)
            if unknown:
                raise TypeError(f"Unknown Columnformer option(s) {unknown}. Choices: "
                                f"{', '.join(sorted(names))}.")
            config = ColumnformerConfig(**{**asdict(config), **overrides})
        self.config = config
        C = config.channels
        geometry.check_reachable(config.input_area, config.output_area, config.steps)
        # the one owner of the current edges and columns (of this process's columns, on a
        # column-sharded sheet: colgraph.parallel.shard)
        self.edges = SheetEdges(geometry, shard)
        geometry.area(config.input_area), geometry.area(config.output_area)  # clear errors
        N = self.edges.num_owned
        self.column_embed = nn.Parameter(torch.empty(N, C))  # initial state of each column
        self.step_embed = nn.Parameter(torch.empty(config.steps, C)) if config.step_embedding else None
        num_blocks = 1 if config.tied_depth else config.steps
        sharing = Sharing(config.sharing, config.sharing_rank,
                          column_groups(geometry) if config.sharing == "groups" else None
                          ).owned(self.edges.shard.lo, self.edges.shard.hi)
        self.blocks = nn.ModuleList(Block(self.edges, config, sharing)
                                    for _ in range(num_blocks))
        for module in self.modules():  # untied layers: every [N, ...] tensor grows with N
            for name in getattr(module, "per_column", ()):
                if getattr(module, name, None) is not None:
                    self.edges.register_columns(module, name)
        # a checkpoint may hold edited wiring: resize per-edge tensors before loading it
        self._register_load_state_dict_pre_hook(self._resize_edges)
        self.reset_parameters()
        weight_dtype = getattr(torch, config.weight_dtype)
        for module in self.modules():
            if isinstance(module, ColumnLinear):
                module.to(weight_dtype)

    per_column = ("column_embed",)  # per-column tensors of this module (see SheetEdges)

    @property
    def num_columns(self) -> int:
        """Columns of the sheet (of every process, on a column-sharded sheet)."""
        return self.edges.num_columns

    @property
    def shard(self) -> ColumnShard:
        """This process's share of the columns (all of them on one process)."""
        return self.edges.shard

    @property
    def input_index(self) -> Tensor:
        """Columns of the input area, in token order."""
        return self.edges.area(self.config.input_area)

    @property
    def output_index(self) -> Tensor:
        """Columns of the output area (columns added to the sheet may have joined it)."""
        return self.edges.area(self.config.output_area)

    @property
    def geometry(self) -> Geometry:
        """The current wiring as a :class:`Geometry` (see :meth:`SheetEdges.geometry`)."""
        return self.edges.geometry()

    @property
    def edge_index(self) -> Tensor:
        """Current edges ``[2, E]`` (owned by ``self.edges``)."""
        return self.edges.index

    @property
    def edge_length(self) -> Tensor:
        """Current edge lengths ``[E]`` (owned by ``self.edges``)."""
        return self.edges.length

    def reset_parameters(self) -> None:
        nn.init.normal_(self.column_embed, std=0.02)
        if self.step_embed is not None:
            nn.init.normal_(self.step_embed, std=0.02)
        for block in self.blocks:
            block.reset_parameters()

    def _resize_edges(self, state_dict, prefix, *args) -> None:
        for key in [k for k in state_dict if k.startswith(prefix + "sheets.")]:
            # older checkpoints call the blocks `sheets`
            state_dict[prefix + "blocks." + key[len(prefix) + 7:]] = state_dict.pop(key)
        self.edges.resize_for(state_dict, prefix + "edges.")

    def forward(self, tokens: Tensor, need_attention: bool = True) -> ColumnformerOutput:
        n_in, C, T = self.input_index.numel(), self.config.channels, self.config.steps
        if not isinstance(tokens, Tensor) or not tokens.is_floating_point():
            got = (f"a {tokens.dtype} tensor" if isinstance(tokens, Tensor)
                   else type(tokens).__name__)
            raise TypeError(f"Expected tokens as a floating-point torch.Tensor [B, {n_in}, {C}] "
                            f"(got {got}). Convert with torch.as_tensor(x, dtype=torch.float32).")
        if tokens.dtype != self.column_embed.dtype:
            raise TypeError(f"tokens are {tokens.dtype} but the model is "
                            f"{self.column_embed.dtype}: convert one to the other "
                            f"(tokens.to({self.column_embed.dtype}) or model.to(tokens.dtype)).")
        if tokens.numel() == 0:
            raise ValueError(f"Empty batch: tokens of shape {list(tokens.shape)}. Pass at least "
                             f"one sample.")
        frames = tokens.dim() == 4
        if (tokens.dim() not in (3, 4) or tokens.shape[-2:] != (n_in, C)
                or (frames and tokens.size(1) != T)):
            raise ValueError(f"Expected tokens of shape [B, {n_in}, {C}] (one {C}-channel token "
                             f"per column of input area '{self.config.input_area}'), or frames "
                             f"[B, {T}, {n_in}, {C}] (one per step), got {list(tokens.shape)}. "
                             f"Match the number of input patches to the input area or change "
                             f"model.channels / model.steps.")
        # columns first inside the sheet: (N_in, B, C), or (T, N_in, B, C) for frames
        tokens = tokens.permute(1, 2, 0, 3) if frames else tokens.transpose(0, 1)
        rows, slots = self.shard.owned(self.input_index)  # this process's input columns
        if slots is not None:
            tokens = tokens.index_select(1 if frames else 0, slots)
        out_rows, _ = self.shard.owned(self.output_index)
        if not self._draws():  # nothing random inside: the shared stream is untouched
            return self._run(tokens, rows, out_rows, frames, need_attention)
        with self.shard.own_random(tokens.device):  # per-process dropout masks, if sharded
            return self._run(tokens, rows, out_rows, frames, need_attention)

    def _draws(self) -> bool:
        """Whether a forward pass draws random numbers (dropout in training mode)."""
        return self.training and any(isinstance(m, ColumnDropout) and m.p > 0
                                     for m in self.modules())

    def _run(self, tokens: Tensor, rows: Tensor, out_rows: Tensor, frames: bool,
             need_attention: bool) -> ColumnformerOutput:
        """The ``T`` recurrent steps of :meth:`forward` on checked, columns-first tokens."""
        B, T = tokens.size(-2), self.config.steps
        x = self.column_embed.unsqueeze(1).expand(-1, B, -1)  # (N, B, C)
        attention, outputs, states = [], [], []
        for t in range(T):
            block = self.blocks[0 if self.config.tied_depth else t]
            enter = tokens[t] if frames else (
                tokens if t == 0 or self.config.inject == "every" else None)
            if self.config.recompute and torch.is_grad_enabled() and not self._recording(block):
                # activation checkpointing: backward re-runs the step (same dropout masks:
                # the RNG state is restored), so only its input state is kept per step
                x, attn = checkpoint(self._step, block, t, x, enter, rows, need_attention,
                                     use_reentrant=False)
            else:
                x, attn = self._step(block, t, x, enter, rows, need_attention)
            attention.append(attn)
            states.append(x)
            if frames:
                outputs.append(x[out_rows].transpose(0, 1))  # (B, N_out, C)
        state = x.transpose(0, 1)  # (B, N, C)
        activity = Activity(states, self.config.activity_threshold, self.shard,
                            self.num_columns)
        return ColumnformerOutput(state[:, out_rows], state,
                                  attention if need_attention else None,
                                  torch.stack(outputs, 1) if frames else None, activity)

    def _step(self, block: Block, t: int, x: Tensor, enter: Tensor | None, rows: Tensor,
              need_attention: bool) -> tuple[Tensor, Tensor | None]:
        """Step ``t``: tokens ``enter`` the input area's columns ``rows``, the step embedding
        is added and the block runs."""
        if enter is not None:
            x = x.index_add(0, rows, enter)  # (N, B, C)
        if self.step_embed is not None:
            x = x + self.step_embed[t]
        return block(x, need_attention)

    @staticmethod
    def _recording(block: Block) -> bool:
        """Plasticity records a step's tensors (and hooks its gradient) as it runs: a
        recomputed step would record twice, so recording steps are not recomputed."""
        return block.attn.record is not None

    def extra_repr(self) -> str:
        c = self.config
        return (f"columns={self.num_columns}, edges={self.edge_index.size(1)}, "
                f"channels={c.channels}, steps={c.steps}, heads={c.heads}, "
                f"tied_depth={c.tied_depth}")
