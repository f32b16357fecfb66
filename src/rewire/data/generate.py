"""Behaviour datasets from scripted noisy controllers or a saved policy."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rewire.data.episodes import Episode, EpisodeDataset
from rewire.data.mazes import point_maze_dataset
from rewire.envs import EnvSpec, make_gym, make_jax
from rewire.rollout import TRAJ_KEYS, scan_steps

# A NumPy policy for Gymnasium envs: (obs, rng) -> action in the unit box [-1, 1].
HostPolicy = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _pendulum(noise: float) -> HostPolicy:
    """Energy pumping far from upright, PD control near it (unit-box torque)."""

    def act(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cos, sin, vel = obs
        theta = np.arctan2(sin, cos)
        u = -(5.0 * theta + 1.0 * vel) / 2.0 if cos > 0.85 else np.sign(vel if vel != 0 else 1.0)
        return np.clip(np.array([u]) + noise * rng.standard_normal(1), -1.0, 1.0)

    return act


def _mountain_car(noise: float) -> HostPolicy:
    """Push along the velocity to build up energy."""

    def act(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = 1.0 if obs[1] >= 0 else -1.0
        return np.clip(np.array([u]) + noise * rng.standard_normal(1), -1.0, 1.0)

    return act


SCRIPTED: dict[str, Callable[[float], HostPolicy]] = {
    "Pendulum-v1": _pendulum,
    "MountainCarContinuous-v0": _mountain_car,
}


def _cut_first_episode(traj: dict[str, np.ndarray]) -> Episode:
    done = traj["terminated"] | traj["truncated"]
    end = int(np.argmax(done)) + 1 if done.any() else len(done)
    obs = np.concatenate([traj["obs"][:end], traj["next_obs"][end - 1 : end]])
    trunc = np.asarray(traj["truncated"][:end]).copy()
    trunc[-1] = trunc[-1] or not traj["terminated"][end - 1]
    return Episode(
        obs.astype(np.float32),
        traj["action"][:end].astype(np.float32),
        traj["reward"][:end].astype(np.float32),
        traj["terminated"][:end].astype(bool),
        trunc,
    )


def maze_dataset(
    spec: EnvSpec,
    episodes: int,
    seed: int,
    noise: float = 0.6,
    random_fraction: float = 0.5,
    gain: float = 0.9,
) -> EpisodeDataset:
    """AntMaze-"diverse"-like data (README, "Cal-QL"): a share of episodes follows the layout's route, the
    rest heads for a random waypoint; every action carries Gaussian noise."""
    env, params = make_jax(spec.env_id)
    k_mode, k_wp, k_run = jax.random.split(jax.random.PRNGKey(seed), 3)
    policy_params = {
        "random": jax.random.uniform(k_mode, (episodes,)) < random_fraction,
        "waypoint": jax.random.uniform(k_wp, (episodes, 2), minval=-2.8, maxval=2.8),
    }

    def act(pp, obs, k, deterministic):
        to_wp = pp["waypoint"] - obs
        direction = jnp.where(
            pp["random"], to_wp / (jnp.linalg.norm(to_wp) + 1e-6), env.scripted_direction(obs)
        )
        return jnp.clip(gain * direction + noise * jax.random.normal(k, (2,)), -1.0, 1.0)

    def one(pp, k):
        k_reset, k_steps = jax.random.split(k)
        obs, state = env.reset(k_reset, params)
        return scan_steps(env, params, act, False, spec.horizon, pp, state, obs, k_steps)[2]

    trajs = jax.jit(jax.vmap(one))(policy_params, jax.random.split(k_run, episodes))
    trajs = {k: np.asarray(v) for k, v in trajs.items()}
    eps = [_cut_first_episode({k: v[i] for k, v in trajs.items()}) for i in range(episodes)]
    meta = {
        "generator": "scripted-maze",
        "noise": noise,
        "random_fraction": random_fraction,
        "gain": gain,
        "seed": seed,
    }
    return EpisodeDataset(eps, spec.env_id, meta)


def host_policy_dataset(
    spec: EnvSpec, policy: HostPolicy, episodes: int, seed: int, meta: dict
) -> EpisodeDataset:
    """Roll a NumPy policy in a Gymnasium env; actions are stored in the env's own units."""
    env = make_gym(spec.env_id)
    rng = np.random.default_rng(seed)
    eps = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        steps: dict[str, list] = {k: [] for k in TRAJ_KEYS}
        done = False
        while not done:
            a = spec.to_env_action(policy(np.asarray(obs, np.float32), rng))
            obs2, r, term, trunc, _ = env.step(a)
            for k, v in zip(steps, (obs, a, r, obs2, term, trunc), strict=True):
                steps[k].append(v)
            obs, done = obs2, term or trunc
        eps.append(_cut_first_episode({k: np.asarray(v) for k, v in steps.items()}))
    env.close()
    return EpisodeDataset(eps, spec.env_id, {**meta, "seed": seed})


def scripted_dataset(spec: EnvSpec, episodes: int, seed: int, noise: float | None = None) -> EpisodeDataset:
    """The built-in noisy controller of `spec`'s environment."""
    if spec.is_jax:
        return maze_dataset(spec, episodes, seed, **({} if noise is None else {"noise": noise}))
    if spec.env_id.startswith("PointMaze_"):
        return point_maze_dataset(spec, episodes, seed, **({} if noise is None else {"noise": noise}))
    if spec.env_id not in SCRIPTED:
        raise ValueError(
            f"no scripted controller for {spec.env_id}; scripted: {sorted(SCRIPTED)} and the point mazes "
            "(rewire's and gymnasium-robotics' PointMaze_*). "
            "Pass --policy CHECKPOINT to roll a saved policy instead."
        )
    noise = 0.3 if noise is None else noise
    return host_policy_dataset(
        spec,
        SCRIPTED[spec.env_id](noise),
        episodes,
        seed,
        {"generator": f"scripted-{spec.env_id}", "noise": noise},
    )


def policy_dataset(
    spec: EnvSpec,
    act: Callable[[np.ndarray, jax.Array], np.ndarray],
    episodes: int,
    seed: int,
    noise: float,
    source: str,
) -> EpisodeDataset:
    """Roll a saved policy (plus Gaussian action noise) through the env's Gymnasium interface."""
    key = [jax.random.PRNGKey(seed)]

    def policy(obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        key[0], k = jax.random.split(key[0])
        return np.clip(np.asarray(act(obs, k)) + noise * rng.standard_normal(spec.act_dim), -1.0, 1.0)

    return host_policy_dataset(
        spec, policy, episodes, seed, {"generator": "policy", "policy": source, "noise": noise}
    )
