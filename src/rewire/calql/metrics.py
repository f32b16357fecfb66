"""Offline-to-online metrics on evaluation curves: the dip after the switch and the regret (Nakamoto et al.
2023, Sec. 6; README, "Cal-QL")."""

from __future__ import annotations

import numpy as np

DIP_WINDOW = 0.2  # the dip is looked for in the first fifth of the online budget


def dip_depth(
    online_steps: np.ndarray, scores: np.ndarray, online_budget: int, window: float = DIP_WINDOW
) -> float:
    """Score at the switch (step 0) minus the lowest score in the first `window` of online steps, the
    switch included (so an immediate improvement gives 0, never a negative dip)."""
    online_steps, scores = np.asarray(online_steps), np.asarray(scores, float)
    if online_steps[0] != 0:
        raise ValueError("the curve must start with the evaluation at the switch (online step 0)")
    early = scores[online_steps <= window * online_budget]
    return float(scores[0] - early.min())


def cumulative_regret(online_steps: np.ndarray, success: np.ndarray) -> float:
    """Mean of (1 - success) over the online evaluations after the switch (1.0 is worst)."""
    online_steps, success = np.asarray(online_steps), np.asarray(success, float)
    after = success[online_steps > 0]
    if after.size == 0:
        raise ValueError("no online evaluation after the switch")
    return float(np.mean(1.0 - after))
