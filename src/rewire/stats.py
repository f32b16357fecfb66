"""Paired-seed statistics for benchmark claims: bootstrap intervals of a mean and the Wilcoxon signed-rank
test on paired differences (seed i of a method and of its baseline share data and initialisation)."""

from __future__ import annotations

import numpy as np
from scipy import stats


def bootstrap_mean(values: np.ndarray, seed: int = 0, resamples: int = 10_000, level: float = 0.95) -> dict:
    """The mean of `values` and the percentile bootstrap interval at `level` over `resamples` resamples."""
    x = np.asarray(values, np.float64)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"need a non-empty 1-D sample, got shape {x.shape}")
    idx = np.random.default_rng(seed).integers(0, len(x), (resamples, len(x)))
    means = x[idx].mean(1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return {"mean": float(x.mean()), "low": float(low), "high": float(high), "level": level, "n": len(x)}


def paired_wilcoxon(a: np.ndarray, b: np.ndarray) -> dict:
    """Two-sided Wilcoxon signed-rank test of a - b (zero differences dropped, scipy's default, exact for
    small samples without ties). p is 1.0 when every difference is zero: no evidence either way."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be 1-D and of one length, got {a.shape} and {b.shape}")
    diff = a - b
    nonzero = int(np.count_nonzero(diff))
    out = {"median_difference": float(np.median(diff)), "nonzero_pairs": nonzero, "pairs": len(diff)}
    if nonzero == 0:
        return out | {"statistic": 0.0, "p": 1.0}
    res = stats.wilcoxon(a, b)
    return out | {"statistic": float(res.statistic), "p": float(res.pvalue)}
