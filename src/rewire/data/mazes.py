"""PointMaze datasets for gymnasium-robotics' MuJoCo mazes, by the recipe of D4RL's maze2d and Minari's
D4RL/pointmaze datasets: a planner over the maze grid gives the next waypoint, a PD controller with
Gaussian action noise drives the ball to it, and a new goal is drawn when the ball arrives, without a reset.

Each stretch from one goal to the next is stored as one success-terminal episode (it ends on arrival,
`terminations` = 1), the task rewire trains on; a stretch still short of its goal after `limit` steps ends
truncated and the ball is reset. A share `detour_fraction` of stretches (AntMaze "diverse"-like) first
heads for a random cell, so that the data holds failures and routes that are not the shortest.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from rewire.data.episodes import Episode, EpisodeDataset
from rewire.envs import EnvSpec

P_GAIN, D_GAIN = 10.0, 1.0  # Minari's point-maze waypoint controller: a = 10 (w - x) - 1 v
GOAL_RADIUS = 0.45  # gymnasium-robotics' success distance
OBS_KEYS = (("achieved_goal", 2), ("desired_goal", 2), ("observation", 4))  # PointMaze, flatten order


def distance_map(maze_map: list[list[int]], goal_cell: tuple[int, int]) -> np.ndarray:
    """Steps from every free cell to `goal_cell` over 4-connected free cells (breadth-first; walls -1)."""
    grid = np.asarray(maze_map) == 1
    dist = np.full(grid.shape, -1, np.int64)
    dist[goal_cell] = 0
    queue = deque([goal_cell])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            nr, nc = r + dr, c + dc
            if 0 <= nr < grid.shape[0] and 0 <= nc < grid.shape[1] and not grid[nr, nc] and dist[nr, nc] < 0:
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    return dist


def next_cell(dist: np.ndarray, cell: tuple[int, int]) -> tuple[int, int]:
    """The neighbour of `cell` one step closer to the goal (the cell itself at the goal)."""
    best, best_d = cell, dist[cell]
    for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        n = (cell[0] + dr, cell[1] + dc)
        if 0 <= n[0] < dist.shape[0] and 0 <= n[1] < dist.shape[1] and 0 <= dist[n] < best_d:
            best, best_d = n, dist[n]
    return best


def point_maze_dataset(
    spec: EnvSpec,
    episodes: int,
    seed: int,
    noise: float = 0.5,
    detour_fraction: float = 0.3,
    limit: int | None = None,
) -> EpisodeDataset:
    """`episodes` goal-to-goal stretches in `spec`'s PointMaze (`PointMaze_UMaze-v3`, `..._Medium-v3`,
    `..._Large-v3`), observations flattened as `rewire.envs.flat` does (`OBS_KEYS`)."""
    import gymnasium

    from rewire.envs import _register_robotics

    if not spec.env_id.startswith("PointMaze_"):
        raise ValueError(
            f"no waypoint controller for {spec.env_id}: it drives gymnasium-robotics' PointMaze_*"
        )
    _register_robotics(spec.env_id)
    env = gymnasium.make(spec.env_id, continuing_task=True, reset_target=False).unwrapped
    maze, limit = env.maze, limit or spec.horizon
    rng = np.random.default_rng(seed)
    free = [(r, c) for r, row in enumerate(maze.maze_map) for c, v in enumerate(row) if v != 1]
    cell_of = lambda xy: tuple(int(i) for i in maze.cell_xy_to_rowcol(xy))  # noqa: E731

    def draw_goal(position: np.ndarray) -> np.ndarray:
        """A free cell's centre with the env's own position noise, in another cell than the ball's (as the
        env's own resets and goal updates keep them apart)."""
        goal = position
        while np.linalg.norm(goal - position) <= 0.5 * maze.maze_size_scaling:
            goal = env.add_xy_position_noise(env.generate_target_goal())
        return goal

    out: list[Episode] = []
    raw, _ = env.reset(seed=seed)
    while len(out) < episodes:
        goal = draw_goal(raw["achieved_goal"])
        env.goal = goal
        env.update_target_site_pos()
        detour = free[rng.integers(len(free))] if rng.random() < detour_fraction else None
        target_cell = detour if detour is not None else cell_of(goal)
        dist = distance_map(maze.maze_map, target_cell)
        obs = [_flat(raw["observation"], goal)]
        actions, rewards, terms = [], [], []
        for _ in range(limit):
            pos, vel = raw["observation"][:2], raw["observation"][2:]
            cell = cell_of(pos)
            if detour is not None and cell == detour:
                detour, target_cell = None, cell_of(goal)  # the detour is done: now the goal
                dist = distance_map(maze.maze_map, target_cell)
            nxt = next_cell(dist, cell) if dist[cell] >= 0 else cell
            waypoint = goal if (detour is None and nxt == cell) else maze.cell_rowcol_to_xy(np.array(nxt))
            action = P_GAIN * (waypoint - pos) - D_GAIN * vel + noise * rng.standard_normal(2)
            action = np.clip(action, -1.0, 1.0).astype(np.float32)
            raw, *_ = env.step(action)
            arrived = bool(np.linalg.norm(raw["achieved_goal"] - goal) <= GOAL_RADIUS)
            obs.append(_flat(raw["observation"], goal))
            actions.append(action)
            rewards.append(float(arrived))
            terms.append(arrived)
            if arrived:
                break
        trunc = np.zeros(len(terms), bool)
        trunc[-1] = not terms[-1]
        out.append(
            Episode(
                np.asarray(obs, np.float32),
                np.asarray(actions, np.float32),
                np.asarray(rewards, np.float32),
                np.asarray(terms, bool),
                trunc,
            )
        )
        if not terms[-1]:  # lost: start the next stretch from a fresh reset
            raw, _ = env.reset(seed=int(rng.integers(2**31)))
    env.close()
    meta = {
        "generator": "waypoint-pd",
        "p_gain": P_GAIN,
        "d_gain": D_GAIN,
        "noise": noise,
        "detour_fraction": detour_fraction,
        "limit": limit,
        "seed": seed,
    }
    return EpisodeDataset(out, spec.env_id, meta, OBS_KEYS)


def _flat(observation: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """PointMaze's Dict observation flattened: achieved_goal, desired_goal, observation."""
    return np.concatenate([observation[:2], goal, observation])
