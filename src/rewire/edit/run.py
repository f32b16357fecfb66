"""The editing shell: model and policy files, training an editing policy, applying it to a model."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rewire.checkpoint import load_checkpoint, save_checkpoint
from rewire.edit.agents import PPO, PPOConfig
from rewire.edit.classifier import (
    CLASSES,
    Recipe,
    Split,
    digits_split,
    init_params,
    train,
    unlearning_metrics,
    with_head,
)
from rewire.edit.text import TextTask, init_text_params, read_text_file, train_text
from rewire.edit.world import (
    EditWorld,
    WorldConfig,
    WorldParams,
    make_bias_params,
    make_params,
    model_head,
    stack_problems,
)
from rewire.runs import file_record

MODEL_KINDS = {"unlearn": "rewire.edit/digits-mlp", "bias": "rewire.edit/text-bow"}
POLICY_KIND = "rewire.edit/policy"
TASKS = tuple(MODEL_KINDS)


def task_data(
    task: str, seed: int, forget_class: int | None = None, data_file: str | os.PathLike | None = None
) -> Split | TextTask:
    """The data of a task: the digits split (forgetting `forget_class`, None: a random 10%); for bias, the
    texts of `data_file` (`text.read_text_file`) or else the generated occupation texts."""
    if task != "bias":
        if data_file is not None:
            raise ValueError(
                "a data file is for the bias task; the unlearning task uses scikit-learn's digits"
            )
        return digits_split(seed, forget_class)
    return TextTask.build(seed) if data_file is None else TextTask.from_data(read_text_file(data_file, seed))


def initial_params(task: str, key: jax.Array, data: Split | TextTask) -> dict:
    return init_text_params(key, data.vocab_size) if task == "bias" else init_params(key)


def pretrain(task: str, data: Split | TextTask, seed: int) -> dict:
    """The model a run edits: the digits classifier (whole training split), or the text classifier trained
    on the biased training split; `rewire bench edit` and `rewire edit train` share it."""
    keys = jax.random.split(jax.random.key(seed), 6)
    params = initial_params(task, keys[0], data)
    if task == "bias":
        return train_text(params, data.x["train"], data.y["train"], keys[1])
    return train(params, data.x_train, data.y_train, Recipe(), keys[1])


def save_model(
    path: str | os.PathLike, task: str, params: dict, seed: int, source: dict | None = None
) -> Path:
    """The model with its data: the seed, and the user's data file (`runs.file_record`: path and sha256) if
    any."""
    return save_checkpoint(
        path, {"kind": MODEL_KINDS[task], "seed": seed, "data_file": source, "params": params}
    )


def load_model(
    path: str | os.PathLike,
    task: str,
    forget_class: int | None = None,
    data_file: str | os.PathLike | None = None,
) -> tuple[dict, int, Split | TextTask, dict | None]:
    """(params, data seed, the task's data, the data file's `file_record`). The data file is the one the
    model was trained on, or `data_file` if that file has moved; a file that is not a model of `task`, a
    data file other than the model's, or layer shapes that do not match the data raise."""
    saved = load_checkpoint(path)
    if not isinstance(saved, dict) or saved.get("kind") != MODEL_KINDS[task]:
        raise ValueError(f"{path}: not a model for the {task} task (expected kind {MODEL_KINDS[task]!r})")
    seed, recorded = int(saved["seed"]), saved.get("data_file")
    if recorded is None and data_file is not None:
        raise ValueError(f"{path}: the model was trained on the generated data, not on {data_file}")
    source = None
    if recorded is not None:
        data_file = recorded["path"] if data_file is None else data_file
        if not Path(data_file).is_file():
            raise FileNotFoundError(
                f"{path}: the model's data file {data_file} is not there; pass its new path (--data)"
            )
        source = file_record(data_file)
        if source["sha256"] != recorded["sha256"]:
            raise ValueError(f"{data_file} is not the data file {path} was trained on (its sha256 differs)")
    data = task_data(task, seed, forget_class, None if source is None else source["path"])
    expected = jax.tree.map(np.shape, initial_params(task, jax.random.key(0), data))
    if jax.tree.map(np.shape, saved["params"]) != expected:
        raise ValueError(f"{path}: the model's layer shapes do not match the {task} task's model")
    return jax.tree.map(jnp.asarray, saved["params"]), seed, data, source


def problem(
    task: str, model: dict, data: Split | TextTask, config: WorldConfig, seed: int
) -> tuple[WorldParams, Callable[[jax.Array], tuple[dict, dict]]]:
    """(world params, edited layer -> (edited model, its metrics)) for one editing problem."""
    if task == "bias":
        split = data.edit_split
        y, g = (np.asarray(data.y[split], np.float32), np.asarray(data.g[split], np.float32))
        params = make_bias_params(model, data.x[split], y, g)
        return params, lambda w: ({**model, "embed": w}, data.metrics(model, w))
    params = make_params(model, data, config, seed)

    def measure(w):
        edited = with_head(model, model_head(params, w))
        return edited, unlearning_metrics(edited, data)

    return params, measure


def check_finite(weights: jax.Array, what: str) -> None:
    if not bool(jnp.isfinite(weights).all()):
        raise ValueError(f"{what}: the edit made the weights non-finite")


def check_classes(task: str, classes: tuple[int, ...]) -> None:
    """The forget classes one policy may train across: distinct digits, unlearning only."""
    if classes and task != "unlearn":
        raise ValueError("training across classes is for the unlearn task")
    if len(set(classes)) != len(classes) or not all(0 <= c < CLASSES for c in classes):
        raise ValueError(f"classes {list(classes)}: give distinct classes in 0..{CLASSES - 1}")


def train_editor(
    task: str,
    model: dict,
    data: Split | TextTask,
    seed: int,
    world: str,
    forget_class: int | None,
    steps: int,
    key_seed: int,
    classes: tuple[int, ...] = (),
    observe_weights: bool = True,
) -> tuple[dict, dict, dict]:
    """Train PPO on one editing problem, or (`classes`, unlearning) one policy across the problems of several
    forget classes of the same model; returns (policy record, edited params, metrics), the edit and metrics
    being those of `forget_class`."""
    check_classes(task, classes)
    config = dataclasses.replace(
        WorldConfig.for_problem(world, task, forget_class), observe_weights=observe_weights
    )
    params, measure = problem(task, model, data, config, seed)
    ppo = PPO(EditWorld(config, params.w0.shape), PPOConfig(total_steps=steps))
    train_on = params
    if classes:
        problems = [problem(task, model, task_data(task, seed, c), config, seed)[0] for c in classes]
        train_on = stack_problems(problems, ppo.config.envs)
    start = time.perf_counter()
    agent, history = jax.jit(partial(ppo.train, per_env=bool(classes)))(jax.random.key(key_seed), train_on)
    weights = ppo.edit(agent, params)[1]
    check_finite(weights, f"{world}world")
    wall = time.perf_counter() - start
    edited, metrics = measure(weights)
    policy = {
        "kind": POLICY_KIND,
        "task": task,
        "world": dataclasses.asdict(config),
        "ppo": dataclasses.asdict(ppo.config),
        "trained_on_class": forget_class if task == "unlearn" else None,
        "trained_on_classes": list(classes),
        "agent": agent,
    }
    metrics = metrics | {
        "wall_s": wall,
        "return_per_update": np.asarray(history["mean_episode_return"]).tolist(),
    }
    return policy, edited, metrics


def load_policy(path: str | os.PathLike) -> dict:
    saved = load_checkpoint(path)
    if not isinstance(saved, dict) or saved.get("kind") != POLICY_KIND:
        raise ValueError(f"{path}: not a rewire editing policy")
    return saved


def apply_editor(policy: dict, model: dict, data: Split | TextTask, seed: int) -> tuple[dict, dict]:
    """Roll the policy's mean action out on `model` over `data`: (edited params, metrics)."""
    config = WorldConfig(**policy["world"])
    params, measure = problem(config.task, model, data, config, seed)
    world = EditWorld(config, params.w0.shape)
    if world.obs_dim != policy["agent"]["MLP_0"]["Dense_0"]["kernel"].shape[0]:
        raise ValueError("the model's edited layer does not have the shape this policy was trained on")
    ppo = PPO(world, PPOConfig(**{**policy["ppo"], "hidden": tuple(policy["ppo"]["hidden"])}))
    agent = jax.tree.map(jnp.asarray, policy["agent"])
    weights = jax.jit(ppo.edit)(agent, params)[1]
    check_finite(weights, f"{config.world}world")
    return measure(weights)
