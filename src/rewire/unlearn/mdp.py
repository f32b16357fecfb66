"""Episodic tabular MDPs with h-indexed transitions and Bernoulli rewards, exact dynamic programming, and
users as replayable response tables.

A user is a key. From it come the user's start state and one response per (h, s, a): the next state and a
0/1 reward. An episode reads at most one entry per step, so the trajectory any policy induces has exactly
the MDP's law. Bernoulli rewards also keep every statistic an integer, so the learner's sums are exact in
float64 in any order.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

MDPS = ("random", "riverswim", "grid")
GIVEN = "given"  # a setup's `mdp` when the user passed the MDP itself (it is stored with the learner)


class TabularMDP(NamedTuple):
    """transitions (H, S, A, S), reward_mean (H, S, A) in [0, 1], initial (S,) start-state distribution."""

    transitions: jax.Array
    reward_mean: jax.Array
    initial: jax.Array

    @classmethod
    def stationary(
        cls, transitions: ArrayLike, reward_mean: ArrayLike, initial: ArrayLike, horizon: int
    ) -> TabularMDP:
        """The MDP that plays the same transitions (S, A, S) and reward means (S, A) at every one of
        `horizon` steps; validated."""
        if not isinstance(horizon, int | np.integer) or horizon < 1:
            raise ValueError(f"the horizon must be a positive integer, got {horizon!r}")
        p, r = np.asarray(transitions, np.float64), np.asarray(reward_mean, np.float64)
        mdp = cls(
            np.broadcast_to(p, (int(horizon), *p.shape)),
            np.broadcast_to(r, (int(horizon), *r.shape)),
            np.asarray(initial, np.float64),
        )
        mdp.validate()
        return mdp

    @property
    def shape(self) -> tuple[int, int, int]:
        """(S, A, H)."""
        horizon, states, actions, _ = self.transitions.shape
        return states, actions, horizon

    def validate(self) -> None:
        """Raise a `ValueError` unless the arrays are an MDP: shapes that agree, transition rows and the
        start distribution that are probability vectors, reward means in [0, 1] (Bernoulli rewards)."""
        p, r, mu = (np.asarray(x, np.float64) for x in self)
        if p.ndim != 4 or p.shape[1] != p.shape[3] or r.shape != p.shape[:3] or mu.shape != p.shape[1:2]:
            raise ValueError(
                f"an MDP needs transitions (H, S, A, S), reward means (H, S, A) and a start distribution "
                f"(S,); got {p.shape}, {r.shape} and {mu.shape}"
            )
        if not (np.isfinite(p).all() and np.isfinite(r).all() and np.isfinite(mu).all()):
            raise ValueError("the MDP has NaN or infinite entries")
        rows = p.sum(-1)
        if (p < 0).any() or not np.allclose(rows, 1.0, atol=1e-6):
            h, s, a = np.unravel_index(np.argmax(np.abs(rows - 1.0) + (p < 0).any(-1)), rows.shape)
            raise ValueError(
                f"transition row (h={h}, s={s}, a={a}) is not a probability vector "
                f"(it sums to {rows[h, s, a]:.6g})"
            )
        if (mu < 0).any() or not np.isclose(mu.sum(), 1.0, atol=1e-6):
            raise ValueError(
                f"the start distribution is not a probability vector (it sums to {mu.sum():.6g})"
            )
        if (r < 0).any() or (r > 1).any():
            raise ValueError("reward means must lie in [0, 1] (rewards are Bernoulli)")


def read_mdp(path: str | os.PathLike) -> TabularMDP:
    """A user's MDP from an NPZ file: `transitions` (H, S, A, S) and `reward_mean` (H, S, A), or the
    stationary (S, A, S) and (S, A) with an integer `horizon`; and `initial` (S,). Validated; a bad file
    gets a one-line error naming it."""
    from rewire.store import read_npz

    arrays = read_npz(path)
    names = set(arrays)
    need = {"transitions", "reward_mean", "initial"}
    if not need <= names or names - need - {"horizon"}:
        raise ValueError(
            f"{path}: an MDP file holds transitions, reward_mean, initial (and horizon if stationary); "
            f"it has {sorted(names)}"
        )
    try:
        if "horizon" in arrays:
            horizon = arrays["horizon"]
            if horizon.shape != () or horizon.dtype.kind not in "iu":
                raise ValueError(f"horizon must be one integer, got {horizon.dtype}{list(horizon.shape)}")
            return TabularMDP.stationary(
                arrays["transitions"], arrays["reward_mean"], arrays["initial"], int(horizon)
            )
        mdp = TabularMDP(*(np.asarray(arrays[k], np.float64) for k in TabularMDP._fields))
        mdp.validate()
        return mdp
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: {err}") from None


class Table(NamedTuple):
    """One user's responses: start state, next state and 0/1 reward for every (h, s, a)."""

    start: jax.Array
    next_state: jax.Array
    reward: jax.Array


def random_mdp(key: jax.Array, states: int, actions: int, horizon: int) -> TabularMDP:
    """A random stationary MDP: Dirichlet(1/2) transitions, uniform reward means, a uniform start state."""
    k_p, k_r = jax.random.split(key)
    p = jax.random.dirichlet(k_p, jnp.full(states, 0.5), (states, actions))
    r = jax.random.uniform(k_r, (states, actions))
    return TabularMDP(
        jnp.broadcast_to(p, (horizon, states, actions, states)),
        jnp.broadcast_to(r, (horizon, states, actions)),
        jnp.full(states, 1.0 / states),
    )


def riverswim(states: int, horizon: int) -> TabularMDP:
    """RiverSwim (Strehl & Littman 2008): action 0 drifts left (reward mean 0.005 at the left bank), action
    1 swims right against the current (0.35 right, 0.6 stay, 0.05 back; reward mean 1 at the right bank).
    Every user starts at the left bank."""
    if states < 2:
        raise ValueError(f"riverswim needs at least 2 states, got {states}")
    p = jnp.zeros((states, 2, states))
    r = jnp.zeros((states, 2))
    s = jnp.arange(states)
    p = p.at[s, 0, jnp.maximum(s - 1, 0)].add(1.0)
    p = p.at[s, 1, jnp.minimum(s + 1, states - 1)].add(0.35)
    p = p.at[s, 1, s].add(0.6)
    p = p.at[s, 1, jnp.maximum(s - 1, 0)].add(0.05)
    r = r.at[0, 0].set(0.005).at[states - 1, 1].set(1.0)
    return TabularMDP(
        jnp.broadcast_to(p, (horizon, states, 2, states)),
        jnp.broadcast_to(r, (horizon, states, 2)),
        jnp.zeros(states).at[0].set(1.0),
    )


def grid(states: int, horizon: int, slip: float = 0.2) -> TabularMDP:
    """A side x side grid (states = side^2): actions up, right, down, left; with probability `slip` the move
    goes in a uniformly random direction; walls keep the agent in place. Start top-left; every action in the
    bottom-right corner pays reward 1."""
    side = round(states**0.5)
    if side * side != states or side < 2:
        raise ValueError(f"grid needs a square number of states (4, 9, 16, ...), got {states}")
    row, col = jnp.divmod(jnp.arange(states), side)
    moves = jnp.array([[-1, 0], [0, 1], [1, 0], [0, -1]])
    target = [
        jnp.clip(row + dr, 0, side - 1) * side + jnp.clip(col + dc, 0, side - 1) for dr, dc in moves.tolist()
    ]
    move = jnp.stack([jax.nn.one_hot(t, states) for t in target], axis=1)  # (S, 4, S)
    p = (1 - slip) * move + slip * move.mean(axis=1, keepdims=True)
    r = jnp.zeros((states, 4)).at[states - 1].set(1.0)
    return TabularMDP(
        jnp.broadcast_to(p, (horizon, states, 4, states)),
        jnp.broadcast_to(r, (horizon, states, 4)),
        jnp.zeros(states).at[0].set(1.0),
    )


def make_mdp(name: str, states: int, actions: int | None, horizon: int, key: jax.Array) -> TabularMDP:
    """Build one of `MDPS`; `actions` None takes the MDP's own count (riverswim 2, grid 4, random 2)."""
    if horizon < 1 or states < 1:
        raise ValueError(f"need states >= 1 and horizon >= 1, got states={states}, horizon={horizon}")
    fixed = {"riverswim": 2, "grid": 4}
    if name == GIVEN:
        raise ValueError("this setup's MDP was given as arrays: it is stored with the learner, not rebuilt")
    if name not in MDPS:
        raise ValueError(f"unknown MDP {name!r}; choose from {list(MDPS)}")
    if name in fixed and actions not in (None, fixed[name]):
        raise ValueError(f"{name} has {fixed[name]} actions, got --actions {actions}")
    if name == "riverswim":
        return riverswim(states, horizon)
    if name == "grid":
        return grid(states, horizon)
    actions = 2 if actions is None else actions
    if actions < 1:
        raise ValueError(f"need actions >= 1, got {actions}")
    return random_mdp(key, states, actions, horizon)


def optimal_values(mdp: TabularMDP) -> jax.Array:
    """V*_h(s) for h = 0..H (V*_H = 0) by backward induction."""

    def backup(v_next, inputs):
        p, r = inputs
        v = (r + p @ v_next).max(-1)
        return v, v

    _, vs = jax.lax.scan(
        backup, jnp.zeros(mdp.initial.shape), (mdp.transitions, mdp.reward_mean), reverse=True
    )
    return jnp.concatenate([vs, jnp.zeros((1, *mdp.initial.shape))])


def policy_values(mdp: TabularMDP, policy: jax.Array) -> jax.Array:
    """V^π_h(s) for h = 0..H of a deterministic policy (H, S) of action indices."""

    def backup(v_next, inputs):
        p, r, pi = inputs
        q = r + p @ v_next
        v = jnp.take_along_axis(q, pi[:, None], axis=-1)[:, 0]
        return v, v

    _, vs = jax.lax.scan(
        backup, jnp.zeros(mdp.initial.shape), (mdp.transitions, mdp.reward_mean, policy), reverse=True
    )
    return jnp.concatenate([vs, jnp.zeros((1, *mdp.initial.shape))])


def user_table(mdp: TabularMDP, key: jax.Array) -> Table:
    """The user's response table, a deterministic function of the user's key."""
    k_s, k_n, k_r = jax.random.split(key, 3)
    start = jax.random.categorical(k_s, jnp.log(mdp.initial))
    next_state = jax.random.categorical(k_n, jnp.log(mdp.transitions))
    reward = jax.random.bernoulli(k_r, mdp.reward_mean).astype(jnp.int32)
    return Table(start, next_state, reward)


def play(table: Table, policy: jax.Array) -> jax.Array:
    """The user's episode under `policy` (H, S): rows (s, a, r, s') per step, shape (H, 4) int32."""

    def step(s, inputs):
        pi, nxt, rew = inputs
        a = pi[s]
        s_next = nxt[s, a]
        return s_next, jnp.stack([s, a, rew[s, a], s_next])

    _, traj = jax.lax.scan(step, table.start, (policy, table.next_state, table.reward))
    return traj.astype(jnp.int32)
