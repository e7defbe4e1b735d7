"""Edge lengths: the exponential-distance-rule fit, wiring cost, weight-distance
correlation and receptive-field sizes."""
from __future__ import annotations

from typing import Any

import numpy as np

from .arrays import _a

__all__ = ["edr_fit", "wiring", "weight_distance", "receptive_fields"]


def edr_fit(G, bins: int = 30) -> dict[str, Any]:
    """Fit the exponential distance rule to the weight-weighted edge-length distribution.

    ``P(length) ~ exp(-(length - l_min) / lambda)``: ``lambda`` by weighted maximum
    likelihood (``weighted mean - l_min``); goodness of fit as the Kolmogorov-Smirnov
    distance between the weighted empirical and fitted CDFs, and R^2 of the straight-line
    fit to the log density histogram.
    """
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1 (got {bins!r}).")
    a = _a(G)
    ok = np.isfinite(a.length) & (a.length > 0) & (a.weight > 0)
    ln, w = a.length[ok], a.weight[ok]
    if ln.size < 2:
        return {"lambda": float("nan"), "ks": float("nan"), "r2": float("nan"),
                "note": f"n/a: {ln.size} edge(s) with a length > 0 and a weight > 0 (the fit "
                        f"needs 2 or more)"}
    l_min = float(ln.min())
    lam = max(float(np.average(ln, weights=w)) - l_min, 1e-12)
    order = np.argsort(ln)
    cdf = np.cumsum(w[order]) / w.sum()
    fitted = 1 - np.exp(-(ln[order] - l_min) / lam)
    ks = float(np.abs(cdf - fitted).max())
    density, edges = np.histogram(ln, bins=bins, weights=w, density=True)
    centres = (edges[:-1] + edges[1:]) / 2
    nz = density > 0
    r2 = float("nan")
    if nz.sum() > 2:
        y = np.log(density[nz])
        coef = np.polyfit(centres[nz], y, 1)
        resid = y - np.polyval(coef, centres[nz])
        r2 = float(1 - resid.var() / max(y.var(), 1e-12))
    return {"lambda": lam, "l_min": l_min, "ks": ks, "r2": r2,
            "mean_length": float(np.average(ln, weights=w)),
            "hist_density": density.tolist(), "hist_edges": edges.tolist()}


def wiring(G) -> dict[str, float]:
    """Total and mean-per-column wiring cost ``sum_e weight_e * length_e``."""
    a = _a(G)
    ok = np.isfinite(a.length)
    total = float((a.weight[ok] * a.length[ok]).sum())
    return {"wiring_total": total, "wiring_per_column": total / max(a.n, 1)}


def weight_distance(G) -> dict[str, float]:
    """Spearman correlation between edge weight and edge length."""
    from scipy.stats import spearmanr

    a = _a(G)
    ok = np.isfinite(a.length)
    if ok.sum() < 3 or np.ptp(a.weight[ok]) == 0 or np.ptp(a.length[ok]) == 0:
        return {"weight_distance_rho": float("nan"), "weight_distance_p": float("nan")}
    rho, p = spearmanr(a.weight[ok], a.length[ok])
    return {"weight_distance_rho": float(rho), "weight_distance_p": float(p)}


def receptive_fields(G) -> np.ndarray:
    """Receptive-field size per column: weight-averaged length of its incoming edges."""
    a = _a(G)
    ok = np.isfinite(a.length)
    num = np.bincount(a.dst[ok], a.weight[ok] * a.length[ok], minlength=a.n)
    den = np.bincount(a.dst[ok], a.weight[ok], minlength=a.n)
    return np.divide(num, den, out=np.full(a.n, np.nan), where=den > 0)
