"""`rewire bench calql`: CQL against Cal-QL from one dataset, the dip and regret of online fine-tuning."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from rewire.calql.presets import PRESETS
from rewire.calql.trainer import FinetuneConfig, Finetuner
from rewire.data.episodes import EpisodeDataset
from rewire.data.generate import scripted_dataset
from rewire.data.mazes import point_maze_dataset
from rewire.envs import EnvSpec, make_spec, maze_id
from rewire.loop import Loop
from rewire.mesh import Devices
from rewire.runs import versions
from rewire.stats import bootstrap_mean, paired_wilcoxon

METRICS = (
    "success_at_switch",
    "dip_depth",
    "cumulative_regret",
    "final_success",
    "q_minus_mc_at_switch",
    "q_pi_minus_mc_at_switch",
    "bound_rate_at_switch",
)
PAIRED = ("cumulative_regret", "dip_depth")  # Wilcoxon signed-rank, Cal-QL against CQL seed by seed

DATASET_EPISODES = 200
THROUGHPUT_CHUNKS = 10  # online chunks each loop is timed over
# The MuJoCo PointMaze dataset (`rewire.data.mazes`): noisy waypoint-PD stretches, cut at 200 steps, so that
# about a fifth of them fail and the offline policy is imperfect at the switch (README, "Cal-QL").
MUJOCO_DATA = {"noise": 0.5, "detour_fraction": 0.3, "limit": 200}


def benchmark_data(spec: EnvSpec, seed: int) -> EpisodeDataset:
    """The benchmark's dataset for `spec`: the scripted controller of a JAX maze, or the waypoint-PD
    controller of a MuJoCo PointMaze."""
    if spec.is_jax:
        return scripted_dataset(spec, DATASET_EPISODES, seed)
    return point_maze_dataset(spec, DATASET_EPISODES, seed, **MUJOCO_DATA)


def summarise(config: FinetuneConfig, results: dict, seed: int) -> dict:
    """Per method: median, mean and 95% bootstrap interval of every metric over seeds, the per-seed values;
    and the paired tests of Cal-QL against CQL (`PAIRED`), when both ran."""
    methods = {}
    for method in config.methods:
        rows = [a for a in results["agents"] if a["method"] == method]
        per_seed = {k: [r[k] for r in rows] for k in METRICS if all(k in r for r in rows)}
        methods[method] = {k: float(np.median(v)) for k, v in per_seed.items()} | {
            "intervals": {k: bootstrap_mean(v, seed) for k, v in per_seed.items()},
            "per_seed": per_seed,
        }
    paired = {}
    if {"cql", "calql"} <= set(methods):
        for key in PAIRED:
            paired[key] = paired_wilcoxon(
                methods["calql"]["per_seed"][key], methods["cql"]["per_seed"][key]
            ) | {"difference": "calql - cql"}
    return {"methods": methods, "paired": paired}


def run_calql_benchmark(
    preset: str = "quick",
    seeds: int | None = None,
    seed: int = 0,
    layout: str = "umaze",
    quiet: bool = False,
    devices: Devices = None,
    throughput: bool = True,
    env: str | None = None,
    overrides: dict | None = None,
) -> tuple[dict, Finetuner]:
    """Train CQL and Cal-QL (x seeds, one vmapped stack) on a scripted dataset, in the JAX maze `layout` or
    the MuJoCo maze `env` (`PointMaze_Medium-v3`, ...); per method medians, means with bootstrap intervals
    and per-seed values, and paired tests. With `throughput` (JAX mazes), also time the online phase's
    host and device loops on the same agents (`online_loops`)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    spec = make_spec(env or maze_id(layout))
    if not (spec.is_jax or spec.env_id.startswith("PointMaze_")):
        raise ValueError(f"bench calql runs the point mazes (JAX or gymnasium-robotics), not {spec.env_id}")
    config = dataclasses.replace(
        PRESETS[preset],
        env_id=spec.env_id,
        seed=seed,
        seeds=seeds if seeds is not None else PRESETS[preset].seeds,
        **(overrides or {}),
    )
    clock = time.perf_counter()
    dataset = benchmark_data(spec, seed)
    trainer = Finetuner(config, dataset, devices=devices)
    Loop(trainer, quiet=quiet, description=f"calql bench ({spec.env_id})").run()
    results = trainer.results()
    summary = summarise(trainer.config, results, seed)
    for m in summary["methods"].values():
        # all agents train in one vmapped call, so this rate is every agent's (compilation excluded)
        m["updates_per_s"] = trainer.updates_per_s
    out = {
        "config": dataclasses.asdict(trainer.config)
        | {"preset": preset, "dataset_episodes": DATASET_EPISODES},
        "seed": seed,
        "versions": versions(),
        "dataset": dataset.summary(),
        **summary,
        "seconds": time.perf_counter() - clock,
        "online_steps_per_s": trainer.online_watch.rate,
        "curves": results["curves"],
    }
    if throughput and spec.is_jax:  # a Gymnasium env has the host loop only
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
