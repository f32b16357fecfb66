"""JAX control tasks behind one gymnax-style interface: gymnax classic control and (optional) Brax.

Both expose `reset(key, params) -> (obs, state)` and `step(key, state, action, params) -> (obs, state,
reward, terminated, truncated, info)` with automatic reset, so one jitted rollout serves every task.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

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


class FlatObservations:
    """A gymnax-style env whose observations are flattened to float32 vectors (MinAtar's image planes for
    an MLP policy); everything else passes through."""

    def __init__(self, env: Any):
        self.env = env

    def reset(self, key: jax.Array, params: Any = None):
        obs, state = self.env.reset(key, params)
        return jnp.asarray(obs, jnp.float32).reshape(-1), state

    def step(self, key: jax.Array, state: Any, action: jax.Array, params: Any = None):
        obs, state, reward, terminated, truncated, info = self.env.step(key, state, action, params)
        return jnp.asarray(obs, jnp.float32).reshape(-1), state, reward, terminated, truncated, info


def task_from_env(
    env: Any, env_params: Any = None, env_id: str | None = None, horizon: int | None = None
) -> ControlTask:
    """A `ControlTask` from any gymnax-style env object (`reset(key, params)`, `step(key, state, action,
    params)` with auto-reset, `action_space(params)`, `observation_space(params)`). `env_params` defaults
    to `env.default_params`; `horizon` to the params' `max_steps_in_episode`. Observations of more than one
    axis are flattened. A discrete space needs `n`; a continuous one a 1-D box."""
    params = env.default_params if env_params is None and hasattr(env, "default_params") else env_params
    name = env_id or getattr(env, "name", None) or type(env).__name__
    space = env.action_space(params)
    shape = tuple(env.observation_space(params).shape)
    if not shape:
        raise ValueError(f"{name}: observations have no shape; rewire needs arrays")
    obs_dim = int(np.prod(shape))
    wrapped = env if len(shape) == 1 else FlatObservations(env)
    horizon = horizon or getattr(params, "max_steps_in_episode", None)
    if not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"{name}: no episode length (max_steps_in_episode); pass horizon=")
    if hasattr(space, "n"):
        return ControlTask(name, wrapped, params, obs_dim, int(space.n), True, (), (), int(horizon))
    if len(getattr(space, "shape", ())) != 1:
        raise ValueError(f"{name}: a {type(space).__name__} action space; rewire needs Discrete or a 1-D Box")
    low = tuple(float(x) for x in jnp.broadcast_to(space.low, space.shape))
    high = tuple(float(x) for x in jnp.broadcast_to(space.high, space.shape))
    return ControlTask(name, wrapped, params, obs_dim, len(low), False, low, high, int(horizon))


def gymnax_ids() -> list[str]:
    import gymnax

    return list(gymnax.registered_envs)


def control_ids() -> list[str]:
    return gymnax_ids() + [BRAX_PREFIX + name for name in BRAX_TASKS]


def make_control(env_id: str) -> ControlTask:
    """A task by its gymnax id (every registered one whose spaces fit), or a Brax task as `brax-<name>`;
    unknown ids raise."""
    if env_id in gymnax_ids():
        import gymnax

        env, params = gymnax.make(env_id)
        return task_from_env(env, params, env_id)
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
