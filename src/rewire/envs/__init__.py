"""Environments behind one interface: JAX point mazes (gymnax API) and any Gymnasium Box-action env."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium
import numpy as np

from rewire.envs.pointmaze import LAYOUTS, MazeParams, PointMaze, PointMazeGym

MAZE_PREFIX = "PointMaze-"


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

    @property
    def is_jax(self) -> bool:
        return self.env_id.startswith(MAZE_PREFIX)

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


def make_spec(env_id: str) -> EnvSpec:
    """The spec of a maze id (`PointMaze-open-v0`, `PointMaze-umaze-v0`) or of a Gymnasium id."""
    if env_id.startswith(MAZE_PREFIX):
        layout = maze_layout(env_id)
        if layout not in LAYOUTS:
            raise ValueError(f"unknown maze {env_id!r}; known: {[maze_id(k) for k in LAYOUTS]}")
        return EnvSpec(env_id, 2, 2, MazeParams().max_steps_in_episode, True, 0.0, (-1.0, -1.0), (1.0, 1.0))
    env = make_gym(env_id)
    try:
        space = env.action_space
        if not isinstance(space, gymnasium.spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"{env_id} has a {type(space).__name__} action space; rewire needs a 1-D Box")
        obs_shape = env.observation_space.shape
        if obs_shape is None or len(obs_shape) != 1:
            raise ValueError(f"{env_id} has observations of shape {obs_shape}; rewire needs a flat vector")
        horizon = env.spec.max_episode_steps if env.spec and env.spec.max_episode_steps else 1000
        return EnvSpec(
            env_id,
            int(obs_shape[0]),
            int(space.shape[0]),
            int(horizon),
            False,
            0.0,
            tuple(float(x) for x in space.low),
            tuple(float(x) for x in space.high),
        )
    finally:
        env.close()


def make_gym(env_id: str) -> gymnasium.Env:
    """A Gymnasium env by id (mazes through their Gymnasium wrapper), with a clear error for unknown ids."""
    if env_id.startswith(MAZE_PREFIX):
        return gymnasium.wrappers.TimeLimit(
            PointMazeGym(maze_layout(env_id)), MazeParams().max_steps_in_episode
        )
    try:
        return gymnasium.make(env_id)
    except gymnasium.error.DependencyNotInstalled as err:
        raise ValueError(f"environment {env_id!r} needs a package that is not installed: {err}") from err
    except gymnasium.error.Error as err:
        raise ValueError(f"unknown environment id {env_id!r}: {err}") from err


def make_jax(env_id: str) -> tuple[PointMaze, MazeParams]:
    return PointMaze(maze_layout(env_id)), MazeParams()
