"""Homophily growth: the generative wiring model of connectome research as a grow rule.

Symbols: ``N`` columns, ``E`` edges, ``P`` candidate edges.

Developmental models of the connectome (Betzel et al. 2016, Akarca et al. 2021; see
:mod:`colgraph.connectome.generative`) add the edge ``s - t`` with probability
``~ D_st^eta * K_st^gamma``: ``D`` its length, ``K`` the matching index of the two columns
(the overlap of their neighbourhoods). ``grow=homophily`` does the same on a sheet during
training: a pool of candidates (``pool`` new sources per column, half uniform, half by the
exponential distance rule with scale ``lam``, every absent edge when ``pool >= N - 1``, as
the gradient rules), each scored ``length^homophily_eta * (K + epsilon)^homophily_gamma``,
and ``n`` of them drawn without replacement with probability proportional to the score
(Gumbel top-k). ``K`` is the matching index of the CURRENT wiring taken undirected (a
column's neighbours: its inputs and outputs), computed once per update: the edges drawn in
one update do not see each other (the sequential model adds one edge at a time).

Cost per update: ``O(P * k)`` for ``K`` (``k`` the mean number of neighbours) plus the
pool's ``O(P)``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .grow import GrowInputs, _all_non_edges, _room, candidate_pool, register_grow

__all__ = ["matching_index", "homophily_scores", "grow_homophily", "EPSILON"]

EPSILON = 1e-5  # added to K so that K^gamma is defined where no neighbour is shared


def matching_index(edge_index: Tensor, pairs: Tensor, num_columns: int) -> Tensor:
    """The matching index ``2 |N(s) & N(t)| / (|N(s) - {t}| + |N(t) - {s}|)`` (0 where
    both neighbourhoods are empty) of the pairs ``[2, P]``, with ``N(x)`` the columns wired
    to ``x`` in either direction in ``edge_index`` (self-edges ignored).

    Example:
        >>> ring = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])  # 0 - 1 - 2 - 3 - 0
        >>> matching_index(ring, torch.tensor([[0, 0], [2, 1]]), 4)  # 0, 2 share 1 and 3
        tensor([1., 0.], dtype=torch.float64)
    """
    import scipy.sparse as sp

    ei = edge_index[:, edge_index[0] != edge_index[1]].cpu().numpy()
    A = sp.csr_matrix((np.ones(2 * ei.shape[1]), (np.concatenate([ei[0], ei[1]]),
                                                  np.concatenate([ei[1], ei[0]]))),
                      shape=(num_columns, num_columns))
    A.data[:] = 1.0  # both directions of a reciprocal pair: one neighbour
    s, t = pairs.cpu().numpy()
    common = np.asarray(A[s].multiply(A[t]).sum(1)).ravel()
    deg = np.asarray(A.sum(1)).ravel()
    linked = np.asarray(A[s, t]).ravel()
    den = deg[s] + deg[t] - 2 * linked
    return torch.from_numpy(np.divide(2 * common, den, out=np.zeros(s.size), where=den > 0))


def homophily_scores(edge_index: Tensor, pairs: Tensor, length: Tensor, num_columns: int,
                     eta: float, gamma: float) -> Tensor:
    """``log(length^eta * (K + EPSILON)^gamma)`` of the pairs ``[2, P]`` (``K``: their
    :func:`matching_index`); lengths of 0 count as 1e-12."""
    k = matching_index(edge_index, pairs, num_columns)
    d = length.detach().double().cpu().clamp_min(1e-12)
    return eta * d.log() + gamma * (k + EPSILON).log()


def _check_exponent(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not np.isfinite(value):
        raise ValueError(f"grow rule 'homophily': plasticity.{name} must be a finite number "
                         f"(got {value!r}).")


@register_grow("homophily")
def grow_homophily(inputs: GrowInputs, n: int, *, lam: float = 1.0, pool: int = 8,
                   homophily_eta: float = -2.0, homophily_gamma: float = 1.0) -> Tensor:
    """Draw ``n`` candidates with probability ``~ length^homophily_eta *
    K^homophily_gamma`` (``K`` the matching index of the current wiring): short edges
    between columns that share neighbours first. The defaults are illustrative: fit them
    to a connectome with :func:`colgraph.connectome.fit_generative`."""
    _check_exponent("homophily_eta", homophily_eta)
    _check_exponent("homophily_gamma", homophily_gamma)
    if inputs.length_fn is None:
        raise ValueError("Grow rule 'homophily' needs edge lengths (length_fn), e.g. "
                         "length_fn=geometry.measure.")
    N = inputs.pos.size(0)
    if n >= _room(inputs.edge_index, N):  # every absent edge asked for
        cand = _all_non_edges(inputs.edge_index, N)
    else:
        cand = candidate_pool(inputs, pool, lam, "grow rule 'homophily'")
    if cand.size(1) == 0 or n == 0:
        return cand[:, :0]
    score = homophily_scores(inputs.edge_index, cand, inputs.length_fn(cand[0], cand[1]), N,
                             homophily_eta, homophily_gamma)
    keys = score.numpy() + inputs.rng.gumbel(size=score.numel())  # Gumbel top-k: draws
    take = min(n, keys.size)  # without replacement, probability ~ exp(score)
    best = np.argpartition(-keys, take - 1)[:take] if take < keys.size else np.arange(take)
    return cand[:, torch.from_numpy(best).to(cand.device)]
