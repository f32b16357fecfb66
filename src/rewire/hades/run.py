"""Running HaDES and the neuroevolution baseline: build from a config and a seed, checkpoint, resume, save;
`fit`, the high-level entry, on a built-in env id or any gymnax-style env object and flax policy."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from rewire.envs.control import ControlTask, make_control, task_from_env
from rewire.hades.bc import Learner, initializer
from rewire.hades.core import (
    HadesConfig,
    dataset_figure,
    dataset_template,
    default_config,
    evaluate_dataset,
    expand_states,
    make_hades_score,
    make_neuroevolution_score,
    observation_stats,
    observed_states,
    policy_for,
    random_observations,
    task_for,
    varying_features,
)
from rewire.hades.dataset import load_synthetic, save_synthetic
from rewire.hades.evolution import Evolution
from rewire.hosts import barrier
from rewire.loop import Loop, Stopwatch
from rewire.mesh import Devices, batch_mesh
from rewire.result import Result
from rewire.runs import (
    RECORD,
    config_from_json,
    read_json,
    read_run_record,
    start_run_dir,
    versions,
    write_json,
)

EVAL_INITS = 10  # fresh policies per reported median (the "median of 10")


@dataclass
class EvolutionRun:
    """An `Evolution` with the task it runs on and the fixed normalisation constants."""

    config: HadesConfig
    seed: int
    task: ControlTask
    evolution: Evolution
    obs_mean: np.ndarray
    obs_std: np.ndarray
    kind: str  # "hades" or "neuroevolution"
    net: nn.Module | None = None  # the user's policy network (None: the config's MLP)
    features: np.ndarray | None = None  # the evolved observation features (None: all)

    @property
    def env_steps(self) -> int:
        return self.evolution.generation * self.config.env_steps_per_generation(self.task)

    @property
    def evaluation_key(self) -> jax.Array:
        """Drives final evaluations; derived from the seed, apart from the keys the ES itself uses."""
        return jax.random.fold_in(jax.random.key(self.seed), 100)

    def dataset(self) -> dict[str, np.ndarray]:
        """The ES mean as the released dataset: full-width states (`expand_states`) and the other arrays."""
        return jax.device_get(expand_states(self.evolution.mean(), self.features, self.task.obs_dim))

    def evaluate_mean(
        self, learner: Learner | None = None, inits: int = EVAL_INITS, init_key: jax.Array | None = None
    ) -> dict[str, np.ndarray]:
        """Fresh policies (this run's learner, or another) trained on the ES mean: `evaluate_dataset`, with
        the run's evaluation key (and `init_key`, if given, as every policy's init)."""
        return evaluate_dataset(
            self.dataset(),
            self.task,
            learner or self.config.learner,
            self.obs_mean,
            self.obs_std,
            self.evaluation_key,
            inits,
            net=self.net if learner is None else None,
            init_key=init_key,
        )

    def evaluate_fixed_init(self, inits: int = EVAL_INITS) -> dict[str, np.ndarray]:
        """HaDES-F's agent: policies trained on the ES mean from the one init its fitness used (the
        paper's F evaluation): `evaluate_mean` from that init."""
        if self.fixed_init_key is None:
            raise ValueError(f"variant {self.config.variant!r} has no fixed init; use evaluate_mean")
        return self.evaluate_mean(inits=inits, init_key=self.fixed_init_key)

    @property
    def fixed_init_key(self) -> jax.Array | None:
        """HaDES-F's one inner init (None for R and for neuroevolution)."""
        if self.kind != "hades" or self.config.variant != "F":
            return None
        return fixed_init_key(self.seed)

    def loop(
        self,
        directory: Path | None = None,
        quiet: bool = False,
        every: float = 30.0,
        tensorboard: bool = False,
    ) -> Loop:
        """The run loop over this run's generations (checkpoints in `directory`, if given)."""
        label = f"{self.kind} {self.config.env_id}"
        return Loop(
            self.evolution, directory, every=every, quiet=quiet, description=label, tensorboard=tensorboard
        )


def fixed_init_key(seed: int) -> jax.Array:
    """HaDES-F's inner init, derived from the run's seed apart from its other keys."""
    return jax.random.fold_in(jax.random.key(seed), 2)


def _random_observations(task: ControlTask, seed: int) -> np.ndarray:
    """The random-policy rollouts that fix a run's normalisation (and, for HaDES, its varying features)."""
    return random_observations(task, jax.random.fold_in(jax.random.key(seed), 1))


def build_hades(
    config: HadesConfig,
    seed: int,
    task: ControlTask | None = None,
    net: nn.Module | None = None,
    devices: Devices = None,
) -> EvolutionRun:
    """HaDES from a config and one seed (which drives ES noise, inits, rollouts and normalisation), on the
    config's env id or on `task`, with the config's MLP or the user's flax module `net`; the population is
    split over `devices` (`rewire.mesh`)."""
    task = _checked(config, task)
    observations = _random_observations(task, seed)
    obs_mean, obs_std = observation_stats(observations, config.std_floor)
    features = varying_features(observations) if config.state_features == "varying" else None
    module = policy_for(config, task, net)
    score = make_hades_score(config, task, obs_mean, obs_std, module, features)
    fixed = fixed_init_key(seed) if config.variant == "F" else None
    init_fn = initializer(module, task.obs_dim)
    states = None
    if config.state_init == "observed":
        states = observed_states(
            task, jax.random.fold_in(jax.random.key(seed), 4), config.size, obs_mean, obs_std
        )
    template = dataset_template(config, task, states, features)
    mesh = batch_mesh(devices, config.es.popsize, "the ES population")
    evo = Evolution(
        config.es, template, score, config.inits_per_candidate, seed, fixed, init_fn, config.generations, mesh
    )
    return EvolutionRun(config, seed, task, evo, obs_mean, obs_std, "hades", net, features)


def build_neuroevolution(
    config: HadesConfig,
    seed: int,
    task: ControlTask | None = None,
    net: nn.Module | None = None,
    devices: Devices = None,
) -> EvolutionRun:
    """The same ES on the policy weights, started from a standard random initialisation, with as many
    rollouts per candidate as HaDES-R has inits, so both spend the same environment steps per generation."""
    task = _checked(config, task)
    obs_mean, obs_std = observation_stats(_random_observations(task, seed), config.std_floor)
    module = policy_for(config, task, net)
    params0 = initializer(module, task.obs_dim)(jax.random.fold_in(jax.random.key(seed), 3))
    score = make_neuroevolution_score(config, task, obs_mean, obs_std, module)
    mesh = batch_mesh(devices, config.es.popsize, "the ES population")
    evo = Evolution(
        config.es, params0, score, config.inits_per_candidate, seed, generations=config.generations, mesh=mesh
    )
    return EvolutionRun(config, seed, task, evo, obs_mean, obs_std, "neuroevolution", net)


def _checked(config: HadesConfig, task: ControlTask | None) -> ControlTask:
    if task is None:
        return task_for(config)
    config.validate(task)
    return task


def run_from_record(
    run_dir: str | Path, generations: int | None = None, devices: Devices = None
) -> EvolutionRun:
    """Rebuild the run a run directory's config.json describes (the loop then resumes its checkpoint).
    `generations` extends it: the key and the ES schedules of generation g do not depend on the total, so
    the longer run is the one that had been asked for from the start; config.json records the new total."""
    record = read_run_record(run_dir)
    config = config_from_json(HadesConfig, record["config"], f"{run_dir}/config.json: config")
    kinds = {"hades": build_hades, "neuroevolution": build_neuroevolution}
    if record.get("kind") not in kinds or not isinstance(record.get("seed"), int):
        raise ValueError(f"{run_dir}: config.json names no HaDES run (kind and seed)")
    if generations is not None and generations != config.generations:
        if generations < config.generations:
            raise ValueError(
                f"--generations {generations}: a resumed run can only be extended "
                f"(it has {config.generations})"
            )
        config = replace(config, generations=generations)
        write_json(Path(run_dir) / RECORD, record | {"config": config})
    return kinds[record["kind"]](config, record["seed"], devices=devices)


def save_dataset(run: EvolutionRun, path: Path) -> Path:
    """Save the ES mean (the released dataset) with its normalisation constants and provenance."""
    meta: dict[str, Any] = {
        "env_id": run.config.env_id,
        "config": run.config,
        "seed": run.seed,
        "generation": run.evolution.generation,
        "versions": versions(),
    }
    return save_synthetic(path, run.dataset(), run.obs_mean, run.obs_std, meta)


# ------------------------------------------------------------------------------------- the high-level entry

Env = str | ControlTask | tuple[Any, Any] | Any


def as_task(env: Env, horizon: int | None = None) -> ControlTask:
    """A `ControlTask` from a gymnax or Brax id, an `(env, env_params)` pair, a gymnax-style env object
    (its default params), or a `ControlTask`."""
    if isinstance(env, ControlTask):
        return env
    if isinstance(env, str):
        return make_control(env)
    if isinstance(env, tuple) and len(env) == 2:
        return task_from_env(env[0], env[1], horizon=horizon)
    return task_from_env(env, horizon=horizon)


class HadesResult(Result):
    """A HaDES run directory: `dataset.npz` (the ES mean with its normalisation constants), `result.json`
    (fresh-init returns), `dataset.png`, config.json and the metrics stream (a row per generation: the
    population's mean and max fitness, the inner BC loss). `run` is the in-memory run when `fit` made it."""

    progress = "generation"

    def __init__(self, directory: str | os.PathLike, run: EvolutionRun | None = None):
        super().__init__(directory)
        self.run = run

    @property
    def dataset(self) -> dict[str, np.ndarray]:
        """The distilled arrays (normalised states; actions or logits; log_lr if evolved)."""
        return load_synthetic(self.directory / "dataset.npz")[0]

    @property
    def summary(self) -> dict[str, Any]:
        """result.json: fresh-init returns of the distilled dataset, env steps, timing."""
        return read_json(self.directory / "result.json")

    def plot(self, key: str = "score_mean", path: str | os.PathLike | None = None) -> Path:
        return super().plot(key, path)


def _finish(run: EvolutionRun, directory: Path, watch: Stopwatch) -> HadesResult:
    """Write what a finished run releases: dataset.npz, result.json (fresh-init returns), dataset.png."""
    save_dataset(run, directory / "dataset.npz")
    ev = run.evaluate_mean()
    write_json(
        directory / "result.json",
        {
            "env": run.config.env_id,
            "generation": run.evolution.generation,
            "return_median": float(np.median(ev["returns"])),
            "return_per_init": ev["returns"],
            "env_steps": run.env_steps,
            "history": run.evolution.history,
            "timing": watch.summary("generations"),
        },
    )
    dataset_figure(run.dataset(), run.task, directory / "dataset.png")
    barrier("hades: finished")  # the files are there for every process to read
    return HadesResult(directory, run)


def fit(
    env: Env,
    config: HadesConfig | None = None,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    policy: nn.Module | None = None,
    horizon: int | None = None,
    quiet: bool = True,
    checkpoint_every: float = 30.0,
    tensorboard: bool = False,
    devices: Devices = None,
) -> HadesResult:
    """Evolve a synthetic dataset for `env` (see `as_task`; `horizon` for an env object whose params have
    no `max_steps_in_episode`) with HaDES. `config` defaults to `default_config` of the env; its `env_id`
    is set to the env's name. `policy`: a flax module mapping an observation to logits or a mean action
    (default: the config's MLP). The run directory `out` (a temporary one if None) is created atomically;
    if it holds a run of the same config and seed, that run resumes from its checkpoint."""
    task = as_task(env, horizon)
    config = replace(default_config(task.env_id) if config is None else config, env_id=task.env_id)
    run = build_hades(config, seed, task, policy, devices)
    policy_record = None if policy is None else repr(policy)
    directory = start_run_dir(out, "hades", config, seed, kind="hades", policy=policy_record)
    watch = run.loop(directory, quiet, checkpoint_every, tensorboard).run()
    return _finish(run, directory, watch)


def resume(
    run_dir: str | os.PathLike,
    generations: int | None = None,
    quiet: bool = True,
    tensorboard: bool = False,
    devices: Devices = None,
) -> HadesResult:
    """Continue the run in `run_dir` on a built-in env (`run_from_record`; `generations` extends it). A run
    on an env object resumes through `fit` with the same env, config and seed."""
    run = run_from_record(run_dir, generations, devices)
    watch = run.loop(Path(run_dir), quiet, tensorboard=tensorboard).run()
    return _finish(run, Path(run_dir), watch)
