"""Why HaDES levels off near 6.5 on Breakout-MinAtar at the cpu preset's budget (README "HaDES").

Four measurements, the first three with the preset's learner (ReLU 2x64, 64 Adam steps at lr 0.03):
1. a controller that moves the paddle under the ball's column, read from the observation;
2. BC on 16 of that controller's own observations (state i labelled i mod 3, as HaDES's fixed labels),
   several draws: can 16 real states teach this learner to track the ball?
3. the stored HaDES datasets of a bench JSON, each trained into fresh policies and played from each of
   the game's two starts (the ball at the left or the right wall): where do their episodes end?
4. from the same JSON's histories, HaDES's and neuroevolution's population means (over 10 generations)
   at equal environment steps, and the last generation where HaDES's is at least twice the baseline's.

    .venv/bin/python benchmarks/hades_breakout_plateau.py --json OUT.json
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from rewire.hades.bc import init_many
from rewire.hades.core import (
    default_config,
    evaluate_dataset,
    fit_dataset,
    make_policy_fn,
    policy_for,
    task_for,
)
from rewire.rollout import control_rollout
from rewire.runs import versions, write_json

ENV = "Breakout-MinAtar"
GRID = (10, 10, 4)  # rows, columns, channels (paddle, ball, trail, brick); flattened row-major


def tracker_action(obs: jax.Array) -> jax.Array:
    """Left (1) if the ball's column is left of the paddle, right (2) if right of it, else no-op (0)."""
    grid = obs.reshape(GRID)
    paddle = jnp.argmax(grid[9, :, 0])
    ball = jnp.argmax(grid[:, :, 1].max(axis=0))
    return jnp.where(ball < paddle, 1, jnp.where(ball > paddle, 2, 0))


def first_episodes(task, policy_fn, key: jax.Array, episodes: int) -> tuple[jax.Array, jax.Array]:
    """First-episode returns of `episodes` episodes and the column the ball started in (0 or 9)."""

    def one(k):
        out = control_rollout(task, policy_fn, k, 1, task.horizon)
        start = out["observations"][0, 0].reshape(GRID)[:, :, 1].max(axis=0)
        return out["first_return"], jnp.argmax(start)

    return jax.vmap(one)(jax.random.split(key, episodes))


def by_start(returns: jax.Array, column: jax.Array) -> dict[str, list[float]]:
    """Returns grouped by the ball's starting wall."""
    returns, column = np.asarray(returns).ravel(), np.asarray(column).ravel()
    return {side: returns[column == col].tolist() for side, col in (("left", 0), ("right", 9))}


def expert_datasets(task, obs_mean, obs_std, key: jax.Array, draws: int) -> list[np.ndarray]:
    """`draws` datasets of 16 normalised tracker observations, state i one where the tracker chose i mod 3."""
    k_play, k_pick = jax.random.split(key)
    observations = control_rollout(task, lambda o, k: tracker_action(o), k_play, 4, task.horizon)
    observations = np.asarray(observations["observations"]).reshape(-1, task.obs_dim)
    actions = np.asarray(jax.vmap(tracker_action)(jnp.asarray(observations)))
    rng = np.random.default_rng(int(jax.random.randint(k_pick, (), 0, 2**31 - 1)))
    out = []
    for _ in range(draws):
        rows = [rng.choice(np.flatnonzero(actions == i % task.action_dim)) for i in range(16)]
        out.append(((observations[rows] - obs_mean) / obs_std).astype(np.float32))
    return out


def stored_dataset_returns(run: dict, config, task, key: jax.Array, episodes: int) -> dict[str, list[float]]:
    """First-episode returns by start of 10 fresh policies trained on one stored run's dataset."""
    module = policy_for(config, task)
    data = {k: jnp.asarray(v, jnp.float32) for k, v in run["dataset"].items()}
    mean, std = (jnp.asarray(run[k], jnp.float32) for k in ("obs_mean", "obs_std"))
    k_init, k_play = jax.random.split(key)
    params = init_many(module, task.obs_dim, jax.random.split(k_init, 10))

    def play(p, k):
        p, _ = fit_dataset(config.learner, module, p, data, task)
        return first_episodes(task, make_policy_fn(task, module, p, mean, std, greedy=False), k, episodes)

    return by_start(*jax.jit(jax.vmap(play))(params, jax.random.split(k_play, 10)))


def population_mean_ratios(run: dict, window: int = 10) -> dict:
    """HaDES's and neuroevolution's population mean fitness, each averaged over `window` generations,
    every 50 generations, and the last generation at which HaDES's is at least twice the baseline's."""
    smooth = {
        name: np.convolve(run["history"][name]["score_mean"], np.ones(window) / window, mode="valid")
        for name in ("hades", "neuroevolution")
    }
    ratio = smooth["hades"] / smooth["neuroevolution"]
    generations = np.arange(window, len(ratio) + window)  # the window's last generation
    at = [g for g in generations if g % 50 == 0]
    return {
        "generation": at,
        **{name: [float(curve[g - window]) for g in at] for name, curve in smooth.items()},
        "last_generation_at_least_2x": int(generations[ratio >= 2][-1]) if (ratio >= 2).any() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="benchmarks/results/hades-breakout-varying-seeds1-3.json")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()

    config = default_config(ENV, "cpu")
    task = task_for(config)
    with open(args.results) as f:
        stored = json.load(f)["runs"]
    obs_mean, obs_std = (np.asarray(stored[0][k], np.float32) for k in ("obs_mean", "obs_std"))
    k_track, k_expert, k_eval, k_runs = jax.random.split(jax.random.key(args.seed), 4)

    tracker = by_start(
        *jax.jit(first_episodes, static_argnums=(0, 1, 3))(
            task, lambda o, k: tracker_action(o), k_track, args.episodes
        )
    )
    print(f"tracker: returns {sorted(set(tracker['left'] + tracker['right']))}", flush=True)

    expert = []
    for states in expert_datasets(task, obs_mean, obs_std, k_expert, args.draws):
        dataset = {"states": states}
        returns = evaluate_dataset(dataset, task, config.learner, obs_mean, obs_std, k_eval)["returns"]
        expert.append(float(np.median(returns)))
    print(f"BC on 16 tracker observations, median per draw: {expert}", flush=True)

    runs = []
    for run, key in zip(stored, jax.random.split(k_runs, len(stored)), strict=True):
        returns_by_start = stored_dataset_returns(run, config, task, key, args.episodes)
        curves = population_mean_ratios(run)
        runs.append({"seed": run["seed"], "returns_by_start": returns_by_start, "population_means": curves})
        for side, returns in returns_by_start.items():
            values, counts = np.unique(returns, return_counts=True)
            spread = ", ".join(f"{v:g} x{n}" for v, n in zip(values, counts, strict=True))
            print(f"seed {run['seed']}, {side} start: {spread}")
        means = ", ".join(
            f"g{g} {h:.2f}/{n:.2f}"
            for g, h, n in zip(curves["generation"], curves["hades"], curves["neuroevolution"], strict=True)
        )
        last = curves["last_generation_at_least_2x"]
        print(f"seed {run['seed']}, HaDES/neuroevolution population means {means}; 2x up to g{last}")

    write_json(
        args.json,
        {
            "env": ENV,
            "seed": args.seed,
            "results": args.results,
            "learner": config.learner,
            "tracker_returns_by_start": tracker,
            "bc_on_16_tracker_observations_median_per_draw": expert,
            "stored_datasets": runs,
            "versions": versions(),
        },
    )


if __name__ == "__main__":
    main()
