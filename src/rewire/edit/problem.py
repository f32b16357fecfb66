"""A classifier of your own to edit, and `fit`: train a MaskWorld or ShiftWorld editor on it with PPO through
the shared run loop.

The world is the same as for the built-in models (`rewire.edit.world`); only the readout changes: the
logits are `model.apply(params with the edited layer, x)`, so any layer whose parameters are a 2-D array
(a Dense kernel, an embedding) can be edited, in its own column order (no canonical frame).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rewire import store
from rewire.edit.agents import PPO, PPOConfig
from rewire.edit.run import EditorTraining, check_finite, load_policy, save_policy
from rewire.edit.text import group_metrics
from rewire.edit.world import BiasData, EditWorld, UnlearnData, WorldConfig, WorldParams, positive
from rewire.loop import Loop
from rewire.mesh import Devices
from rewire.result import Result
from rewire.runs import read_json, start_run_dir, write_json

LAYER_KIND = "rewire.edit/layer"  # the edited layer's file in rewire's format
Pair = tuple[Any, Any]


def get_layer(params: Any, path: tuple[str, ...]) -> jax.Array:
    """The array at `path` in a params tree."""
    node = params
    for i, name in enumerate(path):
        try:
            node = node[name]
        except (KeyError, TypeError):
            raise ValueError(f"layer {list(path)}: no {name!r} at {list(path[:i]) or 'the top'}") from None
    return jnp.asarray(node)


def set_layer(params: Any, path: tuple[str, ...], value: jax.Array) -> Any:
    """A copy of `params` (dicts all the way) with the array at `path` replaced."""
    if not path:
        return value
    return {**params, path[0]: set_layer(params[path[0]], path[1:], value)}


@dataclass(frozen=True, eq=False)
class Problem:
    """A classifier of your own to edit. `model.apply(params, x) -> logits`; `layer`: the path of a 2-D
    array in `params` (e.g. `("params", "Dense_1", "kernel")`).

    Unlearning: `retain` and `forget` as (inputs, integer labels); to forget a random subset so that it
    looks unseen (`WorldConfig(forget="random")`), also `validation` (inputs, labels). Bias: `groups` as
    (inputs, 0/1 labels, 0/1 groups) of fair data, for a binary classifier (one logit, or two)."""

    model: Any
    params: Any
    layer: tuple[str, ...]
    retain: Pair | None = None
    forget: Pair | None = None
    validation: Pair | None = None
    groups: tuple[Any, Any, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer", tuple(self.layer))
        if (self.groups is None) == (self.forget is None) or (
            self.forget is not None and self.retain is None
        ):
            raise ValueError("give retain and forget (unlearning) or groups (bias), not both")
        w = get_layer(self.params, self.layer)
        if w.ndim != 2:
            raise ValueError(
                f"layer {list(self.layer)} has shape {w.shape}; MaskWorld/ShiftWorld edit 2-D arrays"
            )
        for name in ("retain", "forget", "validation", "groups"):
            arrays = getattr(self, name)
            if arrays is None:
                continue
            lengths = {len(a) for a in arrays}
            if len(lengths) != 1 or 0 in lengths:
                raise ValueError(
                    f"{name}: the arrays must be non-empty and of one length, got {sorted(lengths)}"
                )

    @property
    def task(self) -> str:
        return "bias" if self.groups is not None else "unlearn"

    def logits(self, params: Any, weights: jax.Array, x: jax.Array) -> jax.Array:
        return self.model.apply(set_layer(params, self.layer, weights), x)

    def world(self, config: WorldConfig, seed: int = 0, params: Any = None) -> tuple[WorldParams, EditWorld]:
        """The world's params for this problem (with `params` in place of the problem's own, if given) and
        the world, whose readout is the model itself."""
        params = self.params if params is None else params
        w0 = get_layer(params, self.layer)
        if self.task == "bias":
            x, y, g = (jnp.asarray(a) for a in self.groups)
            data = BiasData(x, y.astype(jnp.float32), g.astype(jnp.float32), jnp.zeros(()), jnp.zeros(()))
        else:
            if config.forget == "random" and self.validation is None:
                raise ValueError("forgetting a random subset needs validation data (Problem.validation)")
            rx, ry = (np.asarray(a) for a in self.retain)
            keep = np.random.default_rng(seed).choice(
                len(rx), min(config.reward_subset, len(rx)), replace=False
            )
            fx, fy = (jnp.asarray(a) for a in self.forget)
            vx, vy = (jnp.asarray(a) for a in (self.validation or (rx[keep], ry[keep])))
            data = UnlearnData(
                jnp.asarray(rx[keep]), jnp.asarray(ry[keep]), fx, fy, jnp.ones(len(fx)), vx, vy
            )
        world_params = WorldParams(w0, jnp.std(w0), data, jnp.arange(w0.shape[1]))
        world = EditWorld(config, w0.shape, lambda data, w, x: self.logits(params, w, x))
        return world_params, world

    def measure(self, params: Any) -> dict[str, float]:
        """Unlearning: accuracy on the whole retain and forget sets. Bias: accuracy, TPR and parity gaps."""
        apply = jax.jit(self.model.apply)
        if self.task == "bias":
            x, y, g = (jnp.asarray(a) for a in self.groups)
            metrics = group_metrics(positive(apply(params, x)), y.astype(jnp.float32), g.astype(jnp.float32))
            return {k: float(v) for k, v in metrics.items()}

        def accuracy(pair: Pair) -> float:
            return float(
                jnp.mean(jnp.argmax(apply(params, jnp.asarray(pair[0])), -1) == jnp.asarray(pair[1]))
            )

        return {"retain_accuracy": accuracy(self.retain), "forget_accuracy": accuracy(self.forget)}


class EditResult(Result):
    """An editor's run directory: `policy.ckpt` (the PPO editor), `edited.ckpt` (the edited layer),
    `result.json` (the metrics before and after the edit), config.json and the metrics stream (a row per
    PPO update: its mean episode return). With the problem in memory, `apply(params)` edits any params of
    the same model the way the editor learned."""

    progress = "update"

    def __init__(self, directory: str | os.PathLike, problem: Problem | None = None):
        super().__init__(directory)
        self.problem = problem

    @classmethod
    def load(cls, directory: str | os.PathLike, problem: Problem | None = None) -> EditResult:
        result = super().load(directory)
        result.problem = problem
        return result

    @property
    def summary(self) -> dict[str, Any]:
        return read_json(self.directory / "result.json")

    @property
    def edited_layer(self) -> np.ndarray:
        return store.read(self.directory / "edited.ckpt", (LAYER_KIND,)).arrays["layer"]

    @property
    def edited_params(self) -> Any:
        """The problem's params with the edited layer."""
        return set_layer(self._problem().params, self._problem().layer, jnp.asarray(self.edited_layer))

    def _problem(self) -> Problem:
        if self.problem is None:
            raise ValueError(f"{self.directory}: pass the Problem (EditResult.load(directory, problem))")
        return self.problem

    def apply(self, params: Any) -> Any:
        """Roll the editor's mean action out on `params` (the problem's data): the edited params."""
        problem, policy = self._problem(), load_policy(self.directory / "policy.ckpt")
        world_params, world = problem.world(policy["world"], self.seed, params)
        weights = jax.jit(PPO(world, policy["ppo"]).edit)(policy["agent"], world_params)[1]
        check_finite(weights, f"{policy['world'].world}world")
        return set_layer(params, problem.layer, weights)

    def plot(self, key: str = "mean_episode_return", path: str | os.PathLike | None = None) -> Path:
        return super().plot(key, path)


def fit(
    problem: Problem,
    config: WorldConfig = WorldConfig(),
    ppo: PPOConfig = PPOConfig(),
    seed: int = 0,
    out: str | os.PathLike | None = None,
    quiet: bool = True,
    checkpoint_every: float = 30.0,
    tensorboard: bool = False,
    devices: Devices = None,
) -> EditResult:
    """Train a PPO editor (`config.world`: mask or shift) on `problem`; its task (unlearn or bias) comes from
    the problem. The run directory `out` (temporary if None) is created atomically; training checkpoints
    there, and a `fit` on a directory holding the same run resumes it."""
    config = replace(config, task=problem.task)
    world_params, world = problem.world(config, seed)
    trainer = PPO(world, ppo)
    record = {"world": config, "ppo": ppo}
    directory = start_run_dir(out, "edit", record, seed, layer=list(problem.layer), model=repr(problem.model))
    training = EditorTraining(trainer, world_params, jax.random.key(seed), devices=devices)
    loop = Loop(training, directory, every=checkpoint_every, quiet=quiet, tensorboard=tensorboard)
    loop.description = "PPO updates"
    loop.run()
    agent = training.state.agent
    weights = jax.jit(trainer.edit)(agent, world_params)[1]
    check_finite(weights, f"{config.world}world")
    edited = set_layer(problem.params, problem.layer, weights)
    policy = {"task": config.task, "world": config, "ppo": ppo, "trained_on_class": None}
    save_policy(directory / "policy.ckpt", policy | {"trained_on_classes": [], "agent": agent})
    store.write(
        directory / "edited.ckpt", LAYER_KIND, {"layer": np.asarray(weights)}, {"path": list(problem.layer)}
    )
    write_json(
        directory / "result.json",
        {"before": problem.measure(problem.params), "after": problem.measure(edited)},
    )
    return EditResult(directory, problem)
