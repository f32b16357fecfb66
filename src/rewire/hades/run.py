"""Running HaDES and the neuroevolution baseline: build from a config and a seed, checkpoint, resume, save."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rewire.envs.control import ControlTask
from rewire.hades.bc import Learner, initializer
from rewire.hades.core import (
    HadesConfig,
    dataset_template,
    evaluate_dataset,
    make_hades_score,
    make_neuroevolution_score,
    observation_stats,
    policy_for,
    task_for,
)
from rewire.hades.dataset import save_synthetic
from rewire.hades.evolution import Evolution
from rewire.loop import Loop
from rewire.runs import RECORD, config_from_json, read_run_record, versions, write_json

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

    @property
    def env_steps(self) -> int:
        return self.evolution.generation * self.config.env_steps_per_generation(self.task)

    @property
    def evaluation_key(self) -> jax.Array:
        """Drives final evaluations; derived from the seed, apart from the keys the ES itself uses."""
        return jax.random.fold_in(jax.random.key(self.seed), 100)

    def evaluate_mean(self, learner: Learner | None = None, inits: int = EVAL_INITS) -> dict[str, np.ndarray]:
        """Fresh policies (this run's learner, or another) trained on the ES mean: `evaluate_dataset`, with
        the run's evaluation key."""
        dataset = jax.device_get(self.evolution.mean())
        return evaluate_dataset(
            dataset,
            self.task,
            learner or self.config.learner,
            self.obs_mean,
            self.obs_std,
            self.evaluation_key,
            inits,
        )

    def loop(self, directory: Path | None = None, quiet: bool = False, every: float = 30.0) -> Loop:
        """The run loop over this run's generations (checkpoints in `directory`, if given)."""
        label = f"{self.kind} {self.config.env_id}"
        return Loop(self.evolution, directory, every=every, quiet=quiet, description=label)


def _stats(task: ControlTask, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return observation_stats(task, jax.random.fold_in(jax.random.key(seed), 1))


def build_hades(config: HadesConfig, seed: int) -> EvolutionRun:
    """HaDES from a config and one seed (which drives ES noise, inits, rollouts and normalisation)."""
    task = task_for(config)
    obs_mean, obs_std = _stats(task, seed)
    score = make_hades_score(config, task, obs_mean, obs_std)
    fixed = jax.random.fold_in(jax.random.key(seed), 2) if config.variant == "F" else None
    init_fn = initializer(policy_for(config, task), task.obs_dim)
    template = dataset_template(config, task)
    evo = Evolution(
        config.es, template, score, config.inits_per_candidate, seed, fixed, init_fn, config.generations
    )
    return EvolutionRun(config, seed, task, evo, obs_mean, obs_std, "hades")


def build_neuroevolution(config: HadesConfig, seed: int) -> EvolutionRun:
    """The same ES on the policy weights, started from a standard random initialisation, with as many
    rollouts per candidate as HaDES-R has inits, so both spend the same environment steps per generation."""
    task = task_for(config)
    obs_mean, obs_std = _stats(task, seed)
    params0 = initializer(policy_for(config, task), task.obs_dim)(jax.random.fold_in(jax.random.key(seed), 3))
    score = make_neuroevolution_score(config, task, obs_mean, obs_std)
    evo = Evolution(
        config.es, params0, score, config.inits_per_candidate, seed, generations=config.generations
    )
    return EvolutionRun(config, seed, task, evo, obs_mean, obs_std, "neuroevolution")


def run_from_record(run_dir: str | Path, generations: int | None = None) -> EvolutionRun:
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
    return kinds[record["kind"]](config, record["seed"])


def save_dataset(run: EvolutionRun, path: Path) -> Path:
    """Save the ES mean (the released dataset) with its normalisation constants and provenance."""
    meta: dict[str, Any] = {
        "env_id": run.config.env_id,
        "config": run.config,
        "seed": run.seed,
        "generation": run.evolution.generation,
        "versions": versions(),
    }
    return save_synthetic(path, jax.device_get(run.evolution.mean()), run.obs_mean, run.obs_std, meta)
