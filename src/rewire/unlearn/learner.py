"""A ρ-TV-stable UCBVI learner over the binary-tree mechanism, and its exact unlearning.

User t (t = 1..T) plays one episode with the policy planned from prefix(t - 1) of the released tree; the
episode's statistic then enters node t. Deleting user i couples every released node holding i, in order:
keep the stored value with probability min(1, q/p); at the first rejection reflect it (an exact sample of
the new law) and replay every later episode with fresh noise. By induction over the released values, the
whole stored state then has exactly the law of a run in which slot i was empty from the start.

The learner's randomness is a forward-secure key chain (README, "Exact unlearning"): every draw, a node's
noise or a deletion's coupling uniforms, splits the current link into the next link and the draw's key, and
only the newest link is kept. The state therefore holds nothing from which the noise of a released node or a
past coupling draw can be recomputed (short of inverting threefry), and no counter or flag that says which
nodes were re-drawn: it holds the same fields, with the same law, as a run that never had the user.

All functions are pure and jittable; the state's arrays have static shapes (capacity T), so one compiled
learner serves every ρ (the calibration is data) and vmaps over seeds, ρ and deletions.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import struct

from rewire.unlearn.mdp import TabularMDP, play, policy_values, user_table
from rewire.unlearn.tree import (
    Calibration,
    calibrate,
    episode_stat,
    keep_log_prob,
    levels,
    lowbit,
    node_tv,
    nodes_holding,
    prefix_nodes,
    reflect,
    stat_blocks,
    stat_size,
)


@dataclass(frozen=True)
class LearnerConfig:
    """episodes: T (the capacity); rho: the TV-stability level, None for non-private UCBVI; bonus: theory
    (c_β = 1) or practical (see `calibrate`)."""

    episodes: int
    rho: float | None = 0.1
    delta: float = 0.05
    bonus: str = "practical"


@struct.dataclass
class LearnerState:
    """The learner's whole stored state. Episode t's entries sit at row t - 1.

    t_now: episodes played; user_keys (T, 2): each user's handle (zeros for an empty slot); present (T,):
    slot not empty; traj (T, H, 4): (s, a, r, s') per step; policy (T, H, S): the policy user t played;
    released (T, d): node values y_t; chain (2,): the newest link of the key chain (raw key data); calib:
    noise and bonus constants."""

    t_now: jax.Array
    user_keys: jax.Array
    present: jax.Array
    traj: jax.Array
    policy: jax.Array
    released: jax.Array
    chain: jax.Array
    calib: Calibration


class StableUCBVI:
    """The learner for one MDP and capacity. Methods are pure; jit/vmap them as needed."""

    def __init__(self, mdp: TabularMDP, config: LearnerConfig):
        if config.episodes < 1:
            raise ValueError(f"need at least 1 episode, got {config.episodes}")
        mdp.validate()
        self.mdp, self.config = mdp, config
        self.states, self.actions, self.horizon = mdp.shape
        self.episodes = config.episodes
        self.n_levels = levels(config.episodes)
        self.d = stat_size(self.states, self.actions, self.horizon)
        self.block = -(-config.episodes // 32)  # episodes per scan: 32 blocks cover a full run

    def calibration(self, rho: float | None | str = "config") -> Calibration:
        """The constants for `rho` ("config": the config's; None: non-private UCBVI)."""
        c = self.config
        rho = c.rho if rho == "config" else rho
        return calibrate(rho, self.states, self.actions, self.horizon, self.episodes, c.delta, c.bonus)

    def init(
        self, key: jax.Array, user_keys: jax.Array, present: jax.Array, calib: Calibration
    ) -> LearnerState:
        """An empty learner (no episode played) for these users; `present` False marks empty slots, which
        hold no handle (as a slot emptied by a deletion)."""
        T, H, S = self.episodes, self.horizon, self.states
        present = jnp.asarray(present, bool)
        return LearnerState(
            t_now=jnp.asarray(0, jnp.int32),
            user_keys=jnp.where(present[:, None], jnp.asarray(user_keys, jnp.uint32), jnp.uint32(0)),
            present=present,
            traj=jnp.zeros((T, H, 4), jnp.int32),
            policy=jnp.zeros((T, H, S), jnp.int32),
            released=jnp.zeros((T, self.d)),
            chain=jax.random.key_data(key),
            calib=jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), calib),
        )

    # -- planning ---------------------------------------------------------------------------------------
    def plan(self, prefix: jax.Array, calib: Calibration) -> jax.Array:
        """Optimistic value iteration on the noisy statistics (structure of Private-UCB-VI):
        N⁺ = max(1, Ñ + E), r̃ = clip(R̃/N⁺, 0, 1), P̃ = Ñ'/N⁺,
        β = c_β[(H + 1)√(2ι/N⁺) + ((S + 2)H + 3)E/N⁺], Q_h = clip(r̃ + β + P̃V_{h+1}, 0, H - h).
        Ties go to the lowest action, so the policy is a deterministic function of the prefix."""
        S, A, H = self.states, self.actions, self.horizon
        n, n_next, r_sum = stat_blocks(prefix, S, A, H)
        n_plus = jnp.maximum(1.0, n + calib.margin)
        r_hat = jnp.clip(r_sum / n_plus, 0.0, 1.0)
        p_hat = n_next / n_plus[..., None]
        bonus = calib.bonus_scale * (
            (H + 1) * jnp.sqrt(2 * calib.iota / n_plus) + ((S + 2) * H + 3) * calib.margin / n_plus
        )
        cap = (H - jnp.arange(H)).astype(prefix.dtype)

        def backup(v_next, inputs):
            r, b, p, top = inputs
            q = jnp.clip(r + b + p @ v_next, 0.0, top)
            pi = jnp.argmax(q, axis=-1)
            return q.max(-1), pi

        _, policy = jax.lax.scan(backup, jnp.zeros(S), (r_hat, bonus, p_hat, cap), reverse=True)
        return policy.astype(jnp.int32)

    # -- the tree ---------------------------------------------------------------------------------------
    def stats(self, state: LearnerState) -> jax.Array:
        """Every slot's statistic x_t, (T, d); zero for empty slots and unplayed episodes."""
        return jax.vmap(episode_stat, (0, 0, None, None))(
            state.traj, state.present, self.states, self.actions
        )

    @staticmethod
    def _cumulative(x: jax.Array) -> jax.Array:
        """C[u] = Σ_{v ≤ u} x_v with C[0] = 0 (integer-valued, hence exact in float64)."""
        return jnp.concatenate([jnp.zeros((1, x.shape[1])), jnp.cumsum(x, axis=0)])

    @staticmethod
    def _prefix(rows: jax.Array) -> jax.Array:
        """Σ of the level rows in a fixed order, so every code path gets bit-identical prefixes."""
        total = rows[0]
        for j in range(1, rows.shape[0]):
            total = total + rows[j]
        return total

    def _released_levels(self, state: LearnerState, t: jax.Array) -> jax.Array:
        """The released values of prefix(t)'s nodes by level j (zeros where bit j of t is clear)."""
        nodes, used = prefix_nodes(t, self.n_levels)
        return jnp.where(used[:, None], state.released[jnp.maximum(nodes - 1, 0)], 0.0)

    def _sum_levels(self, state: LearnerState, t: jax.Array) -> jax.Array:
        """The true sums of the same nodes (the binary counter after episode t)."""
        cum = self._cumulative(self.stats(state))
        nodes, used = prefix_nodes(t, self.n_levels)
        width = 1 << jnp.arange(self.n_levels)
        return jnp.where(used[:, None], cum[nodes] - cum[jnp.maximum(nodes - width, 0)], 0.0)

    def prefix(self, state: LearnerState, t: jax.Array) -> jax.Array:
        """prefix(t): the released estimate of the sum of episodes 1..t."""
        return self._prefix(self._released_levels(state, t))

    def _play(self, state: LearnerState, row: jax.Array, prefix: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(policy planned from `prefix`, the episode slot `row`'s user plays under it; zeros if empty)."""
        pi = self.plan(prefix, state.calib)
        table = user_table(self.mdp, jax.random.wrap_key_data(state.user_keys[row]))
        return pi, play(table, pi) * state.present[row]

    # -- learning ---------------------------------------------------------------------------------------
    def learn(self, state: LearnerState, stop: jax.Array) -> LearnerState:
        """Play episodes t_now + 1 .. stop (clipped to [t_now, T]), each releasing one node. Episodes run in
        blocks of `self.block` inside one `lax.scan` whose outputs are written back in one scatter, so no
        stored array is copied per episode, and a short replay costs a few blocks, not T episodes."""
        stop = jnp.clip(stop, state.t_now, self.episodes)
        return jax.lax.while_loop(lambda s: s.t_now < stop, lambda s: self._learn_block(s, stop), state)

    def _learn_block(self, state: LearnerState, stop: jax.Array) -> LearnerState:
        """Up to `self.block` episodes towards `stop` (the rest of the block is masked out)."""
        length = self.block
        T, level = self.episodes, jnp.arange(self.n_levels)
        start = state.t_now
        stop = jnp.minimum(stop, start + length)

        def episode(carry, t):
            sums, values, chain = carry
            row = jnp.minimum(t, T) - 1
            pi, traj = self._play(state, row, self._prefix(values))
            x = episode_stat(traj, state.present[row], self.states, self.actions)
            k = jax.lax.population_count(lowbit(t) - 1)
            below = (level < k)[:, None]
            s_node = x + self._prefix(jnp.where(below, sums, 0.0))
            next_chain, noise_key = draw(chain)
            y_node = s_node + state.calib.sigma * jax.random.normal(noise_key, (self.d,))
            at, active = (level == k)[:, None], t <= stop
            sums = jnp.where(active, jnp.where(at, s_node, jnp.where(below, 0.0, sums)), sums)
            values = jnp.where(active, jnp.where(at, y_node, jnp.where(below, 0.0, values)), values)
            chain = jnp.where(active, next_chain, chain)
            return (sums, values, chain), (traj, pi, y_node)

        times = start + 1 + jnp.arange(length)
        carry = self._sum_levels(state, start), self._released_levels(state, start), state.chain
        (_, _, chain), (traj, policy, released) = jax.lax.scan(episode, carry, times)
        rows = jnp.where(times <= stop, times - 1, T)  # row T is out of range: dropped
        return state.replace(
            t_now=stop.astype(jnp.int32),
            traj=state.traj.at[rows].set(traj, mode="drop"),
            policy=state.policy.at[rows].set(policy, mode="drop"),
            released=state.released.at[rows].set(released, mode="drop"),
            chain=chain,
        )

    # -- unlearning -------------------------------------------------------------------------------------
    def delete(self, state: LearnerState, user: jax.Array) -> tuple[LearnerState, dict]:
        """Unlearn user `user` (1 <= user <= t_now, present; the shell checks). Couples the released nodes
        holding the user in release order, nulls the slot, and replays the episodes after the first
        reflected node. Returns the new state and a report: tau (first reflected node, 0 if none),
        nodes_checked, accepted, recomputed episodes, and the exact predictions P(recompute) and
        E[recomputed] = Σ_ν P(first failure at ν)(t_now - ν) from TV_ν = 2Φ(‖x‖/(2σ)) - 1."""
        user = jnp.asarray(user, jnp.int32)
        cum = self._cumulative(self.stats(state))
        x = episode_stat(state.traj[user - 1], state.present[user - 1], self.states, self.actions)
        nodes = nodes_holding(user, self.n_levels)
        chain, key = draw(state.chain)
        log_u = jnp.log(jax.random.uniform(key, (self.n_levels,)))
        sigma = state.calib.sigma

        def check(carry, inputs):
            released, tau = carry
            node, log_uniform = inputs
            live = (node <= state.t_now) & (tau == 0)
            row = jnp.minimum(node, self.episodes) - 1
            s_old = cum[row + 1] - cum[node - lowbit(node)]
            y = released[row]
            keep = log_uniform <= keep_log_prob(y, s_old, x, sigma)
            flip = live & ~keep
            released = released.at[row].set(jnp.where(flip, reflect(y, s_old, x), y))
            return (released, jnp.where(flip, node, tau)), live & keep

        (released, tau), kept = jax.lax.scan(
            check, (state.released, jnp.asarray(0, jnp.int32)), (nodes, log_u)
        )
        t_now = state.t_now
        state = self.erase(state, user).replace(
            released=released, chain=chain, t_now=jnp.where(tau > 0, tau, t_now)
        )
        state = self.learn(state, t_now)
        tv = node_tv(jnp.sqrt(x @ x), sigma)
        on = nodes <= t_now
        survive = jnp.cumprod(jnp.where(on, 1 - tv, 1.0))
        first_fail = jnp.where(on, tv * jnp.concatenate([jnp.ones(1), survive[:-1]]), 0.0)
        report = {
            "tau": tau,
            "nodes_checked": jnp.sum(on & ((nodes <= tau) | (tau == 0))),
            "accepted": kept.sum(),
            "recomputed": jnp.where(tau > 0, t_now - tau, 0),
            "predicted_recompute_probability": 1 - survive[-1],
            "predicted_recomputed": (first_fail * (t_now - nodes)).sum(),
        }
        return state, report

    @staticmethod
    def erase(state: LearnerState, user: jax.Array) -> LearnerState:
        """Empty the user's slot: its handle, its episode, and its presence (hence its statistic)."""
        return state.replace(
            present=state.present.at[user - 1].set(False),
            traj=state.traj.at[user - 1].set(0),
            user_keys=state.user_keys.at[user - 1].set(0),
        )

    # -- audits and outcomes ----------------------------------------------------------------------------
    def audit(self, state: LearnerState) -> jax.Array:
        """Replay consistency: every stored policy equals PLAN(prefix(t - 1)) of the stored tree and every
        stored episode is what its user does under it (empty slots hold zeros). Always true for an honestly
        produced state; a stale state (e.g. data dropped without replay) fails it."""

        def one(t):
            pi, traj = self._play(state, t - 1, self.prefix(state, t - 1))
            played = t <= state.t_now
            ok = jnp.all(pi == state.policy[t - 1]) & jnp.all(traj == state.traj[t - 1])
            return ~played | ok

        return jnp.all(jax.vmap(one)(jnp.arange(1, self.episodes + 1)))

    def regret(self, state: LearnerState, optimal: jax.Array, user_keys: jax.Array) -> jax.Array:
        """Per-episode regret V*_1(s₁ᵗ) - V^{π_t}_1(s₁ᵗ), with each user's start state from its key (so the
        curve is defined for every slot, e.g. against the users of another run); (T,)."""

        def one(pi, key):
            start = user_table(self.mdp, jax.random.wrap_key_data(key)).start
            return optimal[0, start] - policy_values(self.mdp, pi)[0, start]

        played = jnp.arange(1, self.episodes + 1) <= state.t_now
        return jnp.where(played, jax.vmap(one)(state.policy, user_keys), 0.0)

    def stored_regret(self, state: LearnerState, optimal: jax.Array) -> jax.Array:
        """Per-episode regret of the users in the state (zero for empty slots): a function of the stored
        state alone, as every report persisted beside it must be."""
        return jnp.where(state.present, self.regret(state, optimal, state.user_keys), 0.0)


def draw(chain: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One step of the forward-secure chain: (the next link as raw key data, a key for this draw). The
    caller keeps only the next link, so this draw cannot be recomputed from what it stores."""
    link, key = jax.random.split(jax.random.wrap_key_data(chain))
    return jax.random.key_data(link), key


def user_keys(key: jax.Array, episodes: int) -> jax.Array:
    """T users' handles (raw key data), independent of the learner's randomness."""
    return jax.vmap(jax.random.key_data)(jax.random.split(key, episodes))
