"""Environments behind one interface: JAX point mazes (gymnax API) and any Gymnasium Box-action env."""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import gymnasium
import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:
    from rewire.envs.pointmaze import MazeParams, PointMaze

# rewire.envs.pointmaze is imported where a built-in maze is made: it builds on gymnax, whose import (with
# its plotting dependencies) is seconds of every CLI process's start, and most commands never use a maze

MAZE_PREFIX = "PointMaze-"
ROBOTICS_MAZES = ("PointMaze_", "AntMaze_")  # gymnasium-robotics' MuJoCo mazes


@dataclass(frozen=True)
class EnvSpec:
    """What the learners need to know about a task. Actions are normalised to [-1, 1] inside rewire;
    `action_low`/`action_high` map them to the environment's own units."""

    env_id: str
    obs_dim: int
    act_dim: int
    horizon: int
    sparse: bool  # success-terminal sparse reward (the Cal-QL all-failure rule applies)
    failure_reward: float  # raw reward of a non-success step on sparse tasks
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    # an env of the user's own (not rebuilt from its id): a factory of fresh Gymnasium envs, or a JAX env
    factory: Callable[[], gymnasium.Env] | None = field(default=None, compare=False, repr=False)
    jax_env: tuple[Any, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def is_jax(self) -> bool:
        return self.jax_env is not None or self.env_id.startswith(MAZE_PREFIX)

    @property
    def given(self) -> bool:
        """The env is an object of the user's, not an id rewire can rebuild."""
        return self.factory is not None or self.jax_env is not None

    def make_gym(self) -> gymnasium.Env:
        """A fresh Gymnasium env of this spec."""
        return self.factory() if self.factory is not None else make_gym(self.env_id)

    def make_jax(self) -> tuple[Any, Any]:
        """The JAX env of this spec and its params."""
        return self.jax_env if self.jax_env is not None else make_jax(self.env_id)

    def to_env_action_jax(self, action: jnp.ndarray) -> jnp.ndarray:
        """`to_env_action` inside jit (the built-in mazes take unit actions as they are)."""
        if self.jax_env is None:
            return action
        low, high = jnp.asarray(self.action_low), jnp.asarray(self.action_high)
        return low + (jnp.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (high - low)

    def to_env_action(self, action: np.ndarray) -> np.ndarray:
        low, high = np.asarray(self.action_low), np.asarray(self.action_high)
        return low + (np.clip(action, -1.0, 1.0) + 1.0) * 0.5 * (high - low)

    def to_unit_action(self, action: np.ndarray) -> np.ndarray:
        low, high = np.asarray(self.action_low), np.asarray(self.action_high)
        return 2.0 * (np.asarray(action) - low) / (high - low) - 1.0


def maze_id(layout: str) -> str:
    return f"{MAZE_PREFIX}{layout}-v0"


def maze_layout(env_id: str) -> str:
    return env_id[len(MAZE_PREFIX) :].rsplit("-v", 1)[0]


def _box_spec(name: str, action_space: Any, obs_shape: Any, horizon: int, **source: Any) -> EnvSpec:
    if len(getattr(action_space, "shape", ()) or ()) != 1 or not hasattr(action_space, "low"):
        raise ValueError(f"{name} has a {type(action_space).__name__} action space; rewire needs a 1-D Box")
    if obs_shape is None or len(obs_shape) != 1:
        raise ValueError(f"{name} has observations of shape {obs_shape}; rewire needs a flat vector")
    low = np.broadcast_to(np.asarray(action_space.low, np.float64), action_space.shape)
    high = np.broadcast_to(np.asarray(action_space.high, np.float64), action_space.shape)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise ValueError(f"{name}: its action box must be bounded")
    return EnvSpec(
        name,
        int(obs_shape[0]),
        int(action_space.shape[0]),
        int(horizon),
        False,
        0.0,
        tuple(float(x) for x in low),
        tuple(float(x) for x in high),
        **source,
    )


def as_spec(env: Any, horizon: int | None = None) -> EnvSpec:
    """The spec of an env id (`make_spec`), of a Gymnasium env instance (copies of it, as it is now, are
    made for each agent), or of a gymnax-style JAX env as an object or an `(env, env_params)` pair (auto-
    reset `step` whose info holds `final_observation`, as gymnax 1.0's). `horizon` defaults to the env's
    time limit. A user's env is taken as dense-reward."""
    if isinstance(env, str):
        return make_spec(env)
    if isinstance(env, gymnasium.Env):
        env = flat(env)
        pristine = copy.deepcopy(env)
        limit = env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else None
        name = env.spec.id if env.spec else type(env.unwrapped).__name__
        return _box_spec(
            name,
            env.action_space,
            env.observation_space.shape,
            horizon or limit or 1000,
            factory=lambda: copy.deepcopy(pristine),
        )
    jax_env, params = env if isinstance(env, tuple) else (env, getattr(env, "default_params", None))
    name = getattr(jax_env, "name", None) or type(jax_env).__name__
    horizon = horizon or getattr(params, "max_steps_in_episode", None)
    if not horizon:
        raise ValueError(f"{name}: no episode length (max_steps_in_episode); pass horizon=")
    return _box_spec(
        name,
        jax_env.action_space(params),
        tuple(jax_env.observation_space(params).shape),
        horizon,
        jax_env=(jax_env, params),
    )


def make_spec(env_id: str) -> EnvSpec:
    """The spec of a maze id (`PointMaze-open-v0`, `PointMaze-umaze-v0`) or of a Gymnasium id. The
    gymnasium-robotics mazes (`PointMaze_UMaze-v3`, `AntMaze_Medium-v5`, ...) are sparse success-terminal
    tasks; their `...Dense-v*` ids are dense."""
    if env_id.startswith(MAZE_PREFIX):
        from rewire.envs.pointmaze import LAYOUTS, MazeParams

        layout = maze_layout(env_id)
        if layout not in LAYOUTS:
            raise ValueError(f"unknown maze {env_id!r}; known: {[maze_id(k) for k in LAYOUTS]}")
        return EnvSpec(env_id, 2, 2, MazeParams().max_steps_in_episode, True, 0.0, (-1.0, -1.0), (1.0, 1.0))
    env = make_gym(env_id)
    try:
        horizon = env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else 1000
        spec = _box_spec(env_id, env.action_space, env.observation_space.shape, horizon)
        sparse = env_id.startswith(ROBOTICS_MAZES) and "Dense" not in env_id
        return replace(spec, sparse=True) if sparse else spec
    finally:
        env.close()


def flat(env: gymnasium.Env) -> gymnasium.Env:
    """`env` with Dict observations flattened into one vector, in the order `gymnasium.spaces.flatten` uses
    (the Dict space's keys, sorted: for the mazes achieved_goal, desired_goal, observation), which is also
    how rewire flattens a dataset's Dict observations."""
    if isinstance(env.observation_space, gymnasium.spaces.Dict):
        return gymnasium.wrappers.FlattenObservation(env)
    return env


def _register_robotics(env_id: str) -> None:
    """Register gymnasium-robotics' envs (the `mazes` extra), quietly: its import prints a notice about
    envs rewire does not use."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import gymnasium_robotics
    except ImportError:
        raise ValueError(f"{env_id} needs gymnasium-robotics: pip install 'rewire[mazes]'") from None
    gymnasium.register_envs(gymnasium_robotics)


def make_gym(env_id: str) -> gymnasium.Env:
    """A Gymnasium env by id (mazes through their Gymnasium wrapper), with a clear error for unknown ids.
    gymnasium-robotics' mazes end an episode at the goal (`continuing_task=False`), as Cal-QL's sparse
    tasks do."""
    if env_id.startswith(ROBOTICS_MAZES):
        _register_robotics(env_id)
    if env_id.startswith(MAZE_PREFIX):
        from rewire.envs.pointmaze import MazeParams, PointMazeGym

        return gymnasium.wrappers.TimeLimit(
            PointMazeGym(maze_layout(env_id)), MazeParams().max_steps_in_episode
        )
    try:
        if env_id.startswith(ROBOTICS_MAZES):
            return flat(gymnasium.make(env_id, continuing_task=False))
        return flat(gymnasium.make(env_id))
    except gymnasium.error.DependencyNotInstalled as err:
        raise ValueError(f"environment {env_id!r} needs a package that is not installed: {err}") from err
    except gymnasium.error.Error as err:
        raise ValueError(f"unknown environment id {env_id!r}: {err}") from err


def make_jax(env_id: str) -> tuple[PointMaze, MazeParams]:
    from rewire.envs.pointmaze import MazeParams, PointMaze

    return PointMaze(maze_layout(env_id)), MazeParams()
