"""`rewire bench hades`: HaDES against neuroevolution at equal environment steps, and transfer to other
architectures and inner-loop hyper-parameters."""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rewire.hades.bc import init_many
from rewire.hades.core import (
    HadesConfig,
    dataset_template,
    default_config,
    evaluate_policies,
    fit_dataset,
    make_policy_fn,
    policy_for,
)
from rewire.hades.multitask import SLOTS, load_discrete_dataset, run_multitask
from rewire.hades.run import EVAL_INITS, EvolutionRun, build_hades, build_neuroevolution, fit, save_dataset
from rewire.mesh import Devices
from rewire.rollout import control_rollout
from rewire.runs import start_run_dir, versions

# The reference implementation's neuroevolution settings on weights (Lupu et al. 2024): sigma 0.03 and, for
# SNES, temperature 20. The baseline keeps them when HaDES's own SNES is tuned (the MinAtar cpu preset's
# temperature 5 cut neuroevolution on Breakout from 4.7 to 1.1: README "HaDES").
NE_SIGMA = 0.03
NE_TEMPERATURE = 20.0


def generalisation_archs(learner) -> dict[str, str]:
    """Other inner learners to train on a distilled dataset: widths, depth, activation, lr and steps."""
    other_act = "relu" if learner.activation == "tanh" else "tanh"
    return {
        "width32": "width=32",
        "width256": "width=256",
        "depth3": "depth=3",
        other_act: f"act={other_act}",
        "lr_x0.3": f"lr={learner.lr * 0.3:g}",
        "lr_x3": f"lr={learner.lr * 3:g}",
        "steps_x0.5": f"steps={max(1, learner.steps // 2)}",
        "steps_x2": f"steps={learner.steps * 2}",
    }


def parameter_count(tree) -> int:
    return int(sum(np.size(x) for x in jax.tree.leaves(tree)))


def bench_config(
    env: str,
    size: int | None,
    variant: str,
    generations: int | None,
    popsize: int | None,
    preset: str = "cpu",
    state_features: str | None = None,
) -> HadesConfig:
    base = default_config(env, preset)
    return replace(
        base,
        size=size or base.size,
        state_features=state_features or base.state_features,
        variant=variant,
        generations=base.generations if generations is None else generations,
        es=replace(base.es, popsize=popsize or base.es.popsize),
    )


def run_hades_benchmark(
    env: str = "CartPole-v1",
    size: int | None = None,
    variant: str = "R",
    generations: int | None = None,
    popsize: int | None = None,
    seed: int = 0,
    quiet: bool = False,
    out_dir: Path | None = None,
    devices: Devices = None,
    preset: str = "cpu",
    cost: bool = False,
    state_features: str | None = None,
) -> dict:
    """Distil a dataset, evaluate fresh policies on it, run the baseline at equal env steps, and test
    transfer. With `out_dir`, each run's checkpoints and metrics go to `out_dir/<kind>/` and the dataset
    (NPZ) to `out_dir/dataset.npz`. With `cost`, also the generation's cost against its floor
    (`generation_cost`)."""
    config = bench_config(env, size, variant, generations, popsize, preset, state_features)
    hades = build_hades(config, seed, devices=devices)
    hades_time = hades.loop(run_dir(out_dir, "hades", config, seed), quiet).run()
    dataset = hades.dataset()
    if out_dir is not None:
        save_dataset(hades, out_dir / "dataset.npz")
    ev = hades.evaluate_mean()

    ne_config = replace(config, es=replace(config.es, sigma=NE_SIGMA, temperature=NE_TEMPERATURE))
    ne = build_neuroevolution(ne_config, seed, devices=devices)
    ne_time = ne.loop(run_dir(out_dir, "neuroevolution", ne_config, seed), quiet).run()
    # One policy, evaluated EVAL_INITS times (fresh episodes each) so both medians are over 10 numbers.
    ne_mean = jax.device_get(ne.evolution.mean())
    ne_params = jax.tree.map(lambda x: np.repeat(x[None], EVAL_INITS, 0), ne_mean)
    module = policy_for(config, ne.task)
    ne_returns = evaluate_policies(
        ne.task, module, ne_params, ne.obs_mean, ne.obs_std, jax.random.fold_in(hades.evaluation_key, 1)
    )

    generalisation, per_arch = {}, {}
    for name, spec in generalisation_archs(config.learner).items():
        out = hades.evaluate_mean(config.learner.with_arch(spec))
        generalisation[name] = float(np.median(out["returns"]))
        per_arch[name] = {"spec": spec, "returns": out["returns"]}

    out = {
        "config": config,
        "preset": preset,
        "versions": versions(),
        "seed": seed,
        "env": env,
        "size": config.size,
        "variant": variant,
        "return_median": float(np.median(ev["returns"])),
        "return_per_init": ev["returns"],
        "bc_loss_per_init": ev["bc_loss"],
        "neuroevolution": {
            "return_median": float(np.median(ne_returns)),
            "return_per_eval": ne_returns,
            "env_steps": ne.env_steps,
            "sigma": NE_SIGMA,
            "temperature": NE_TEMPERATURE,
            "parameters": parameter_count(ne_mean),
            "generations_per_s": ne_time.rate,
        },
        "env_steps": hades.env_steps,
        "dataset_parameters": parameter_count(dataset),  # the released (full-width) dataset
        "evolved_parameters": parameter_count(hades.evolution.mean()),  # what the ES searches over
        "generalisation": generalisation,
        "generalisation_detail": per_arch,
        "generations_per_s": hades_time.rate,
        "history": {"hades": hades.evolution.history, "neuroevolution": ne.evolution.history},
        "env_steps_per_generation": config.env_steps_per_generation(hades.task),
        "dataset": dataset,
        "obs_mean": hades.obs_mean,
        "obs_std": hades.obs_std,
    }
    if cost:
        out["cost"] = {
            "hades": generation_cost(hades, hades_time.seconds / max(hades_time.units, 1)),
            "neuroevolution": generation_cost(ne, ne_time.seconds / max(ne_time.units, 1)),
        }
    return out


def run_dir(out_dir: Path | None, kind: str, config: HadesConfig, seed: int) -> Path | None:
    """`out_dir/<kind>` as a run directory (config.json with the config and seed): a rerun resumes it, a
    run of another config there is refused, and the HaDES one is what `fit` would have made."""
    if out_dir is None:
        return None
    return start_run_dir(out_dir / kind, kind, config, seed, kind=kind, policy=None)


def run_hades_seeds(
    env: str = "CartPole-v1",
    seeds: int = 3,
    seed: int = 0,
    preset: str = "cpu",
    quiet: bool = False,
    out_dir: Path | None = None,
    devices: Devices = None,
    **options,
) -> dict:
    """`run_hades_benchmark` for seeds seed, seed+1, ... (each seed drives both methods); the median over
    seeds of each method's fresh-evaluation median, their ratio, and, from the first seed, the cost of a
    generation against its floor. `options`: size, variant, generations, popsize, state_features."""
    runs = []
    for i in range(seeds):
        folder = out_dir / f"seed{seed + i}" if out_dir is not None else None
        runs.append(
            run_hades_benchmark(
                env,
                seed=seed + i,
                quiet=quiet,
                out_dir=folder,
                devices=devices,
                preset=preset,
                cost=i == 0,
                **options,
            )
        )
    hades = [r["return_median"] for r in runs]
    ne = [r["neuroevolution"]["return_median"] for r in runs]
    return {
        "env": env,
        "preset": preset,
        "seeds": [r["seed"] for r in runs],
        "config": runs[0]["config"],
        "versions": versions(),
        "hades_median": float(np.median(hades)),
        "neuroevolution_median": float(np.median(ne)),
        "ratio_of_medians": ratio(float(np.median(hades)), float(np.median(ne))),
        "hades_per_seed": hades,
        "neuroevolution_per_seed": ne,
        "env_steps": runs[0]["env_steps"],
        "cost": runs[0]["cost"],
        "runs": runs,
    }


def ratio(a: float, b: float) -> float:
    """a / b, or inf (nan for 0 / 0) when b is 0: MinAtar returns can be 0."""
    if b != 0:
        return a / b
    return float("nan") if a == 0 else float("inf") * np.sign(a)


def generation_cost(run: EvolutionRun, seconds_per_generation: float, repeats: int = 3) -> dict:
    """A generation's seconds (from the run loop, compilation excluded) against its floor, measured now on
    the same shapes: the bare vmapped rollouts of the generation's environment steps (population x inits
    policies, `num_envs` x rollout steps each), plus, for HaDES, the bare BC training of as many policies
    on a dataset of the evolved shape. `overhead` = generation / (rollouts + BC): what the ES, the
    initialisations and the loop add."""
    config, task = run.config, run.task
    count = config.es.popsize * config.inits_per_candidate
    module = policy_for(config, task, run.net)
    keys = jax.random.split(jax.random.fold_in(run.evaluation_key, 7), count)
    params = init_many(module, task.obs_dim, keys)
    mean, std = jnp.asarray(run.obs_mean), jnp.asarray(run.obs_std)
    steps = config.steps(task)

    def rollout(p, k):
        policy = make_policy_fn(task, module, p, mean, std, config.greedy)
        return control_rollout(task, policy, k, config.num_envs, steps)["mean_return"]

    rollouts = jax.jit(jax.vmap(rollout))
    floor = {"rollout_seconds": _best_time(rollouts, repeats, params, keys)}
    if run.kind == "hades":
        template = dataset_template(config, task)
        data = jax.tree.map(lambda x: jax.random.normal(keys[0], (count, *x.shape)), template)
        bc = jax.jit(jax.vmap(lambda p, d: fit_dataset(config.learner, module, p, d, task)))
        floor["bc_seconds"] = _best_time(bc, repeats, params, data)
    floor_seconds = sum(floor.values())
    return {
        "seconds_per_generation": seconds_per_generation,
        **floor,
        "floor_seconds": floor_seconds,
        "overhead": seconds_per_generation / floor_seconds,
        "policies": count,
        "env_steps": config.env_steps_per_generation(task),
    }


def _best_time(fn, repeats: int, *args) -> float:
    """The fastest of `repeats` calls after one compiling call (the floor is what the work needs)."""
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


MULTITASK_ENVS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")
MULTITASK_KEYS = {
    "multitask": "multitask_median",
    "single_task": "single_task_median",
    "random": "random_return",
    "normalised": "normalised",
    "ratio": "ratio",
}


def run_multitask_benchmark(
    envs: tuple[str, ...] = MULTITASK_ENVS,
    seeds: int = 3,
    seed: int = 0,
    arch: str = "",
    preset: str = "cpu",
    out_dir: Path | None = None,
    quiet: bool = False,
) -> dict:
    """Per seed: distil one dataset per environment with HaDES (`default_config(env, preset)`, that seed),
    then train multi-task policies on their union with both input layouts (`rewire.hades.multitask`) and
    compare each environment's return with single-task policies of the same learner (the first env's,
    modified by `arch`). Medians over seeds of each env's multi-task, single-task and normalised scores."""
    per_seed = []
    with tempfile.TemporaryDirectory() as scratch:
        root = out_dir or Path(scratch)
        for s in range(seed, seed + seeds):
            paths = []
            for env in envs:
                result = fit(env, default_config(env, preset), s, root / f"seed{s}" / env, quiet=quiet)
                paths.append(result.directory / "dataset.npz")
            learner = load_discrete_dataset(paths[0]).learner.with_arch(arch)
            per_seed.append(
                {slots: run_multitask(paths, learner, s, slots=slots) for slots in SLOTS} | {"seed": s}
            )
    summary = {}
    for slots in SLOTS:
        rows = {}
        for env in envs:
            # per seed: each kind's median over fresh policies; here their median over seeds
            values = {
                name: [run[slots]["tasks"][env][key] for run in per_seed]
                for name, key in MULTITASK_KEYS.items()
            }
            rows[env] = {k: float(np.median(v)) for k, v in values.items()} | {"per_seed": values}
        summary[slots] = {"tasks": rows, "worst_normalised": min(r["normalised"] for r in rows.values())}
    return {
        "envs": list(envs),
        "seeds": list(range(seed, seed + seeds)),
        "preset": preset,
        "arch": arch,
        "versions": versions(),
        "summary": summary,
        "runs": per_seed,
    }
