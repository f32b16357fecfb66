"""`rewire bench calql`: CQL against Cal-QL from one dataset, the dip and regret of online fine-tuning."""

from __future__ import annotations

import dataclasses

import numpy as np

from rewire.calql.presets import PRESETS
from rewire.calql.trainer import FinetuneConfig, Finetuner
from rewire.data.episodes import EpisodeDataset
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
THROUGHPUT_CHUNKS = 10  # online chunks each loop is timed over


def run_calql_benchmark(
    preset: str = "quick",
    seeds: int | None = None,
    seed: int = 0,
    layout: str = "umaze",
    quiet: bool = False,
    devices: Devices = None,
    throughput: bool = True,
) -> tuple[dict, Finetuner]:
    """Train CQL and Cal-QL (x seeds, one vmapped stack) on a scripted dataset; medians over seeds. With
    `throughput`, also time the online phase's host and device loops on the same agents (`online_loops`)."""
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
        "online_steps_per_s": trainer.online_watch.rate,
        "curves": results["curves"],
    }
    if throughput:
        out["online_loops"] = online_loops(trainer.config, dataset, devices)
    return out, trainer


def online_loops(
    config: FinetuneConfig, dataset: EpisodeDataset, devices: Devices = None, chunks: int = THROUGHPUT_CHUNKS
) -> dict:
    """Online environment steps per second of the host loop (a round trip per chunk) and of the device loop
    (one jitted scan up to each evaluation), each over `chunks` chunks from the same fresh agents
    and data, compilation and evaluations excluded. `host_update_share`: the host loop's share of time in
    gradient updates, which removing round trips cannot save (fusing them into one call can speed them)."""
    trainers, steps = {}, chunks * config.chunk
    for loop in ("host", "device"):
        short = dataclasses.replace(
            config, offline_steps=0, online_steps=steps, eval_every=steps, online_loop=loop
        )
        trainers[loop] = Finetuner(short, dataset, devices=devices)
        Loop(trainers[loop], quiet=True).run()
    host, device = (trainers[loop].online_watch for loop in ("host", "device"))
    return {
        "host_steps_per_s": host.rate,
        "device_steps_per_s": device.rate,
        "device_over_host": device.rate / host.rate,
        "host_update_share": trainers["host"].update_watch.seconds / host.seconds,
        "chunks": chunks,
    }
