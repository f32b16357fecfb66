"""The editing shell: model and policy files, training an editing policy, applying it to a model."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rewire.checkpoint import load_checkpoint, save_checkpoint
from rewire.edit.agents import PPO, PPOConfig
from rewire.edit.classifier import (
    Recipe,
    Split,
    digits_split,
    init_params,
    train,
    unlearning_metrics,
    with_head,
)
from rewire.edit.text import TextTask, init_text_params, train_text
from rewire.edit.world import EditWorld, WorldConfig, WorldParams, make_bias_params, make_params, model_head

MODEL_KINDS = {"unlearn": "rewire.edit/digits-mlp", "bias": "rewire.edit/text-bow"}
POLICY_KIND = "rewire.edit/policy"
TASKS = tuple(MODEL_KINDS)


def task_data(task: str, seed: int, forget_class: int | None = None) -> Split | TextTask:
    """The data of a task: the digits split (forgetting `forget_class`, None: a random 10%), or the
    generated occupation texts."""
    return TextTask.build(seed) if task == "bias" else digits_split(seed, forget_class)


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


def save_model(path: str | os.PathLike, task: str, params: dict, seed: int) -> Path:
    return save_checkpoint(path, {"kind": MODEL_KINDS[task], "seed": seed, "params": params})


def load_model(path: str | os.PathLike, task: str) -> tuple[dict, int]:
    """(params, data seed); a file that is not a model of `task` with the right shapes raises."""
    saved = load_checkpoint(path)
    if not isinstance(saved, dict) or saved.get("kind") != MODEL_KINDS[task]:
        raise ValueError(f"{path}: not a model for the {task} task (expected kind {MODEL_KINDS[task]!r})")
    seed = int(saved["seed"])
    expected = jax.tree.map(np.shape, initial_params(task, jax.random.key(0), task_data(task, seed)))
    if jax.tree.map(np.shape, saved["params"]) != expected:
        raise ValueError(f"{path}: the model's layer shapes do not match the {task} task's model")
    return jax.tree.map(jnp.asarray, saved["params"]), seed


def problem(
    task: str, model: dict, data: Split | TextTask, config: WorldConfig, seed: int
) -> tuple[WorldParams, Callable[[jax.Array], tuple[dict, dict]]]:
    """(world params, edited layer -> (edited model, its metrics)) for one editing problem."""
    if task == "bias":
        y, g = (np.asarray(data.y["fair_val"], np.float32), np.asarray(data.g["fair_val"], np.float32))
        params = make_bias_params(model, data.x["fair_val"], y, g)
        return params, lambda w: ({**model, "embed": w}, data.metrics(model, w))
    params = make_params(model, data, config, seed)

    def measure(w):
        edited = with_head(model, model_head(params, w))
        return edited, unlearning_metrics(edited, data)

    return params, measure


def check_finite(weights: jax.Array, what: str) -> None:
    if not bool(jnp.isfinite(weights).all()):
        raise ValueError(f"{what}: the edit made the weights non-finite")


def train_editor(
    task: str,
    model: dict,
    data: Split | TextTask,
    seed: int,
    world: str,
    forget_class: int | None,
    steps: int,
    key_seed: int,
) -> tuple[dict, dict, dict]:
    """Train PPO on one editing problem; returns (policy record, edited params, metrics)."""
    config = WorldConfig.for_problem(world, task, forget_class)
    params, measure = problem(task, model, data, config, seed)
    ppo = PPO(EditWorld(config, params.w0.shape), PPOConfig(total_steps=steps))
    start = time.perf_counter()
    agent, history = jax.jit(ppo.train)(jax.random.key(key_seed), params)
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
