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
from rewire.edit.world import EditWorld, WorldConfig, make_params, model_head

MODEL_KIND = "rewire.edit/digits-mlp"
POLICY_KIND = "rewire.edit/policy"
TASKS = ("unlearn",)


def pretrain(seed: int) -> dict:
    """The digits classifier every unlearning run edits (trained on the whole training split)."""
    keys = jax.random.split(jax.random.key(seed), 6)
    split = digits_split(seed, None)
    return train(init_params(keys[0]), split.x_train, split.y_train, Recipe(), keys[1])


def save_model(path: str | os.PathLike, params: dict, seed: int) -> Path:
    return save_checkpoint(path, {"kind": MODEL_KIND, "seed": seed, "params": params})


def load_model(path: str | os.PathLike) -> tuple[dict, int]:
    """(params, data seed); a file that is not a digits classifier of the right shape raises."""
    saved = load_checkpoint(path)
    if not isinstance(saved, dict) or saved.get("kind") != MODEL_KIND:
        raise ValueError(f"{path}: not a rewire digits classifier (expected kind {MODEL_KIND!r})")
    expected = jax.tree.map(np.shape, init_params(jax.random.key(0)))
    if jax.tree.map(np.shape, saved["params"]) != expected:
        raise ValueError(f"{path}: the classifier's layer shapes do not match the digits task's MLP")
    return jax.tree.map(jnp.asarray, saved["params"]), int(saved["seed"])


def check_finite(weights: jax.Array, what: str) -> None:
    if not bool(jnp.isfinite(weights).all()):
        raise ValueError(f"{what}: the edit made the weights non-finite")


def train_editor(
    model: dict, seed: int, world: str, forget_class: int, steps: int, key_seed: int
) -> tuple[dict, dict, dict]:
    """Train PPO to unlearn `forget_class`; returns (policy record, edited params, metrics)."""
    config = WorldConfig(world=world)
    split = digits_split(seed, forget_class)
    params = make_params(model, split, config, seed)
    ppo = PPO(EditWorld(config), PPOConfig(total_steps=steps))
    start = time.perf_counter()
    agent, history = jax.jit(ppo.train)(jax.random.key(key_seed), params)
    weights = ppo.edit(agent, params)[1]
    check_finite(weights, f"{world}world, class {forget_class}")
    wall = time.perf_counter() - start
    edited = with_head(model, model_head(params, weights))
    policy = {
        "kind": POLICY_KIND,
        "task": "unlearn",
        "world": dataclasses.asdict(config),
        "ppo": dataclasses.asdict(ppo.config),
        "trained_on_class": forget_class,
        "agent": agent,
    }
    metrics = unlearning_metrics(edited, split) | {
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
    """Roll the policy's mean action out on `model` for `forget_class`: (edited params, metrics)."""
    config = WorldConfig(**policy["world"])
    world = EditWorld(config)
    ppo = PPO(world, PPOConfig(**{**policy["ppo"], "hidden": tuple(policy["ppo"]["hidden"])}))
    split = digits_split(seed, forget_class)
    params = make_params(model, split, config, seed)
    agent = jax.tree.map(jnp.asarray, policy["agent"])
    weights = jax.jit(ppo.edit)(agent, params)[1]
    check_finite(weights, f"{config.world}world, class {forget_class}")
    edited = with_head(model, model_head(params, weights))
    return edited, unlearning_metrics(edited, split)
