"""`rewire bench unlearn`: what a deletion costs against ρ√(ln T), and what stability costs in regret.

Cost: for each horizon T and ρ, learners (several seeds, one data set) play T episodes; then users drawn
uniformly, and the oldest user (the most expensive: in L nodes), are each deleted from the learned state
with fresh coupling randomness. Every deletion is a real one (coupling plus replay). Reported per row: the
mean fraction of the T episodes replayed, beside ρ√(ln T) and the exact prediction from the coupling's
per-node TVs; the oldest user's fraction; wall time of a deletion against a full retrain.

Regret: at the largest T, the stable learner for every ρ beside non-private UCBVI (σ = 0), with the
theory's bonus constants and with the practical bonus (see `tree.calibrate`).
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from rewire.mesh import Devices, batch_mesh, place
from rewire.progress import progress_bar
from rewire.runs import versions
from rewire.unlearn.learner import LearnerState, StableUCBVI
from rewire.unlearn.mdp import optimal_values
from rewire.unlearn.session import Setup, seed_key
from rewire.unlearn.tree import BONUSES, levels

EPISODES = (100, 300, 1000, 3000, 10000)
RHOS = (0.05, 0.1, 0.2, 0.5)


def _learned(
    learner: StableUCBVI, setup: Setup, seed: int, rhos: list[float | None], seeds: int, devices: Devices
) -> LearnerState:
    """Learners for every (ρ, seed), vmapped (split over `devices`), after T episodes; ρ-major order."""
    calib = jax.tree.map(lambda *c: jnp.repeat(jnp.stack(c), seeds), *[learner.calibration(r) for r in rhos])
    keys = jnp.tile(jax.random.split(seed_key(seed, 2), seeds), len(rhos))
    keys = place(keys, batch_mesh(devices, len(keys), "the benchmark's learners (rhos x seeds)"))
    present = jnp.ones(setup.episodes, bool)
    state = jax.vmap(learner.init, (0, None, None, 0))(keys, setup.users(seed), present, calib)
    return jax.jit(jax.vmap(learner.learn, (0, None)))(state, setup.episodes)


def _pick(state: LearnerState, index: int | slice) -> LearnerState:
    return jax.tree.map(lambda a: a[index], state)


def cost_rows(
    setup: Setup,
    seed: int,
    rhos: tuple[float, ...],
    seeds: int,
    deletions: int,
    bar,
    wall_repeats: int = 3,
    devices: Devices = None,
) -> tuple[list[dict], LearnerState, StableUCBVI]:
    """The cost rows for one T (setup.episodes), and the learned states (for regret)."""
    T = setup.episodes
    _, learner = setup.build(seed)
    with jax.enable_x64(True):
        states = _learned(learner, setup, seed, list(rhos), seeds, devices)
        # a fresh link of the key chain for every deletion: fresh coupling draws and replay noise
        delete = jax.jit(lambda s, u, k: learner.delete(s.replace(chain=k), u))
        learn = jax.jit(learner.learn)
        draw = jax.random.split(seed_key(seed, 4), 2)
        uniform = np.asarray(jax.random.randint(draw[0], (len(rhos), seeds, deletions), 1, T + 1))
        rows = []
        for r, rho in enumerate(rhos):
            reports: dict[str, list[dict]] = {"uniform": [], "oldest": []}
            walls = []
            for s in range(seeds):
                state = _pick(states, r * seeds + s)
                coupling = jax.random.split(jax.random.fold_in(draw[1], r * seeds + s), 2 * deletions)
                coupling_keys = jax.vmap(jax.random.key_data)(coupling)  # fresh draws for every deletion
                users = {"uniform": uniform[r, s].tolist(), "oldest": [1] * deletions}
                for kind, chosen in users.items():
                    for n, user in enumerate(chosen):
                        k = coupling_keys[n + (kind == "oldest") * deletions]
                        start = time.perf_counter()
                        new, report = delete(state, jnp.int32(user), k)
                        jax.block_until_ready(new.released)
                        walls.append(time.perf_counter() - start)
                        reports[kind].append({k2: float(v) for k2, v in report.items()})
                bar.advance(1, note=f"T={T} rho={rho}")
            fresh = state.replace(t_now=jnp.int32(0))
            retrain = []
            for _ in range(wall_repeats):
                start = time.perf_counter()
                jax.block_until_ready(learn(fresh, T).released)
                retrain.append(time.perf_counter() - start)
            frac = np.array([x["recomputed"] for x in reports["uniform"]]) / T
            oldest = np.array([x["recomputed"] for x in reports["oldest"]]) / T
            bound = rho * math.sqrt(math.log(T))
            rows.append(
                {
                    "episodes": T,
                    "rho": rho,
                    "recompute_fraction": float(frac.mean()),
                    "rho_sqrt_ln_t": bound,
                    "within_bound": bool(frac.mean() <= bound),
                    "predicted_fraction": float(
                        np.mean([x["predicted_recomputed"] for x in reports["uniform"]]) / T
                    ),
                    "recompute_rate": float((frac > 0).mean()),
                    "predicted_rate": float(
                        np.mean([x["predicted_recompute_probability"] for x in reports["uniform"]])
                    ),
                    "median_fraction": float(np.median(frac)),
                    "p90_fraction": float(np.quantile(frac, 0.9)),
                    "oldest_fraction": float(oldest.mean()),
                    "oldest_predicted_fraction": float(
                        np.mean([x["predicted_recomputed"] for x in reports["oldest"]]) / T
                    ),
                    "rho_sqrt_levels": rho * math.sqrt(levels(T)),
                    "deletions": int(frac.size),
                    "delete_wall_s_median": float(np.median(walls)),
                    "delete_wall_s_mean": float(np.mean(walls)),
                    "retrain_wall_s": float(np.median(retrain)),
                }
            )
    return rows, states, learner


def regret_curves(
    setup: Setup,
    seed: int,
    learner: StableUCBVI,
    states: LearnerState,
    rho: float | None,
    seeds: int,
    points: int = 40,
) -> dict:
    """Cumulative regret at `points` checkpoints, median and per seed, for `seeds` consecutive states."""
    T = setup.episodes
    with jax.enable_x64(True):
        optimal = optimal_values(learner.mdp)
        users = setup.users(seed)
        per_episode = jax.jit(jax.vmap(learner.regret, (0, None, None)))(states, optimal, users)
        cum = np.cumsum(np.asarray(per_episode), axis=1)
    at = np.unique(np.linspace(1, T, points).round().astype(int))
    curves = cum[:, at - 1]
    return {
        "rho": rho,
        "bonus": setup.bonus,
        "episodes": at.tolist(),
        "cumulative_regret_median": np.median(curves, 0).tolist(),
        "cumulative_regret_per_seed": curves.tolist(),
        "final_regret_median": float(np.median(curves[:, -1])),
        "seeds": int(curves.shape[0]),
    }


def run_unlearn_benchmark(
    mdp: str = "random",
    states: int = 4,
    actions: int | None = None,
    horizon: int = 4,
    episodes: tuple[int, ...] = EPISODES,
    rhos: tuple[float, ...] = RHOS,
    seeds: int = 3,
    deletions: int = 32,
    seed: int = 0,
    quiet: bool = False,
    devices: Devices = None,
) -> dict:
    """Cost rows for every (T, ρ) and regret at the largest T (see the module docstring); the learners are
    split over `devices`."""
    if not episodes or not rhos or seeds < 1 or deletions < 1:
        raise ValueError("need at least one horizon, one rho, one seed and one deletion")
    start = time.perf_counter()
    base = Setup(mdp=mdp, states=states, actions=actions, horizon=horizon, bonus="practical")
    rows: list[dict] = []
    regret: dict[str, list[dict]] = {"stable": [], "ucbvi": []}
    longest = max(episodes)
    with progress_bar("deletion cost (T, rho, seed)", len(episodes) * len(rhos) * seeds, quiet) as bar:
        for T in sorted(episodes):
            setup = dataclasses.replace(base, episodes=T)
            got, learned, learner = cost_rows(setup, seed, rhos, seeds, deletions, bar, devices=devices)
            rows += got
            if T == longest:
                for r, rho in enumerate(rhos):
                    part = _pick(learned, slice(r * seeds, (r + 1) * seeds))  # the seeds of rho r
                    regret["stable"].append(regret_curves(setup, seed, learner, part, rho, seeds))
    setup = dataclasses.replace(base, episodes=longest)
    for bonus in BONUSES:
        setup = dataclasses.replace(setup, bonus=bonus)
        _, learner = setup.build(seed)
        with jax.enable_x64(True):
            ucb = _learned(learner, setup, seed, [None], seeds, devices)
        regret["ucbvi"].append(regret_curves(setup, seed, learner, ucb, None, seeds))
        if bonus == "theory":
            with jax.enable_x64(True):
                stable = _learned(learner, setup, seed, list(rhos), seeds, devices)
            for r, rho in enumerate(rhos):
                part = _pick(stable, slice(r * seeds, (r + 1) * seeds))
                regret["stable"].append(regret_curves(setup, seed, learner, part, rho, seeds))
    return {
        "config": dataclasses.asdict(base)
        | {"seed": seed}
        | {"episodes": list(episodes), "rhos": list(rhos), "seeds": seeds, "deletions_per_seed": deletions},
        "versions": versions(),
        "rows": rows,
        "regret": regret,
        "criteria": {
            "fraction_within_rho_sqrt_ln_t_every_row": all(r["within_bound"] for r in rows),
            "max_fraction_over_bound": max(r["recompute_fraction"] / r["rho_sqrt_ln_t"] for r in rows),
            "max_oldest_fraction_over_bound": max(r["oldest_fraction"] / r["rho_sqrt_ln_t"] for r in rows),
        },
        "wall_s": time.perf_counter() - start,
    }
