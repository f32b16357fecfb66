"""Sparse-reward 2-D point maze in JAX (gymnax functional API) and its Gymnasium wrapper.

The agent moves p' = clip(p + step_size * a + noise) inside [-3, 3]^2; a move into a wall is refused.
Reaching the goal disc terminates the episode with reward 1; every other step gives 0. Two layouts:
`open` (no walls: a straight 3-unit path) and `umaze` (a wall from the left edge to x = 2 separates start
and goal: the route is U-shaped through a 1-unit passage, so leaving it costs success).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

ARENA = 3.0


@dataclass(frozen=True)
class Layout:
    start: tuple[float, float]
    goal: tuple[float, float]
    walls: tuple[tuple[float, float, float, float], ...]  # (xmin, ymin, xmax, ymax)
    waypoints: tuple[tuple[float, float], ...]  # the scripted controller's route, goal last


LAYOUTS: dict[str, Layout] = {
    "open": Layout(start=(-1.5, -1.5), goal=(-1.5, 1.5), walls=(), waypoints=((-1.5, 1.5),)),
    "umaze": Layout(
        start=(-1.5, -1.5),
        goal=(-1.5, 1.5),
        walls=((-ARENA, -0.3, 2.0, 0.3),),
        waypoints=((2.5, -0.9), (2.5, 0.9), (-1.5, 1.5)),
    ),
}


@struct.dataclass
class MazeState(environment.EnvState):
    pos: jax.Array
    time: int


@struct.dataclass
class MazeParams(environment.EnvParams):
    max_steps_in_episode: int = 100
    step_size: float = 0.25
    noise_std: float = 0.01
    start_std: float = 0.1
    goal_radius: float = 0.4


class PointMaze(environment.Environment[MazeState, MazeParams]):
    """gymnax environment; observations are the (x, y) position, actions in [-1, 1]^2."""

    def __init__(self, layout: str = "umaze"):
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"unknown maze layout {layout!r}; choose one of {sorted(LAYOUTS)}")
        self.layout_name = layout
        self.layout = LAYOUTS[layout]

    @property
    def name(self) -> str:
        return f"PointMaze-{self.layout_name}-v0"

    @property
    def default_params(self) -> MazeParams:
        return MazeParams()

    def in_wall(self, pos: jax.Array) -> jax.Array:
        hit = jnp.bool_(False)
        for xmin, ymin, xmax, ymax in self.layout.walls:
            hit |= (pos[0] >= xmin) & (pos[0] <= xmax) & (pos[1] >= ymin) & (pos[1] <= ymax)
        return hit

    def step_env(self, key: jax.Array, state: MazeState, action: jax.Array, params: MazeParams):
        action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
        noise = params.noise_std * jax.random.normal(key, (2,))
        proposed = jnp.clip(state.pos + params.step_size * action + noise, -ARENA, ARENA)
        pos = jnp.where(self.in_wall(proposed), state.pos, proposed)
        success = jnp.linalg.norm(pos - jnp.asarray(self.layout.goal)) <= params.goal_radius
        new_state = MazeState(pos=pos, time=state.time + 1)
        reward = success.astype(jnp.float32)
        return self.get_obs(new_state), new_state, reward, success, {"success": success}

    def reset_env(self, key: jax.Array, params: MazeParams):
        pos = jnp.asarray(self.layout.start) + params.start_std * jax.random.normal(key, (2,))
        state = MazeState(pos=pos, time=0)
        return self.get_obs(state), state

    def get_obs(self, state: MazeState, params: MazeParams | None = None, key: Any = None) -> jax.Array:
        return state.pos.astype(jnp.float32)

    def is_terminated(self, state: MazeState, params: MazeParams) -> jax.Array:
        return jnp.linalg.norm(state.pos - jnp.asarray(self.layout.goal)) <= params.goal_radius

    def action_space(self, params: MazeParams | None = None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (2,), jnp.float32)

    def observation_space(self, params: MazeParams | None = None) -> spaces.Box:
        return spaces.Box(-ARENA, ARENA, (2,), jnp.float32)

    def scripted_direction(self, pos: jax.Array) -> jax.Array:
        """Unit vector toward the next waypoint of the layout's route (a stateless controller)."""
        wps = self.layout.waypoints
        target = jnp.asarray(wps[-1])
        if len(wps) == 3:  # below the wall go right, past its end go up, above the wall go to the goal
            below = pos[1] < self.layout.walls[0][3] + 0.15
            past_end = pos[0] >= wps[0][0] - 0.2
            target = jnp.where(below & ~past_end, jnp.asarray(wps[0]), target)
            target = jnp.where(below & past_end, jnp.asarray(wps[1]), target)
        delta = target - pos
        return delta / (jnp.linalg.norm(delta) + 1e-6)


class PointMazeGym(gymnasium.Env):
    """Gymnasium view of `PointMaze` (same dynamics, NumPy in and out)."""

    metadata = {"render_modes": []}

    def __init__(self, layout: str = "umaze", params: MazeParams | None = None):
        self.env = PointMaze(layout)
        self.params = params or self.env.default_params
        self.observation_space = gymnasium.spaces.Box(-ARENA, ARENA, (2,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._key = jax.random.PRNGKey(0)
        self._state: MazeState | None = None
        self._step = jax.jit(self.env.step_env)
        self._reset = jax.jit(self.env.reset_env)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        self._key, key = jax.random.split(self._key)
        obs, self._state = self._reset(key, self.params)
        return np.asarray(obs), {}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        self._key, key = jax.random.split(self._key)
        obs, self._state, reward, terminated, info = self._step(
            key, self._state, jnp.asarray(action), self.params
        )
        truncated = bool(self._state.time >= self.params.max_steps_in_episode) and not bool(terminated)
        return np.asarray(obs), float(reward), bool(terminated), truncated, {"success": bool(info["success"])}
