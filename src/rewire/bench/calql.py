"""`rewire bench calql`: CQL against Cal-QL from one dataset, the dip and regret of online fine-tuning."""

from __future__ import annotations

import dataclasses

import numpy as np

from rewire.calql.presets import PRESETS
from rewire.calql.trainer import Finetuner
from rewire.data.generate import scripted_dataset
from rewire.envs import make_spec, maze_id
from rewire.loop import Loop
from rewire.mesh import Devices
from rewire.runs import versions

METRICS = (
    "success_at_switch",
    "dip_depth",
    "cumulative_regret",
    "final_success",
    "q_minus_mc_at_switch",
    "bound_rate_at_switch",
)

DATASET_EPISODES = 200


def run_calql_benchmark(
    preset: str = "quick",
    seeds: int | None = None,
    seed: int = 0,
    layout: str = "umaze",
    quiet: bool = False,
    devices: Devices = None,
) -> tuple[dict, Finetuner]:
    """Train CQL and Cal-QL (x seeds, one vmapped stack) on a scripted dataset; medians over seeds."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    spec = make_spec(maze_id(layout))
    config = dataclasses.replace(
        PRESETS[preset],
        env_id=spec.env_id,
        seed=seed,
        seeds=seeds if seeds is not None else PRESETS[preset].seeds,
    )
    dataset = scripted_dataset(spec, DATASET_EPISODES, seed)
    trainer = Finetuner(config, dataset, devices=devices)
    Loop(trainer, quiet=quiet, description=f"calql bench ({layout})").run()
    results = trainer.results()
    methods = {}
    for method in config.methods:
        rows = [a for a in results["agents"] if a["method"] == method]
        per_seed = {k: [r[k] for r in rows] for k in METRICS}
        methods[method] = {k: float(np.median(v)) for k, v in per_seed.items()} | {
            # all agents train in one vmapped call, so this rate is every agent's (compilation excluded)
            "updates_per_s": trainer.updates_per_s,
            "per_seed": per_seed,
        }
    out = {
        "config": dataclasses.asdict(trainer.config)
        | {"preset": preset, "dataset_episodes": DATASET_EPISODES},
        "versions": versions(),
        "dataset": dataset.summary(),
        "methods": methods,
        "curves": results["curves"],
    }
    return out, trainer
