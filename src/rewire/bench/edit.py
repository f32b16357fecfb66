"""`rewire bench edit`: MaskWorld and ShiftWorld editors (PPO) against the unlearning baselines, with CEM
over the same actions as the derivative-free control, and the class-7 policy applied to every other class."""

from __future__ import annotations

import dataclasses
import time
from functools import partial

import jax
import numpy as np

from rewire.edit.agents import PPO, CEMConfig, PPOConfig, cem
from rewire.edit.baselines import BASELINES, timed
from rewire.edit.classifier import (
    CLASSES,
    Recipe,
    digits_split,
    init_params,
    train,
    unlearning_metrics,
    with_head,
)
from rewire.edit.world import EditWorld, WorldConfig, make_params, model_head
from rewire.progress import progress_bar
from rewire.runs import versions

TASKS = ("unlearn",)
WORLD_NAMES = {"mask": "maskworld", "shift": "shiftworld"}


def _compiled(fn, *args):
    """(compiled fn, compile seconds): wall times below exclude compilation."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def run_edit_benchmark(
    task: str = "unlearn", forget_class: int = 7, seed: int = 0, steps: int = 50_000, quiet: bool = False
) -> dict:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {list(TASKS)}")
    keys = jax.random.split(jax.random.key(seed), 6)
    split = digits_split(seed, forget_class)
    original, pretrain_s = timed(
        lambda: train(init_params(keys[0]), split.x_train, split.y_train, Recipe(), keys[1])
    )
    base = unlearning_metrics(original, split)
    methods: dict[str, dict] = {}
    extra: dict[str, dict] = {}
    transfer: dict[str, dict] = {}
    with progress_bar("methods", 2 * 2 + len(BASELINES) + 2, quiet) as bar:
        for world_name, label in WORLD_NAMES.items():
            config = WorldConfig(world=world_name)
            world, params = EditWorld(config), make_params(original, split, config, seed)
            ppo = PPO(world, PPOConfig(total_steps=steps))
            run, compile_s = _compiled(ppo.train, keys[2], params)
            (agent, history), wall = timed(run, keys[2], params)
            weights = ppo.edit(agent, params)[1]
            methods[label] = unlearning_metrics(with_head(original, model_head(params, weights)), split) | {
                "wall_s": wall,
                "compile_s": compile_s,
                "env_steps": ppo.config.updates * ppo.config.envs * ppo.config.rollout,
                "return_per_update": np.asarray(history["mean_episode_return"]).tolist(),
            }
            bar.advance(1, note=label)
            search, compile_s = _compiled(
                partial(cem, world, config=CEMConfig(total_steps=steps)), params, keys[3]
            )
            (best, _), wall = timed(search, params, keys[3])
            weights = world.rollout(params, best)[1]
            extra[f"{label}_cem"] = unlearning_metrics(
                with_head(original, model_head(params, weights)), split
            ) | {
                "wall_s": wall,
                "compile_s": compile_s,
            }
            bar.advance(1, note=f"{label} CEM")
            transfer[label] = {}
            for target in range(CLASSES):
                if target == forget_class:
                    continue
                other = digits_split(seed, target)
                target_params = make_params(original, other, config, seed)
                weights = ppo.edit(agent, target_params)[1]
                m = unlearning_metrics(with_head(original, model_head(target_params, weights)), other)
                transfer[label][str(target)] = {k: m[k] for k in ("forget_acc", "retain_acc", "test_acc")}
            bar.advance(1, note=f"{label} transfer")
        for name, fn in BASELINES.items():
            (params, chosen), wall = timed(fn, original, split, keys[4])
            methods[name] = unlearning_metrics(params, split) | {"wall_s": wall, "selected": chosen}
            bar.advance(1, note=name)
    criteria = {
        label: {
            "forget_at_most_0.02": methods[label]["forget_acc"] <= 0.02,
            "retain_at_least_0.9": methods[label]["retain_acc"] >= 0.9,
            "retain_at_least_95pct_of_original": methods[label]["retain_acc"] >= 0.95 * base["retain_acc"],
        }
        for label in WORLD_NAMES.values()
    }
    for label, per_class in transfer.items():
        ok = [c for c, m in per_class.items() if m["forget_acc"] <= 0.02 and m["retain_acc"] >= 0.9]
        criteria[label]["transfer_classes_solved"] = f"{len(ok)}/{len(per_class)}"
    return {
        "config": {"task": task, "forget_class": forget_class, "seed": seed, "env_steps": steps}
        | {
            "world": dataclasses.asdict(WorldConfig()),
            "ppo": dataclasses.asdict(PPOConfig(total_steps=steps)),
        },
        "versions": versions(),
        "original": {k: base[k] for k in ("retain_acc", "forget_acc", "test_acc", "mia_auc")}
        | {"wall_s": pretrain_s},
        "methods": methods,
        "cem": extra,
        "transfer": transfer,
        "criteria": criteria,
    }
