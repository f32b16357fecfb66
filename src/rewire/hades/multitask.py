"""Zero-shot multi-task agents from per-environment synthetic datasets (Lupu et al. 2024, Sec. 5.3).

One policy is trained by behaviour cloning on the union of HaDES datasets made for different discrete-action
environments, with no environment interaction. Its input is a dataset's (normalised) state zero-padded to
the widest environment's size, followed by a one-hot task id; its head has the largest action set, and the
actions an environment lacks are masked out of both the loss and the choice. Each environment is then
evaluated with it, against single-task policies of the same learner trained on that environment's dataset
alone, and against a uniformly random policy (the floor of the normalised score, README "HaDES")."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rewire.envs.control import ControlTask
from rewire.hades.bc import GivenPolicy, Learner, act, init_many, train_bc
from rewire.hades.core import TaskDataset, bc_targets, evaluate_dataset, load_task_dataset
from rewire.mesh import Devices, batch_mesh, fetch, place
from rewire.nets import MLP, activation
from rewire.rollout import control_rollout
from rewire.runs import versions

MASKED = -1e9  # the logit of an action the task does not have: probability 0 after the softmax


def load_discrete_dataset(path: str | os.PathLike) -> TaskDataset:
    """`load_task_dataset`, refusing a dataset of continuous actions (the multi-task head is categorical)."""
    loaded = load_task_dataset(path)
    if not loaded.task.discrete:
        raise ValueError(
            f"{path}: {loaded.task.env_id} has continuous actions; multi-task agents need discrete ones"
        )
    return loaded


class TaskMaskedMLP(nn.Module):
    """An MLP over [padded state, one-hot task id] whose logits for the actions the task lacks are `MASKED`.
    `valid[t][a]` says whether task t has action a. The task id's first-layer weights start at zero, so a
    fresh multi-task network computes, on each task's inputs, what a fresh single-task network of the
    same width would: the datasets were evolved to train those."""

    hidden: tuple[int, ...]
    activation: str
    valid: tuple[tuple[bool, ...], ...]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        valid = jnp.asarray(self.valid, jnp.float32)
        states, task = x[..., : -valid.shape[0]], x[..., -valid.shape[0] :]
        first = nn.Dense(self.hidden[0], kernel_init=nn.initializers.orthogonal(jnp.sqrt(2.0)))(states)
        first = first + nn.Dense(self.hidden[0], use_bias=False, kernel_init=nn.initializers.zeros)(task)
        logits = MLP(self.hidden[1:], valid.shape[1], self.activation)(activation(self.activation)(first))
        return jnp.where(task @ valid > 0.5, logits, MASKED)


SLOTS = ("disjoint", "shared")


@dataclass(frozen=True)
class Layout:
    """How the tasks share one input and one head. `disjoint` slots: task t's state fills its own columns
    of a padded vector (the widths summed), so no input weight is shared between tasks; `shared`: every
    state starts at column 0, padded to the widest (README "HaDES": the shared columns interfere). Then
    `tasks` one-hot columns. The head has `actions` logits, of which task t has the first
    `action_dims[t]`."""

    obs_dims: tuple[int, ...]
    action_dims: tuple[int, ...]
    slots: str = "disjoint"

    @property
    def tasks(self) -> int:
        return len(self.obs_dims)

    @property
    def obs_dim(self) -> int:
        return sum(self.obs_dims) if self.slots == "disjoint" else max(self.obs_dims)

    @property
    def actions(self) -> int:
        return max(self.action_dims)

    @property
    def input_dim(self) -> int:
        return self.obs_dim + self.tasks

    @property
    def valid(self) -> tuple[tuple[bool, ...], ...]:
        return tuple(tuple(a < n for a in range(self.actions)) for n in self.action_dims)

    def offset(self, task: int) -> int:
        return sum(self.obs_dims[:task]) if self.slots == "disjoint" else 0

    def inputs(self, states: jax.Array, task: int) -> jax.Array:
        """Normalised states (..., obs_dims[task]) -> padded inputs with the task's one-hot id."""
        before = self.offset(task)
        pad = [(0, 0)] * (states.ndim - 1) + [(before, self.obs_dim - before - states.shape[-1])]
        one_hot = jnp.broadcast_to(jax.nn.one_hot(task, self.tasks), (*states.shape[:-1], self.tasks))
        return jnp.concatenate([jnp.pad(states, pad), one_hot], axis=-1)


def layout_for(tasks: list[TaskDataset], slots: str = "disjoint") -> Layout:
    if slots not in SLOTS:
        raise ValueError(f"unknown input slots {slots!r}; choose from {list(SLOTS)}")
    return Layout(tuple(t.task.obs_dim for t in tasks), tuple(t.task.action_dim for t in tasks), slots)


def union(tasks: list[TaskDataset], layout: Layout) -> tuple[jax.Array, jax.Array]:
    """All datasets as one: padded inputs with task ids, and targets padded with zeros for missing actions."""
    inputs, targets = [], []
    for t, item in enumerate(tasks):
        data = {k: jnp.asarray(v) for k, v in item.dataset.items()}
        inputs.append(layout.inputs(data["states"], t))
        probs = bc_targets(data, item.task)
        targets.append(jnp.pad(probs, [(0, 0), (0, layout.actions - probs.shape[1])]))
    return jnp.concatenate(inputs), jnp.concatenate(targets)


def multitask_module(learner: Learner, layout: Layout) -> GivenPolicy:
    return GivenPolicy(TaskMaskedMLP(tuple(learner.hidden), learner.activation, layout.valid), False)


def train_multitask(
    tasks: list[TaskDataset],
    learner: Learner,
    key: jax.Array,
    inits: int,
    layout: Layout,
    devices: Devices = None,
) -> tuple[GivenPolicy, Any, jax.Array]:
    """`inits` fresh multi-task policies trained by BC on the union, split over `devices` (`rewire.mesh`);
    (module, stacked params, final loss)."""
    module = multitask_module(learner, layout)
    inputs, targets = union(tasks, layout)
    params = init_many(module, layout.input_dim, jax.random.split(key, inits))
    params = place(params, batch_mesh(devices, inits, "the multi-task policies"))
    params, losses = jax.jit(jax.vmap(lambda p: train_bc(learner, module, p, inputs, targets)))(params)
    return module, params, losses[:, -1]


def evaluate_multitask(
    tasks: list[TaskDataset],
    layout: Layout,
    module: GivenPolicy,
    params: Any,
    key: jax.Array,
    episodes: int,
    greedy: bool,
    devices: Devices = None,
) -> list[np.ndarray]:
    """Per task, each policy's mean first-episode return over `episodes` full-horizon episodes; the
    policies are split over `devices`."""
    count = jax.tree.leaves(params)[0].shape[0]
    mesh = batch_mesh(devices, count, "the multi-task policies")
    params = place(params, mesh)
    out = []
    for t, item in enumerate(tasks):
        mean, std = jnp.asarray(item.obs_mean), jnp.asarray(item.obs_std)

        def one(p, k, t=t, item=item, mean=mean, std=std):
            def policy(obs, kk):
                return act(module, p, layout.inputs((obs - mean) / std, t), kk, greedy)

            return control_rollout(item.task, policy, k, episodes, item.task.horizon)["first_return"]

        keys = place(jax.random.split(jax.random.fold_in(key, t), count), mesh)
        out.append(fetch(jax.jit(jax.vmap(one))(params, keys)))
    return out


def random_return(task: ControlTask, key: jax.Array, episodes: int) -> float:
    """The mean first-episode return of a uniformly random policy: the floor of the normalised score."""

    def policy(obs, k):
        return jax.random.randint(k, (), 0, task.action_dim)

    return float(
        jax.jit(lambda k: control_rollout(task, policy, k, episodes, task.horizon)["first_return"])(key)
    )


def run_multitask(
    paths: list[str | os.PathLike],
    learner: Learner | None = None,
    seed: int = 0,
    inits: int = 10,
    episodes: int = 10,
    greedy: bool = False,
    slots: str = "disjoint",
    devices: Devices = None,
) -> dict[str, Any]:
    """Train `inits` multi-task policies on the union of the datasets at `paths` (one per environment) and
    as many single-task policies on each dataset alone, all with `learner` (default: the first dataset's),
    and evaluate them in each environment. Per task: both medians, the random policy's return, `ratio`
    (multi / single, meaningful for positive returns) and `normalised`, (multi - random) / (single - random),
    the share of the single-task policy's gain over random that the multi-task policy keeps. The multi-task
    policies are split over `devices` (`rewire.mesh`)."""
    if len(paths) < 2:
        raise ValueError("a multi-task agent needs datasets for at least two environments")
    tasks = [load_discrete_dataset(p) for p in paths]
    ids = [t.task.env_id for t in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError(f"one dataset per environment, got {ids}")
    learner = learner or tasks[0].learner
    learner.validate()
    key = jax.random.key(seed)
    k_train, k_eval, k_single, k_random = jax.random.split(key, 4)
    layout = layout_for(tasks, slots)
    module, params, losses = train_multitask(tasks, learner, k_train, inits, layout, devices)
    multi = evaluate_multitask(tasks, layout, module, params, k_eval, episodes, greedy, devices)
    per_task = {}
    for t, item in enumerate(tasks):
        single = evaluate_dataset(
            item.dataset,
            item.task,
            learner,
            item.obs_mean,
            item.obs_std,
            jax.random.fold_in(k_single, t),
            inits,
            episodes,
            greedy,
        )
        floor = random_return(item.task, jax.random.fold_in(k_random, t), 10 * episodes)
        m, s = float(np.median(multi[t])), float(np.median(single["returns"]))
        per_task[item.task.env_id] = {
            "dataset": str(paths[t]),
            "multitask_median": m,
            "single_task_median": s,
            "random_return": floor,
            "ratio": m / s if s != 0 else float("nan"),
            "normalised": (m - floor) / (s - floor) if s != floor else float("nan"),
            "multitask_returns": multi[t],
            "single_task_returns": single["returns"],
        }
    return {
        "tasks": per_task,
        "layout": {
            "slots": slots,
            "input": layout.input_dim,
            "padded_obs": layout.obs_dim,
            "actions": layout.actions,
            "order": ids,
        },
        "learner": learner,
        "bc_loss_per_init": fetch(losses),
        "seed": seed,
        "inits": inits,
        "episodes": episodes,
        "greedy": greedy,
        "versions": versions(),
    }
