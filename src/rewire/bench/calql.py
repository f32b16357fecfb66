"""`rewire bench calql`: CQL against Cal-QL from one dataset, the dip and regret of online fine-tuning."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from rewire.calql import cql
from rewire.calql.trainer import FinetuneConfig, Finetuner
from rewire.data.generate import scripted_dataset
from rewire.envs import make_spec, maze_id
from rewire.loop import Loop
from rewire.report import plot_curves
from rewire.runs import versions

METRICS = (
    "success_at_switch",
    "dip_depth",
    "cumulative_regret",
    "final_success",
    "q_minus_mc_at_switch",
    "bound_rate_at_switch",
)

# The small-CPU protocol of the method note (4.4, 4.5), sized for 2 cores. The agent settings come from a
# sweep on the U-maze (README, "Where rewire departs from the papers"): without importance sampling and with
# a fixed alpha of 25, CQL's critic sits under the Monte-Carlo floor on about a third of policy samples at
# the switch (the note's tuning gate), and faster targets and learning rates fit the small update budget;
# two updates per online step let the actor move within the first 20% of fine-tuning, where a dip is measured.
TUNED = cql.CQLConfig(
    cql_weight=25.0, importance_sampling=False, tau=0.01, critic_lr=1e-3, actor_lr=1e-3, cql_n_actions=4
)
QUICK = FinetuneConfig(
    offline_steps=10_000, online_steps=5_000, utd=2, eval_every=250, offline_eval_every=2_500, agent=TUNED
)
PRESETS: dict[str, FinetuneConfig] = {
    "quick": QUICK,
    "full": dataclasses.replace(
        QUICK,
        offline_steps=20_000,
        online_steps=10_000,
        agent=dataclasses.replace(TUNED, cql_n_actions=10, batch_size=256),
    ),
    "demo": dataclasses.replace(
        QUICK, offline_steps=8_000, online_steps=3_000, offline_eval_every=2_000, seeds=2
    ),
}
DATASET_EPISODES = 200


def run_calql_benchmark(
    preset: str = "quick", seeds: int | None = None, seed: int = 0, layout: str = "umaze", quiet: bool = False
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
    trainer = Finetuner(config, dataset)
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


def plot_calql(
    curves: dict, methods: list[str], out_dir: str | Path, stem: str = "calql", metric: str = "success"
) -> list[Path]:
    """Curves per method (median, range and each seed), offline and online, from `curves` as
    `Finetuner.results()` gives them: the success rate, or (`metric` "return", for dense-reward tasks)
    the return."""
    out_dir = Path(out_dir)
    labels = curves["labels"]
    paths = []
    for phase, xlabel in (
        ("online", "online environment steps (switch at 0)"),
        ("offline", "offline updates"),
    ):
        curve = curves[phase]
        if not curve["steps"]:
            continue
        by_method = {
            m: np.array([s for s, lab in zip(curve[metric], labels, strict=True) if lab.split("/")[0] == m])
            for m in methods
        }
        paths.append(
            plot_curves(
                out_dir / f"{stem}_{phase}.png",
                np.array(curve["steps"]),
                by_method,
                xlabel,
                "success rate" if metric == "success" else "return",
                f"{phase} evaluation",
                vline=0 if phase == "online" else None,
            )
        )
    return paths
