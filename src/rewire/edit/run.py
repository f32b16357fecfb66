"""The editing shell: model and policy files, training an editing policy, applying it to a model."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rewire.checkpoint import load_checkpoint, save_checkpoint
from rewire.edit.agents import PPO, PPOConfig
from rewire.edit.classifier import Recipe, digits_split, init_params, train, unlearning_metrics, with_head
from rewire.edit.text import TextTask, init_text_params, train_text
from rewire.edit.world import EditWorld, WorldConfig, make_bias_params, make_params, model_head

MODEL_KINDS = {"unlearn": "rewire.edit/digits-mlp", "bias": "rewire.edit/text-bow"}
POLICY_KIND = "rewire.edit/policy"
TASKS = tuple(MODEL_KINDS)


def _fresh(task: str, seed: int) -> dict:
    keys = jax.random.split(jax.random.key(seed), 6)
    if task == "bias":
        return init_text_params(keys[0], TextTask.build(seed).vocab_size)
    return init_params(keys[0])


def pretrain(task: str, seed: int) -> dict:
    """The model a run edits: the digits classifier (whole training split), or the text classifier trained
    on the biased training split; the same keys as `rewire bench edit`."""
    keys = jax.random.split(jax.random.key(seed), 6)
    if task == "bias":
        data = TextTask.build(seed)
        return train_text(_fresh(task, seed), data.x["train"], data.y["train"], keys[1])
    split = digits_split(seed, None)
    return train(_fresh(task, seed), split.x_train, split.y_train, Recipe(), keys[1])


def save_model(path: str | os.PathLike, task: str, params: dict, seed: int) -> Path:
    return save_checkpoint(path, {"kind": MODEL_KINDS[task], "seed": seed, "params": params})


def load_model(path: str | os.PathLike, task: str) -> tuple[dict, int]:
    """(params, data seed); a file that is not a model of `task` with the right shapes raises."""
    saved = load_checkpoint(path)
    if not isinstance(saved, dict) or saved.get("kind") != MODEL_KINDS[task]:
        raise ValueError(f"{path}: not a model for the {task} task (expected kind {MODEL_KINDS[task]!r})")
    expected = jax.tree.map(np.shape, _fresh(task, int(saved["seed"])))
    if jax.tree.map(np.shape, saved["params"]) != expected:
        raise ValueError(f"{path}: the model's layer shapes do not match the {task} task's model")
    return jax.tree.map(jnp.asarray, saved["params"]), int(saved["seed"])


def problem(task: str, model: dict, seed: int, forget_class: int, config: WorldConfig):
    """(world params, metrics of an edited layer) for one editing problem."""
    if task == "bias":
        data = TextTask.build(seed)
        y, g = (np.asarray(data.y["fair_val"], np.float32), np.asarray(data.g["fair_val"], np.float32))
        params = make_bias_params(model, data.x["fair_val"], y, g)
        return params, lambda w: ({**model, "embed": w}, data.metrics(model, w))
    split = digits_split(seed, forget_class)
    params = make_params(model, split, config, seed)

    def measure(w):
        edited = with_head(model, model_head(params, w))
        return edited, unlearning_metrics(edited, split)

    return params, measure


def check_finite(weights: jax.Array, what: str) -> None:
    if not bool(jnp.isfinite(weights).all()):
        raise ValueError(f"{what}: the edit made the weights non-finite")


def train_editor(
    task: str, model: dict, seed: int, world: str, forget_class: int, steps: int, key_seed: int
) -> tuple[dict, dict, dict]:
    """Train PPO on one editing problem; returns (policy record, edited params, metrics)."""
    config = WorldConfig(world=world, task=task, forget="random" if forget_class is None else "class")
    params, measure = problem(task, model, seed, forget_class, config)
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


def apply_editor(policy: dict, model: dict, seed: int, forget_class: int) -> tuple[dict, dict]:
    """Roll the policy's mean action out on `model` (for `forget_class`): (edited params, metrics)."""
    config = WorldConfig(**policy["world"])
    params, measure = problem(config.task, model, seed, forget_class, config)
    world = EditWorld(config, params.w0.shape)
    if world.obs_dim != policy["agent"]["MLP_0"]["Dense_0"]["kernel"].shape[0]:
        raise ValueError("the model's edited layer does not have the shape this policy was trained on")
    ppo = PPO(world, PPOConfig(**{**policy["ppo"], "hidden": tuple(policy["ppo"]["hidden"])}))
    agent = jax.tree.map(jnp.asarray, policy["agent"])
    weights = jax.jit(ppo.edit)(agent, params)[1]
    check_finite(weights, f"{config.world}world")
    return measure(weights)
