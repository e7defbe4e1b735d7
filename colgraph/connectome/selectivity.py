"""Class selectivity of each column: how much more (or less) it responds to one class than to
the others.

A column's response to a sample is its scalar activity, the RMS over channels of its final
state (:func:`colgraph.objectives.column_activity`). For each column and class ``c``::

    d'_c = (mean_c - mean_rest) / sqrt((var_c + var_rest) / 2)

over the samples of class ``c`` and those of every other class (variances with ``n - 1``).
A column's preferred class is the one of largest ``d'``; its selectivity is that ``d'``.

Symbols: ``N`` columns, ``K`` classes, ``S`` samples, ``B`` batch. Responses are never
kept: per-class sums and sums of squares ``[K, N]`` accumulate batch by batch (``O(K N)``
memory, float64, shifted by the first batch's mean against cancellation).
"""
from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["class_selectivity", "selectivity_from_responses", "add_selectivity",
           "has_labels", "RESPONSE"]

RESPONSE = "RMS over channels of the final state (colgraph.objectives.column_activity)"


class _ClassMoments:
    """Running per-class count, sum and sum of squares of responses ``[B, N]``."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.shift: np.ndarray | None = None
        self.count = np.zeros(0, dtype=np.int64)
        self.sum = np.zeros((0, n))
        self.sq = np.zeros((0, n))

    def add(self, r: np.ndarray, y: np.ndarray) -> None:
        import scipy.sparse as sp

        if self.shift is None:
            self.shift = r.mean(0)
        k = int(y.max()) + 1
        if k > self.count.size:  # a class not seen before: one more row each
            grow = k - self.count.size
            self.count = np.r_[self.count, np.zeros(grow, dtype=np.int64)]
            self.sum = np.r_[self.sum, np.zeros((grow, self.n))]
            self.sq = np.r_[self.sq, np.zeros((grow, self.n))]
        r = r - self.shift
        onehot = sp.csr_matrix((np.ones(y.size), (y, np.arange(y.size))), shape=(k, y.size))
        self.count[:k] += np.bincount(y, minlength=k)
        self.sum[:k] += onehot @ r
        self.sq[:k] += onehot @ (r * r)

    def result(self) -> dict[str, Any]:
        seen = np.flatnonzero(self.count)
        n_c = self.count[seen].astype(float)[:, None]  # (K, 1)
        s_c, q_c = self.sum[seen], self.sq[seen]  # (K, N)
        total = n_c.sum()
        n_r, s_r, q_r = total - n_c, s_c.sum(0) - s_c, q_c.sum(0) - q_c

        def moments(n, s, q):
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = s / n
                var = np.clip(q - n * mean * mean, 0.0, None) / (n - 1)
            return mean, var

        (m_c, v_c), (m_r, v_r) = moments(n_c, s_c, q_c), moments(n_r, s_r, q_r)
        pooled = (v_c + v_r) / 2
        # a column whose spread is float rounding of its mean response responds the same
        # to every sample: no d' (1e-6: float32 states computed in different batches)
        mean = np.abs(self.shift + s_c.sum(0) / max(total, 1))  # (N,)
        ok = (n_c >= 2) & (n_r >= 2) & (pooled > 0) & (np.sqrt(pooled) > 1e-6 * mean)
        with np.errstate(invalid="ignore", divide="ignore"):
            dprime = np.where(ok, (m_c - m_r) / np.sqrt(pooled), np.nan).T  # (N, K)
        defined = ~np.isnan(dprime).all(1)
        best = np.full(self.n, -1)
        best[defined] = seen[np.nanargmax(dprime[defined], axis=1)]
        top = np.full(self.n, np.nan)
        top[defined] = np.nanmax(dprime[defined], axis=1)
        out = {"dprime": dprime, "classes": seen, "preferred_class": best, "selectivity": top,
               "samples": self.count[seen], "response": RESPONSE}
        notes = []
        few = seen[self.count[seen] < 2]
        if few.size:
            notes.append(f"class(es) {few.tolist()} have fewer than 2 samples: their d' is "
                         f"undefined (NaN)")
        if (~defined).any():
            notes.append(f"{int((~defined).sum())} column(s) respond the same to every "
                         f"sample: no d' (preferred_class -1, selectivity NaN)")
        if notes:
            out["note"] = "; ".join(notes)
        return out


def _labels(y: Any, size: int, where: str) -> np.ndarray:
    """Class labels ``[B]`` as non-negative integers (with an error that says what arrived)."""
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.shape != (size,) or not (np.issubdtype(y.dtype, np.integer) or y.dtype == bool):
        raise ValueError(f"Expected integer class labels of shape [{size}] {where}, got "
                         f"{y.dtype} of shape {list(y.shape)}. Class selectivity needs a "
                         f"classification data set's labels (one class per sample).")
    if y.size and y.min() < 0:
        raise ValueError(f"Expected class labels >= 0 {where}, got {int(y.min())}.")
    return y.astype(np.int64)


def selectivity_from_responses(responses: Any, labels: Any) -> dict[str, Any]:
    """Class selectivity from responses you measured: ``responses [S, N]`` (one scalar per
    sample and column), ``labels [S]`` (integer classes).

    Returns ``dprime [N, K]`` (column x class), ``classes [K]`` (the labels seen, in
    order), ``preferred_class [N]`` (the class of largest d'; -1 where none is defined),
    ``selectivity [N]`` (that d'), ``samples [K]`` per class; ``note`` when a d' is
    undefined (a class with fewer than 2 samples, a column that responds the same to all).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = np.arange(300) % 3
        >>> r = rng.normal(size=(300, 4)); r[:, 1] += 3.0 * (y == 2)  # column 1 likes class 2
        >>> s = selectivity_from_responses(r, y)
        >>> int(s["preferred_class"][1]), bool(s["selectivity"][1] > 2)
        (2, True)
    """
    if hasattr(responses, "detach"):
        responses = responses.detach().cpu().numpy()
    r = np.asarray(responses, dtype=float)
    if r.ndim != 2 or r.shape[0] < 1 or r.shape[1] < 1:
        raise ValueError(f"Expected responses of shape [S, N] (samples x columns), got "
                         f"{list(r.shape)}.")
    if not np.isfinite(r).all():
        raise ValueError("Expected finite responses (some are NaN or inf): a diverged model "
                         "or NaN input.")
    y = _labels(labels, r.shape[0], "(one per row of responses)")
    moments = _ClassMoments(r.shape[1])
    moments.add(r, y)
    return moments.result()


def has_labels(batch: Any) -> bool:
    """Whether a loader's batch is ``(x, y)`` with integer class labels ``y [B]``."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        return False
    x, y = batch[0], batch[1]
    try:
        _labels(y, len(x), "")
    except (ValueError, TypeError):
        return False
    return True


def class_selectivity(model_or_path: Any, loader: Any = "test", max_batches: int | None = None
                      ) -> dict[str, Any]:
    """Class selectivity of every column of a trained sheet over a data set.

    Args:
        model_or_path: a task model (or a bare ``Columnformer``), or a checkpoint / run
            directory.
        loader: ``(x, y)`` batches with integer class labels ``y [B]`` (samples the task
            encodes; tokens for a bare Columnformer), or ``"test"``: the checkpoint's test set.
        max_batches: stop after this many batches.

    Returns the dict of :func:`selectivity_from_responses`, one row per column in column
    order; ``response`` says what a response is (:data:`RESPONSE`).

    Example:
        >>> s = class_selectivity("runs/.../checkpoint.pt")          # doctest: +SKIP
        >>> s["preferred_class"][:5], s["selectivity"][:5]            # doctest: +SKIP
    """
    import torch

    from .export import _unwrap

    if max_batches is not None and (isinstance(max_batches, bool) or not isinstance(
            max_batches, int) or max_batches < 1):
        raise ValueError(f"max_batches must be an integer >= 1 or None (got {max_batches!r}).")
    if loader is None or (isinstance(loader, str) and loader != "test"):
        raise ValueError(f"loader must be 'test' (the checkpoint's test set) or an iterable of "
                         f"(x, y) batches with class labels (got {loader!r}).")
    model, cf, _, data = _unwrap(model_or_path, with_data=loader == "test")
    if cf.edges.shard.enabled:
        raise ValueError("class_selectivity runs on a whole sheet; this model is one process's "
                         "share of a column-sharded sheet. Load the checkpoint in one process "
                         "(colgraph.load_model) and measure there.")
    if isinstance(loader, str):
        if data is None:
            raise ValueError("loader='test' needs a checkpoint path (its config names the "
                             "data); pass (x, y) batches for a model in memory.")
        from ..data import iterate_batches

        loader = iterate_batches(data.x_test, data.y_test, 256)
    from ..objectives import column_activity

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    moments = _ClassMoments(cf.num_columns)
    try:
        with torch.no_grad():
            for i, batch in enumerate(loader):
                if max_batches is not None and i >= max_batches:
                    break
                if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                    raise ValueError(f"Expected (x, y) batches with class labels y, got a "
                                     f"{type(batch).__name__} (batch {i}). Yield (x, y) pairs.")
                x, y = batch[0], _labels(batch[1], len(batch[0]), f"in batch {i}")
                x = x.to(device)
                tokens = x if model is cf else model.encode(x)  # what the task feeds the sheet
                state = cf(tokens, need_attention=False).state  # (B, N, C)
                r = column_activity(state).double().cpu().numpy()  # (B, N)
                if not np.isfinite(r).all():
                    raise ValueError(f"The sheet's states hold NaN or inf (batch {i}): the "
                                     f"model diverged or the input holds NaN.")
                moments.add(r, y)
    finally:
        model.train(was_training)
    if moments.shift is None:
        raise ValueError("The loader yielded no batches.")
    return moments.result()


def add_selectivity(G, result: dict[str, Any]):
    """``G`` with node attributes ``selectivity`` (max d') and ``preferred_class`` from
    :func:`class_selectivity` (columns in node order). Returns ``G`` (changed in place)."""
    top, best = result["selectivity"], result["preferred_class"]
    if len(top) != G.number_of_nodes():
        raise ValueError(f"Expected selectivity for the graph's {G.number_of_nodes()} columns, "
                         f"got {len(top)}: was it measured on this sheet?")
    for v, s, c in zip(G.nodes, top, best):
        G.nodes[v]["selectivity"] = float(s)
        G.nodes[v]["preferred_class"] = int(c)
    return G
