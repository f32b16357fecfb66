"""Paired-seed statistics against hand-computed values."""

import numpy as np
import pytest

from rewire.stats import bootstrap_mean, paired_wilcoxon


def test_wilcoxon_signed_rank_p_values_by_hand():
    # five pairs, every difference positive: the exact two-sided p is 2 / 2^5
    assert paired_wilcoxon([1, 2, 3, 4, 5], [0, 0, 0, 0, 0])["p"] == pytest.approx(2 / 32)
    # differences 1, 2, 3, -4: W- = 4; of the 16 sign patterns 7 have a negative rank sum <= 4, so p = 14/16
    test = paired_wilcoxon([1.0, 2.0, 3.0, 0.0], [0.0, 0.0, 0.0, 4.0])
    assert (test["statistic"], test["p"], test["median_difference"]) == (4.0, pytest.approx(14 / 16), 1.5)
    tied = paired_wilcoxon([0.5, 0.5], [0.5, 0.5])  # no difference at all: no evidence either way
    assert (tied["p"], tied["nonzero_pairs"]) == (1.0, 0)
    with pytest.raises(ValueError, match="one length"):
        paired_wilcoxon([1, 2], [1])


def test_bootstrap_interval_of_the_mean():
    assert bootstrap_mean([0.3, 0.3, 0.3]) | {"n": 3} == {
        "mean": 0.3,
        "low": pytest.approx(0.3),
        "high": pytest.approx(0.3),
        "level": 0.95,
        "n": 3,
    }
    x = np.random.default_rng(1).normal(2.0, 1.0, 400)
    ci = bootstrap_mean(x, seed=0)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))  # the normal interval it should approach at n = 400
    assert ci["low"] < ci["mean"] < ci["high"] and ci["mean"] == pytest.approx(x.mean())
    assert ci["high"] - ci["low"] == pytest.approx(2 * half, rel=0.1)
    assert bootstrap_mean(x, seed=0) == ci  # one seed, the same interval
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_mean([])
