"""`rewire bench edit`: MaskWorld and ShiftWorld editors (PPO) against the baselines, with CEM over the
same actions as the derivative-free control.

Unlearning (digits): retrain, fine-tune, gradient ascent, random labels, a loss MIA, the learned policy
applied to every other class, and policies trained across five classes (observing the weights, or only the
reward terms) applied to the five held out. Bias (generated occupation texts, or the user's file):
reweighting and fine-tuning on a balanced subset; accuracy and gaps on the report split (`fair_test`, or
`test` for a file without fair splits)."""

from __future__ import annotations

import dataclasses
import os
from functools import partial

import jax

from rewire.edit.agents import PPO, CEMConfig, PPOConfig, cem
from rewire.edit.baselines import BASELINES, timed
from rewire.edit.classifier import CLASSES, digits_split, unlearning_metrics
from rewire.edit.run import pretrain, problem, task_data, train_ppo
from rewire.edit.text import balanced_finetune, reweighting
from rewire.edit.world import EditWorld, WorldConfig, stack_problems
from rewire.loop import Stopwatch
from rewire.mesh import Devices
from rewire.progress import progress_bar
from rewire.runs import file_record, versions

TASKS = ("unlearn", "bias")
WORLD_NAMES = {"mask": "maskworld", "shift": "shiftworld"}


def _agents(config: WorldConfig, params, keys, steps: int, devices: Devices) -> dict[str, tuple]:
    """PPO (deterministic roll-out of the learned policy) and CEM in one world: label -> (weights, timing,
    agent or None). Wall times exclude compilation (reported apart)."""
    world = EditWorld(config, params.w0.shape)
    ppo = PPO(world, PPOConfig(total_steps=steps))
    agent, returns, watch = train_ppo(ppo, params, keys[2], devices=devices)
    out = {
        "ppo": (
            ppo.edit(agent, params)[1],
            {
                "wall_s": watch.seconds,
                "compile_s": watch.compile_seconds,
                "env_steps": ppo.config.updates * ppo.config.envs * ppo.config.rollout,
                "return_per_update": returns,
            },
            (ppo, agent),
        )
    }
    search, watch = jax.jit(partial(cem, world, config=CEMConfig(total_steps=steps))), Stopwatch()
    with watch.time():
        best, _ = jax.block_until_ready(search(params, keys[3]))
    out["cem"] = (
        world.rollout(params, best)[1],
        {"wall_s": watch.seconds, "compile_s": watch.compile_seconds},
        None,
    )
    return out


def run_edit_benchmark(
    task: str = "unlearn",
    forget_class: int | None = 7,
    seed: int = 0,
    steps: int = 50_000,
    quiet: bool = False,
    data_file: str | os.PathLike | None = None,
    devices: Devices = None,
) -> dict:
    """`task` unlearn: digits, forget `forget_class` (None: a random 10% of the training split); bias: the
    texts of `data_file`, or else the generated occupation texts."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {list(TASKS)}")
    keys = jax.random.split(jax.random.key(seed), 6)
    data = task_data(task, seed, forget_class, data_file)
    result = (_bias if task == "bias" else _unlearn)(data, keys, forget_class, seed, steps, quiet, devices)
    criteria = result.pop("criteria")
    return {
        "config": {"task": task, "forget_class": forget_class if task == "unlearn" else None, "seed": seed}
        | {"data_file": None if data_file is None else file_record(data_file)}
        | {
            "env_steps": steps,
            "world": dataclasses.asdict(WorldConfig.for_problem("mask", task, forget_class)),
        }
        | {"ppo": dataclasses.asdict(PPOConfig(total_steps=steps))},
        "versions": versions(),
        **result,
        "criteria": criteria,
    }


MULTICLASS_TRAIN = 5  # forget classes one policy trains on; the other 5 are held out


def _class_metrics(ppo: PPO, agent, params, measure) -> dict:
    """The deterministic policy's edit of one forget-class problem: forget, retain and test accuracy."""
    m = measure(ppo.edit(agent, params)[1])[1]
    return {k: m[k] for k in ("forget_acc", "retain_acc", "test_acc")}


def _solved(per_class) -> str:
    """'k/n': classes with forget accuracy at most 0.02 and retain accuracy at least 0.9."""
    rows = list(per_class)
    ok = [m for m in rows if m["forget_acc"] <= 0.02 and m["retain_acc"] >= 0.9]
    return f"{len(ok)}/{len(rows)}"


def _multiclass(ppo: PPO, problems: list, forget_class: int, key, devices: Devices) -> dict:
    """One PPO policy trained across `MULTICLASS_TRAIN` forget classes of the same model (`forget_class` and
    the next ones; environment i edits class i mod 5), then applied to every class: does a policy trained on
    several instances transfer where a one-class policy does not?"""
    trained = [(forget_class + i) % CLASSES for i in range(MULTICLASS_TRAIN)]
    stacked = stack_problems([problems[c][0] for c in trained], ppo.config.envs)
    agent, returns, watch = train_ppo(ppo, stacked, key, per_env=True, devices=devices)
    return {
        "trained_on": trained,
        "per_class": {
            str(c): _class_metrics(ppo, agent, *problems[c]) | {"trained_on": c in trained}
            for c in range(CLASSES)
        },
        "wall_s": watch.seconds,
        "compile_s": watch.compile_seconds,
        "return_per_update": returns,
    }


def _unlearn(
    split, keys, forget_class: int | None, seed: int, steps: int, quiet: bool, devices: Devices
) -> dict:
    original, pretrain_s = timed(pretrain, "unlearn", split, seed)
    base = unlearning_metrics(original, split)
    methods: dict[str, dict] = {}
    extra: dict[str, dict] = {}
    transfer: dict[str, dict] = {}
    multiclass: dict[str, dict] = {}
    # one split per forget class, for the transfer runs of both worlds
    class_splits = [digits_split(seed, c) for c in range(CLASSES)] if forget_class is not None else []
    with progress_bar("methods", 2 * 2 + len(BASELINES), quiet) as bar:
        for world_name, label in WORLD_NAMES.items():
            config = WorldConfig.for_problem(world_name, "unlearn", forget_class)
            params, measure = problem("unlearn", original, split, config, seed)
            runs = _agents(config, params, keys, steps, devices)
            for kind, (weights, timing, _) in runs.items():
                metrics = measure(weights)[1] | timing
                (methods if kind == "ppo" else extra)[label if kind == "ppo" else f"{label}_cem"] = metrics
            bar.advance(1, note=label)
            ppo, agent = runs["ppo"][2]
            if forget_class is None:
                bar.advance(1)
                continue  # transfer is between forget classes
            problems = [problem("unlearn", original, split_c, config, seed) for split_c in class_splits]
            shape = problems[0][0].w0.shape
            transfer[label] = {
                str(c): _class_metrics(ppo, agent, *problems[c]) for c in range(CLASSES) if c != forget_class
            }
            multiclass[label] = {
                f"observe_{seen}": _multiclass(
                    PPO(
                        EditWorld(dataclasses.replace(config, observe_weights=seen == "weights"), shape),
                        ppo.config,
                    ),
                    problems,
                    forget_class,
                    keys[5],
                    devices,
                )
                for seen in ("weights", "metrics")
            }
            bar.advance(1, note=f"{label} transfer")
        for name, fn in BASELINES.items():
            (params, chosen), wall = timed(fn, original, split, keys[4])
            methods[name] = unlearning_metrics(params, split) | {"wall_s": wall, "selected": chosen}
            bar.advance(1, note=name)
    retrain = methods["retrain"]
    criteria = {
        label: {
            "retain_at_least_0.9": methods[label]["retain_acc"] >= 0.9,
            "retain_at_least_95pct_of_original": methods[label]["retain_acc"] >= 0.95 * base["retain_acc"],
        }
        | (
            {"forget_at_most_0.02": methods[label]["forget_acc"] <= 0.02}
            if forget_class is not None
            else {  # a random subset should look like retraining's: unseen, not wrong
                "forget_acc_minus_retrain": methods[label]["forget_acc"] - retrain["forget_acc"],
                "mia_auc_minus_retrain": methods[label]["mia_auc"] - retrain["mia_auc"],
            }
        )
        for label in WORLD_NAMES.values()
    }
    for label, per_class in transfer.items():
        criteria[label]["transfer_classes_solved"] = _solved(per_class.values())
        criteria[label]["multiclass_held_out_solved"] = {
            seen: _solved(m for m in run["per_class"].values() if not m["trained_on"])
            for seen, run in multiclass[label].items()
        }
    return {
        "original": {k: base[k] for k in ("retain_acc", "forget_acc", "test_acc", "mia_auc")}
        | {"wall_s": pretrain_s},
        "methods": methods,
        "cem": extra,
        "transfer": transfer,
        "multiclass_transfer": multiclass,
        "criteria": criteria,
    }


def _bias(task, keys, forget_class: int, seed: int, steps: int, quiet: bool, devices: Devices) -> dict:
    del forget_class
    original, pretrain_s = timed(pretrain, "bias", task, seed)
    base = task.metrics(original)
    methods: dict[str, dict] = {}
    extra: dict[str, dict] = {}
    with progress_bar("methods", len(WORLD_NAMES) + 2, quiet) as bar:
        for world_name, label in WORLD_NAMES.items():
            config = WorldConfig.for_problem(world_name, "bias", None)
            params, measure = problem("bias", original, task, config, seed)
            for kind, (weights, timing, _) in _agents(config, params, keys, steps, devices).items():
                metrics = measure(weights)[1] | timing
                (methods if kind == "ppo" else extra)[label if kind == "ppo" else f"{label}_cem"] = metrics
            bar.advance(1, note=label)
        fitted, wall = timed(reweighting, task, keys[4])
        methods["reweighting"] = task.metrics(fitted) | {"wall_s": wall}
        bar.advance(1, note="reweighting")
        (fitted, chosen), wall = timed(balanced_finetune, original, task, keys[4], seed)
        methods["finetune_balanced"] = task.metrics(fitted) | {"wall_s": wall, "selected": chosen}
        bar.advance(1, note="fine-tune")
    criteria = {
        label: {
            "tpr_gap_cut_by_0.05": base["tpr_gap"] - methods[label]["tpr_gap"] >= 0.05,
            "accuracy_within_0.02": abs(methods[label]["accuracy"] - base["accuracy"]) <= 0.02,
        }
        for label in WORLD_NAMES.values()
    }
    return {"original": base | {"wall_s": pretrain_s}, "methods": methods, "cem": extra, "criteria": criteria}
