"""The editing shell: model and policy files (rewire's file format), training an editing policy through the
run loop (`EditorTraining`, resumable), applying it to a model."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rewire import store
from rewire.edit.agents import PPO, ActorCritic, PPOConfig, PPOState
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
from rewire.loop import Loop, Stopwatch
from rewire.mesh import Devices, batch_mesh, fetch, place, replicate
from rewire.runs import config_from_json, file_record

MODEL_KINDS = {"unlearn": "rewire.edit/digits-mlp", "bias": "rewire.edit/text-bow"}
POLICY_KIND = "rewire.edit/policy"  # a policy file's kind in rewire's format
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
    meta = {"seed": seed, "data_file": source}
    return store.write(path, MODEL_KINDS[task], store.flatten(params, "params"), meta)


def load_model(
    path: str | os.PathLike,
    task: str,
    forget_class: int | None = None,
    data_file: str | os.PathLike | None = None,
) -> tuple[dict, int, Split | TextTask, dict | None]:
    """(params, data seed, the task's data, the data file's `file_record`). The data file is the one the
    model was trained on, or `data_file` if that file has moved; a file that is not a model of `task`, a
    data file other than the model's, or layer shapes that do not match the data raise."""
    saved = store.read(path)
    if saved.kind != MODEL_KINDS[task]:
        raise ValueError(f"{path}: not a model for the {task} task (expected kind {MODEL_KINDS[task]!r})")
    saved.only("params")
    seed, recorded = saved.meta.get("seed"), saved.meta.get("data_file")
    if not isinstance(seed, int) or not (
        recorded is None or isinstance(recorded, dict) and "path" in recorded
    ):
        raise store.StoreError(f"{path}: the model's seed or data file record is not valid")
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
    template = jax.eval_shape(lambda key: initial_params(task, key, data), jax.random.key(0))
    try:
        params = store.restore(template, saved.group("params"), path)
    except store.StoreError as err:
        raise ValueError(
            f"{path}: the model's layer shapes do not match the {task} task's model ({err})"
        ) from None
    if not all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(params)):
        raise store.StoreError(f"{path}: the model's parameters have NaN or infinite values")
    return jax.tree.map(jnp.asarray, params), seed, data, source


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


class EditorTraining:
    """PPO training on an editing problem as a `rewire.loop.Resumable`: `chunk` updates per step."""

    kind = "rewire.edit/ppo"
    unit = "updates"

    def __init__(
        self,
        ppo: PPO,
        params: WorldParams,
        key: jax.Array,
        per_env: bool = False,
        chunk: int = 5,
        devices: Devices = None,
    ):
        """The environments (`ppo.config.envs`) are split over `devices` (`rewire.mesh`)."""
        self.ppo, self.params, self.key, self.chunk = ppo, params, key, chunk
        self.mesh = batch_mesh(devices, ppo.config.envs, "PPO's environments")
        self._init = jax.jit(partial(ppo.init_train, per_env=per_env))
        self._updates = jax.jit(partial(ppo.train_updates, per_env=per_env), static_argnums=2)
        self.init()

    def init(self) -> None:
        self.state = self._placed(self._init(self.key, self.params))
        self.returns: list[float] = []

    def _placed(self, state: PPOState) -> PPOState:
        """The environments' states and observations split over the mesh; the agent whole on each device."""
        state = replicate(jax.tree.map(jnp.asarray, state), self.mesh)
        return state._replace(states=place(state.states, self.mesh), obs=place(state.obs, self.mesh))

    @property
    def total(self) -> int:
        return self.ppo.config.updates

    @property
    def done(self) -> int:
        return len(self.returns)

    @property
    def finished(self) -> bool:
        return self.done >= self.total

    def step(self) -> list[dict]:
        first = self.done
        self.state, returns = self._updates(self.state, self.params, min(self.chunk, self.total - first))
        self.returns += fetch(returns).tolist()
        return [
            {"update": first + i + 1, "mean_episode_return": r} for i, r in enumerate(self.returns[first:])
        ]

    def note(self) -> str:
        return f"return {self.returns[-1]:.3f}" if self.returns else ""

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict]:
        return store.flatten(fetch(self.state), "ppo") | {"returns": np.asarray(self.returns, np.float64)}, {}

    def restore(self, stored: store.Stored) -> None:
        stored.only("ppo", "returns")
        template = jax.eval_shape(self._init, self.key, self.params)
        self.state = self._placed(store.restore(template, stored.group("ppo"), stored.path))
        returns = stored.arrays.get("returns")
        if returns is None or returns.shape != (int(self.state.update),):
            raise store.StoreError(
                f"{stored.path}: the returns do not cover {int(self.state.update)} updates"
            )
        self.returns = returns.tolist()


def train_ppo(
    ppo: PPO,
    params: WorldParams,
    key: jax.Array,
    per_env: bool = False,
    directory: Path | None = None,
    quiet: bool = True,
    every: float = 30.0,
    tensorboard: bool = False,
    devices: Devices = None,
) -> tuple[Any, list[float], Stopwatch]:
    """Train through the run loop (checkpoints in `directory`, if given; the environments split over
    `devices`): (agent, return per update, the compile-excluded timing)."""
    training = EditorTraining(ppo, params, key, per_env, devices=devices)
    loop = Loop(training, directory, every=every, quiet=quiet, tensorboard=tensorboard)
    loop.description = "PPO updates"
    watch = loop.run()
    return training.state.agent, training.returns, watch


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
    directory: Path | None = None,
    quiet: bool = True,
    every: float = 30.0,
    tensorboard: bool = False,
    devices: Devices = None,
) -> tuple[dict, dict, dict]:
    """Train PPO on one editing problem, or (`classes`, unlearning) one policy across the problems of several
    forget classes of the same model; returns (policy record, edited params, metrics), the edit and metrics
    being those of `forget_class`. With `directory`, training checkpoints there and resumes from it."""
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
    agent, returns, watch = train_ppo(
        ppo, train_on, jax.random.key(key_seed), bool(classes), directory, quiet, every, tensorboard, devices
    )
    weights = ppo.edit(agent, params)[1]
    check_finite(weights, f"{world}world")
    edited, metrics = measure(weights)
    policy = {
        "task": task,
        "world": config,
        "ppo": ppo.config,
        "trained_on_class": forget_class if task == "unlearn" else None,
        "trained_on_classes": list(classes),
        "agent": agent,
    }
    metrics = metrics | {"wall_s": watch.seconds, "compile_s": watch.compile_seconds}
    return policy, edited, metrics | {"return_per_update": returns}


def save_policy(path: str | os.PathLike, policy: dict) -> Path:
    """A policy record (`train_editor`'s) in rewire's file format: the agent's arrays, the rest as JSON,
    with the network's input and output sizes (so that a loader can check every array's shape)."""
    agent = policy["agent"]
    sizes = {"obs_dim": agent["MLP_0"]["Dense_0"]["kernel"].shape[0], "action_dim": agent["log_std"].shape[0]}
    meta = {k: v for k, v in policy.items() if k != "agent"} | sizes
    return store.write(path, POLICY_KIND, store.flatten(agent, "agent"), meta)


def load_policy(path: str | os.PathLike) -> dict:
    """A policy record as `train_editor` returns it (configs rebuilt, the agent's parameters checked against
    the network its configs describe: names, shapes, dtypes, finite values)."""
    saved = store.read(path)
    if saved.kind != POLICY_KIND:
        raise ValueError(f"{path}: not a rewire editing policy (a {saved.kind!r} file)")
    saved.only("agent")
    meta = saved.meta
    try:
        world = config_from_json(WorldConfig, meta.get("world"), f"{path}: world")
        ppo = config_from_json(PPOConfig, meta.get("ppo"), f"{path}: ppo")
    except (ValueError, TypeError) as err:
        raise store.StoreError(f"{path}: not a valid editing policy ({err})") from None
    if meta.get("task") != world.task or not isinstance(meta.get("trained_on_classes"), list):
        raise store.StoreError(f"{path}: not a valid editing policy (task and classes)")
    obs_dim, action_dim = meta.get("obs_dim"), meta.get("action_dim")
    if not (isinstance(obs_dim, int) and isinstance(action_dim, int) and obs_dim > 0 and action_dim > 0):
        raise store.StoreError(f"{path}: not a valid editing policy (network sizes)")
    network = ActorCritic(action_dim, ppo.hidden)
    template = jax.eval_shape(network.init, jax.random.key(0), jnp.zeros((1, obs_dim)))["params"]
    agent = store.restore(template, saved.group("agent"), path)
    if not all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(agent)):
        raise store.StoreError(f"{path}: the policy's parameters have NaN or infinite values")
    return meta | {"world": world, "ppo": ppo, "agent": agent}


def apply_editor(policy: dict, model: dict, data: Split | TextTask, seed: int) -> tuple[dict, dict]:
    """Roll the policy's mean action out on `model` over `data`: (edited params, metrics)."""
    config = policy["world"]
    params, measure = problem(config.task, model, data, config, seed)
    world = EditWorld(config, params.w0.shape)
    if (world.obs_dim, world.action_dim) != (policy["obs_dim"], policy["action_dim"]):
        raise ValueError("the model's edited layer does not have the shape this policy was trained on")
    ppo = PPO(world, policy["ppo"])
    weights = jax.jit(ppo.edit)(jax.tree.map(jnp.asarray, policy["agent"]), params)[1]
    check_finite(weights, f"{config.world}world")
    return measure(weights)
