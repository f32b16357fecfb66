"""The online phase's data path, on device: each agent's unfinished episode (`Pending`), its Monte-Carlo
labels when it ends, and its insertion into the agent's replay buffer, all jittable.

Both online loops share it. For a JAX environment (`online_loop="device"`) collection, labelling,
insertion and the UTD updates of many chunks run in one jitted scan (`Finetuner`); for a Gymnasium env
the host steps the environments and one jitted call absorbs each chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rewire.buffer import Buffer, Transition, buffer_add
from rewire.data.episodes import ACTION_CLIP


@dataclass(frozen=True)
class LabelRule:
    """How an online episode's rewards become the critic's: r * scale + bias, and its Monte-Carlo return
    (`rewire.data.episodes.mc_returns`: `tail` after a truncated end; on sparse tasks an all-failure
    episode is worth failure / (1 - gamma))."""

    gamma: float
    scale: float
    bias: float
    tail: float
    sparse: bool
    failure: float  # the scaled reward of a non-success step (sparse tasks)
    horizon: int  # the longest episode a pending buffer holds


@struct.dataclass
class Pending:
    """One agent's unfinished episode: its first `length` rows (raw rewards, unit-box actions)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    length: jax.Array


def pending_init(obs_dim: int, act_dim: int, horizon: int) -> Pending:
    """No episode under way, room for one of `horizon` steps."""
    z = jnp.zeros
    return Pending(
        z((horizon, obs_dim)),
        z((horizon, act_dim)),
        z(horizon),
        z((horizon, obs_dim)),
        z(horizon),
        jnp.int32(0),
    )


def episode_returns(rewards: jax.Array, length: jax.Array, terminal: jax.Array, rule: LabelRule) -> jax.Array:
    """The MC return-to-go of the episode held in the first `length` of `rewards` (scaled), as
    `mc_returns` defines it, in float32: g_t = sum_k gamma^(k-t) r_k, plus gamma^(length-t) tail after a
    truncated end. Rows from `length` on are meaningless."""
    t = np.arange(rule.horizon)
    powers = np.triu(rule.gamma ** (t[None, :] - t[:, None]).astype(np.float64)).astype(np.float32)
    valid = jnp.arange(rule.horizon) < length
    masked = jnp.where(valid, rewards, 0.0)
    # HIGHEST: accelerators may otherwise multiply float32 at reduced (TF32) precision
    g = jnp.dot(jnp.asarray(powers), masked, precision=jax.lax.Precision.HIGHEST)
    tail = jnp.where(terminal, 0.0, rule.tail) * jnp.asarray(rule.gamma, jnp.float32) ** (length - t)
    g = g + tail.astype(jnp.float32)
    if rule.sparse:
        never_succeeded = jnp.all(jnp.where(valid, rewards == rule.failure, True))
        g = jnp.where(never_succeeded, rule.failure / (1.0 - rule.gamma), g)
    return g


def absorb(
    pending: Pending, online: Buffer, traj: dict[str, jax.Array], rule: LabelRule
) -> tuple[Pending, Buffer]:
    """One agent's chunk of steps (`rollout.TRAJ_KEYS`, time first) into its pending episode; each episode
    that ends is labelled and appended to `online` whole. An episode that outlasts `rule.horizon` is cut
    there and labelled as truncated."""

    def step(carry: tuple[Pending, Buffer], row: dict[str, jax.Array]) -> tuple[tuple[Pending, Buffer], None]:
        p, buf = carry
        i = p.length
        p = p.replace(
            obs=p.obs.at[i].set(row["obs"]),
            action=p.action.at[i].set(row["action"]),
            reward=p.reward.at[i].set(row["reward"]),
            next_obs=p.next_obs.at[i].set(row["next_obs"]),
            terminated=p.terminated.at[i].set(row["terminated"].astype(jnp.float32)),
            length=i + 1,
        )
        done = row["terminated"] | row["truncated"] | (p.length >= rule.horizon)
        scaled = p.reward * rule.scale + rule.bias
        items = Transition(
            obs=p.obs,
            action=jnp.clip(p.action, -ACTION_CLIP, ACTION_CLIP),
            reward=scaled,
            next_obs=p.next_obs,
            terminal=p.terminated,
            mc_return=episode_returns(scaled, p.length, row["terminated"], rule),
        )
        buf = buffer_add(buf, items, jnp.where(done, p.length, 0))
        return (p.replace(length=jnp.where(done, 0, p.length)), buf), None

    (pending, online), _ = jax.lax.scan(step, (pending, online), traj)
    return pending, online
