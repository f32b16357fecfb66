"""JAX control tasks behind one gymnax-style interface: gymnax classic control and (optional) Brax.

Both expose `reset(key, params) -> (obs, state)` and `step(key, state, action, params) -> (obs, state,
reward, terminated, truncated, info)` with automatic reset, so one jitted rollout serves every task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

CLASSIC_CONTROL = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0")
BRAX_PREFIX = "brax-"
BRAX_TASKS = ("hopper", "walker2d", "halfcheetah", "ant")
BRAX_EPISODE_LENGTH = 1000


@dataclass(frozen=True)
class ControlTask:
    """A JAX environment and what a policy needs to act in it. Discrete tasks take an action index in
    [0, action_dim); continuous ones take a vector that rewire clips to [-1, 1] and maps to the env's box."""

    env_id: str
    env: Any
    env_params: Any
    obs_dim: int
    action_dim: int
    discrete: bool
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    horizon: int

    def to_env_action(self, action: jax.Array) -> jax.Array:
        if self.discrete:
            return action
        low, high = jnp.asarray(self.action_low), jnp.asarray(self.action_high)
        return low + (jnp.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (high - low)


class BraxEnv:
    """A Brax environment (positional backend, 1000-step episodes, auto-reset) in the gymnax 1.0 API."""

    def __init__(self, name: str):
        try:
            from brax import envs
            from brax.envs.wrappers.training import AutoResetWrapper, EpisodeWrapper
        except ImportError as err:
            raise ValueError("Brax tasks need the optional extra: pip install 'rewire[brax]'") from err
        base = envs.get_environment(name, backend="positional")
        self.env = AutoResetWrapper(EpisodeWrapper(base, BRAX_EPISODE_LENGTH, 1))
        self.obs_dim, self.action_dim = base.observation_size, base.action_size

    def reset(self, key: jax.Array, params: Any = None):
        state = self.env.reset(key)
        return state.obs, state

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any = None):
        state = self.env.step(state, action)
        truncated = state.info["truncation"] > 0
        terminated = (state.done > 0) & ~truncated
        return state.obs, state, state.reward, terminated, truncated, {}


def control_ids() -> list[str]:
    return list(CLASSIC_CONTROL) + [BRAX_PREFIX + name for name in BRAX_TASKS]


def make_control(env_id: str) -> ControlTask:
    """A classic-control task by its gymnax id, or a Brax task as `brax-<name>`; unknown ids raise."""
    if env_id in CLASSIC_CONTROL:
        import gymnax

        env, params = gymnax.make(env_id)
        space = env.action_space(params)
        obs_dim = int(env.observation_space(params).shape[0])
        if hasattr(space, "n"):
            return ControlTask(
                env_id, env, params, obs_dim, int(space.n), True, (), (), params.max_steps_in_episode
            )
        low = tuple(float(x) for x in jnp.broadcast_to(space.low, space.shape))
        high = tuple(float(x) for x in jnp.broadcast_to(space.high, space.shape))
        return ControlTask(
            env_id, env, params, obs_dim, len(low), False, low, high, params.max_steps_in_episode
        )
    if env_id.startswith(BRAX_PREFIX) and env_id[len(BRAX_PREFIX) :] in BRAX_TASKS:
        env = BraxEnv(env_id[len(BRAX_PREFIX) :])
        ones = (1.0,) * env.action_dim
        return ControlTask(
            env_id,
            env,
            None,
            env.obs_dim,
            env.action_dim,
            False,
            tuple(-x for x in ones),
            ones,
            BRAX_EPISODE_LENGTH,
        )
    raise ValueError(f"unknown environment id {env_id!r}; choose one of {control_ids()}")
