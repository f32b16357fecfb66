"""The Gaussian binary-tree mechanism (Dwork et al. 2010; Chan, Shi & Song 2011), its calibration to
ρ-TV-stability, each user's statistic, and the reflection-maximal coupling that unlearns one tree node.

Episodes are numbered t = 1..T. After episode t one node is released: the sum of the statistics of the
episodes in block(t) = (t - lowbit(t), t], plus N(0, σ²I) noise. prefix(t) adds the nodes of t's binary
decomposition (t, t - lowbit(t), ...), so an episode lies in at most L = floor(log2 T) + 1 released nodes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from scipy.stats import norm


def lowbit(t: jax.Array) -> jax.Array:
    """The largest power of two dividing t (t >= 1)."""
    return t & -t


def levels(episodes: int) -> int:
    """L = floor(log2 T) + 1: the most released nodes any one episode lies in."""
    return episodes.bit_length()


def contains(t: jax.Array, i: jax.Array) -> jax.Array:
    """Whether node t's block (t - lowbit(t), t] holds episode i."""
    return (t - lowbit(t) < i) & (i <= t)


def nodes_holding(i: jax.Array, n_levels: int) -> jax.Array:
    """The nodes holding episode i, ascending: i, i + lowbit(i), ... (the Fenwick update path); `n_levels`
    entries, of which those past T are never released."""

    def up(u, _):
        return u + lowbit(u), u

    return jax.lax.scan(up, i, None, length=n_levels)[1]


def prefix_nodes(t: jax.Array, n_levels: int) -> tuple[jax.Array, jax.Array]:
    """prefix(t)'s nodes by level j: node (t >> j) << j, covering 2^j episodes, used where bit j of t is set.
    Returns (nodes, used), both (n_levels,)."""
    j = jnp.arange(n_levels)
    return (t >> j) << j, ((t >> j) & 1) == 1


def stat_size(states: int, actions: int, horizon: int) -> int:
    """d = H·S·A·(S + 2): visit counts, transition counts and reward sums of every (h, s, a)."""
    return horizon * states * actions * (states + 2)


def stat_blocks(
    x: jax.Array, states: int, actions: int, horizon: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Split a statistic (or a sum of them) into its blocks: visit counts (H, S, A), transition counts
    (H, S, A, S') and reward sums (H, S, A), the layout `episode_stat` writes."""
    cells = horizon * states * actions
    return (
        x[:cells].reshape(horizon, states, actions),
        x[cells : cells * (states + 1)].reshape(horizon, states, actions, states),
        x[cells * (states + 1) :].reshape(horizon, states, actions),
    )


def episode_stat(traj: jax.Array, present: jax.Array, states: int, actions: int) -> jax.Array:
    """One episode's statistic x: +1 at the visit count of each (h, s, a), +1 at its (s') transition count,
    +r at its reward sum; zero for a deleted (null) slot. ‖x‖² = 2H + Σ r_h²."""
    horizon = traj.shape[0]
    cells = horizon * states * actions
    s, a, r, s_next = traj.T
    k = (jnp.arange(horizon) * states + s) * actions + a
    x = jnp.zeros(cells * (states + 2))
    x = x.at[k].add(1.0).at[cells + k * states + s_next].add(1.0).at[cells * (states + 1) + k].add(r)
    return x * present


class Calibration(NamedTuple):
    """The learner's noise and bonus constants (scalars in the state, so one compiled learner serves every ρ).

    sigma: node noise std; margin: E, the bound on a prefix's noise; iota: the log term of the bonus;
    bonus_scale: c_β multiplying the bonus (1 is the theory's value)."""

    sigma: jax.Array
    margin: jax.Array
    iota: jax.Array
    bonus_scale: jax.Array


BONUSES = ("theory", "practical")


def calibrate(
    rho: float | None, states: int, actions: int, horizon: int, episodes: int, delta: float, bonus: str
) -> Calibration:
    """σ = √L·Δ/μ* with Δ = √(3H) (one user's L2 sensitivity) and μ* = 2Φ⁻¹((1+ρ)/2), so the L nodes holding
    a user compose to μ = √L·Δ/σ = μ* Gaussian-DP and TV ≤ 2Φ(μ/2) - 1 = ρ. E = √L·σ·√(2 ln(2dT/δ)) bounds
    every prefix noise coordinate with probability 1 - δ; ι = ln(6SAHT/δ). `rho` None: σ = E = 0
    (non-private UCBVI). The practical bonus takes E as one standard deviation of the worst prefix's noise,
    √L·σ, and the smallest c_β that keeps a never-visited cell optimistic: c_β = H/((H + 1)√(2ι)), so that
    β = H at N⁺ = 1."""
    if bonus not in BONUSES:
        raise ValueError(f"unknown bonus {bonus!r}; choose from {list(BONUSES)}")
    if rho is not None and not 0 < rho < 1:
        raise ValueError(f"rho must be in (0, 1) (a total-variation bound), got {rho}")
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    n_levels = levels(episodes)
    d = stat_size(states, actions, horizon)
    sigma = 0.0 if rho is None else math.sqrt(n_levels * 3 * horizon) / (2 * norm.ppf((1 + rho) / 2))
    spread = math.sqrt(n_levels) * sigma
    margin = spread * (math.sqrt(2 * math.log(2 * d * episodes / delta)) if bonus == "theory" else 1.0)
    iota = math.log(6 * states * actions * horizon * episodes / delta)
    scale = 1.0 if bonus == "theory" else horizon / ((horizon + 1) * math.sqrt(2 * iota))
    return Calibration(sigma, margin, iota, scale)


def node_tv(x_norm: jax.Array, sigma: jax.Array) -> jax.Array:
    """TV(N(s, σ²I), N(s - x, σ²I)) = 2Φ(‖x‖/(2σ)) - 1: one node's chance of a coupling failure."""
    return jnp.where(
        sigma > 0, 2 * jax.scipy.stats.norm.cdf(x_norm / (2 * jnp.where(sigma > 0, sigma, 1))) - 1, 1
    )


def keep_log_prob(y: jax.Array, s_old: jax.Array, x: jax.Array, sigma: jax.Array) -> jax.Array:
    """log min(1, q(y)/p(y)) for p = N(s_old, σ²I), q = N(s_old - x, σ²I):
    log q - log p = -(‖x‖² + 2⟨y - s_old, x⟩)/(2σ²). σ = 0 never keeps a changed node."""
    log_ratio = -(x @ x + 2 * (y - s_old) @ x) / (2 * jnp.where(sigma > 0, sigma, 1) ** 2)
    return jnp.where(sigma > 0, jnp.minimum(0.0, log_ratio), jnp.where(x @ x > 0, -jnp.inf, 0.0))


def reflect(y: jax.Array, s_old: jax.Array, x: jax.Array) -> jax.Array:
    """Reflect y through the hyperplane half-way between s_old and s_old - x (normal e = x/‖x‖): a rejected
    draw of N(s_old, σ²I) becomes an exact draw from the residual (q - p)⁺/TV (Bou-Rabee, Eberle & Zimmer)."""
    e = x / jnp.sqrt(x @ x)
    mid = s_old - x / 2
    return y - 2 * ((y - mid) @ e) * e
