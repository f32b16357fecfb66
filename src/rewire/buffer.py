"""A jittable FIFO replay buffer over a pytree of per-transition arrays."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import struct


class Transition(NamedTuple):
    """One transition, or a batch of them along the leading axes. `mc_return` is the Monte-Carlo
    return-to-go of the transition's episode in scaled-reward units (the Cal-QL floor)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminal: jax.Array
    mc_return: jax.Array


@struct.dataclass
class Buffer:
    data: Transition
    ptr: jax.Array
    size: jax.Array

    @property
    def capacity(self) -> int:
        return self.data.reward.shape[-1]


def buffer_init(obs_dim: int, act_dim: int, capacity: int) -> Buffer:
    """An empty buffer of fixed capacity (shapes stay static under jit)."""
    z = jnp.zeros
    data = Transition(
        z((capacity, obs_dim)),
        z((capacity, act_dim)),
        z(capacity),
        z((capacity, obs_dim)),
        z(capacity),
        z(capacity),
    )
    return Buffer(data, jnp.int32(0), jnp.int32(0))


def buffer_from_transitions(data: Transition) -> Buffer:
    """A full buffer holding exactly `data` (used for offline datasets)."""
    data = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), data)
    n = data.reward.shape[0]
    return Buffer(data, jnp.int32(0), jnp.int32(n))


def buffer_add(buf: Buffer, items: Transition, count: jax.Array) -> Buffer:
    """Append the first `count` rows of `items` (padded to a static length L <= capacity), FIFO."""
    length = items.reward.shape[0]
    cap = buf.capacity
    if length > cap:
        raise ValueError(f"cannot add {length} rows at once to a buffer of capacity {cap}")
    idx = (buf.ptr + jnp.arange(length)) % cap
    valid = jnp.arange(length) < count

    def put(store: jax.Array, new: jax.Array) -> jax.Array:
        mask = valid.reshape((-1,) + (1,) * (new.ndim - 1))
        return store.at[idx].set(jnp.where(mask, new.astype(store.dtype), store[idx]))

    data = jax.tree.map(put, buf.data, items)
    return Buffer(data, (buf.ptr + count) % cap, jnp.minimum(buf.size + count, cap))


def buffer_sample(buf: Buffer, key: jax.Array, batch_size: int) -> Transition:
    """Uniform sample with replacement from the filled part (index 0 when empty)."""
    idx = jax.random.randint(key, (batch_size,), 0, jnp.maximum(buf.size, 1))
    return jax.tree.map(lambda x: x[idx], buf.data)


def sample_mixed(
    offline: Buffer, online: Buffer, key: jax.Array, batch_size: int, mixing: float
) -> Transition:
    """int(batch_size * mixing) rows from `offline`, the rest from `online` (from `offline` while `online`
    is still empty)."""
    n_off = int(batch_size * mixing)
    if n_off >= batch_size:
        return buffer_sample(offline, key, batch_size)
    k_off, k_on, k_fill = jax.random.split(key, 3)
    on = buffer_sample(online, k_on, batch_size - n_off)
    fill = buffer_sample(offline, k_fill, batch_size - n_off)
    on = jax.tree.map(lambda a, b: jnp.where(online.size > 0, a, b), on, fill)
    if n_off == 0:
        return on
    off = buffer_sample(offline, k_off, n_off)
    return jax.tree.map(lambda a, b: jnp.concatenate([a, b]), off, on)
