"""MaskWorld and ShiftWorld: editing a pretrained classifier's head as an MDP.

Functional core (`EditWorld`: `reset(params) -> (state, obs)`, `step(params, state, action) -> (state, obs,
reward, done, info)`, jittable and vmappable) and thin Gymnasium environments over it.

- Edited layer: the head [W; b] (65 x 10), in a canonical frame whose first column is the forget class, so
  a policy learned for one class can be applied to another.
- Action a in [-1, 1]^{r(m+n)} decodes to A = U V^T / r (entries in [-1, 1]), m = 10 outputs, n = 65 inputs.
- MaskWorld: W <- W * clip(1 + alpha*A, 0, 2), then |W| < 1e-6*s snaps to 0 (no CPU-slow subnormals).
  ShiftWorld: W <- W + beta*s*A, with s = std(W0).
- Reward: r_t = J_t - J_{t-1}, J = lam_u * utility - lam_e * task term (potential-style: the return is
  J_T - J_0). Unlearning: utility = accuracy on a fixed 400-example subset of the training retain set, task
  term = accuracy on the training forget set (a forgotten class), or for a random forget subset
  max(0, acc(forget) - acc(validation)) + |AUC(forget losses < validation losses) - 0.5|.
  Observation: W/s flattened, the two terms and t/T.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax

from rewire.edit.classifier import CLASSES, Split, features, head
from rewire.edit.text import group_metrics

WORLDS = ("mask", "shift")
TASKS = ("unlearn", "bias")
SNAP = 1e-6


@dataclass(frozen=True)
class WorldConfig:
    """An editing world: mask or shift, the task (unlearn or bias; a `Problem` sets it), how to forget
    (one class, or a random subset), the edit's rank and the episode's length, edit sizes, reward weights,
    the reward subset's size, and whether the agent observes the weights or only the two reward terms."""

    world: str = "mask"
    task: str = "unlearn"
    forget: str = "class"  # unlearning: one class, or a random subset of the training split
    rank: int = 1
    horizon: int = 5
    alpha: float = 1.0
    beta: float = 1.0
    lam_utility: float = 1.0
    lam_task: float = 1.0
    reward_subset: int = 400
    observe_weights: bool = True  # False: the agent sees only the two terms and t/T

    @classmethod
    def for_problem(cls, world: str, task: str, forget_class: int | None) -> WorldConfig:
        """Unlearning with no forget class forgets a random subset."""
        forget = "random" if task == "unlearn" and forget_class is None else "class"
        return cls(world=world, task=task, forget=forget)

    def validate(self) -> None:
        if self.world not in WORLDS:
            raise ValueError(f"unknown world {self.world!r}; choose from {list(WORLDS)}")
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose from {list(TASKS)}")
        if self.forget not in ("class", "random"):
            raise ValueError(f"unknown forget mode {self.forget!r}; choose class or random")
        if self.rank < 1 or self.horizon < 1:
            raise ValueError("rank and horizon must be at least 1")


class UnlearnData(NamedTuple):
    """The reward data of an unlearning problem: the inputs the readout takes (for the digits head, its
    features with a trailing 1) and labels (in the canonical frame) of a retain subset, the forget set
    (weights 1, or 0 for padding) and validation data."""

    retain_x: jax.Array
    retain_y: jax.Array
    forget_x: jax.Array
    forget_y: jax.Array
    forget_w: jax.Array
    val_x: jax.Array
    val_y: jax.Array


class BiasData(NamedTuple):
    """The reward data of a bias problem (the fair validation split): inputs, 0/1 labels and groups, and
    the text classifier's output layer (unused by a readout of your own)."""

    x: jax.Array
    y: jax.Array
    g: jax.Array
    out: jax.Array
    bias: jax.Array


class WorldParams(NamedTuple):
    """Frozen data of one editing problem."""

    w0: jax.Array  # (n, m): the edited layer
    scale: jax.Array
    data: UnlearnData | BiasData
    perm: jax.Array  # canonical column k is the model's column perm[k]


# readout(data, edited layer, inputs) -> logits: how the model's output depends on the edited layer
Readout = Callable[[Any, jax.Array, jax.Array], jax.Array]


def head_readout(data: UnlearnData, weights: jax.Array, x: jax.Array) -> jax.Array:
    """The digits head: features (with a trailing 1) times [W; b]."""
    return x @ weights


def text_readout(data: BiasData, weights: jax.Array, x: jax.Array) -> jax.Array:
    """The bag-of-words classifier with the embedding `weights` (`text.text_logits`)."""
    return jax.nn.relu(x @ weights) @ data.out + data.bias


class WorldState(NamedTuple):
    weights: jax.Array
    t: jax.Array
    objective: jax.Array


def weighted_mean(values: jax.Array, w: jax.Array) -> jax.Array:
    """Mean over the rows of `values`, row i weighted by w[i] (0 for padding)."""
    rows = values * w.reshape(w.shape + (1,) * (values.ndim - 1))
    return rows.sum() / (w.sum() * (values.size // len(w)))


def canonical_perm(forget_class: int | None) -> np.ndarray:
    c = 0 if forget_class is None else forget_class
    return np.array([c] + [k for k in range(CLASSES) if k != c])


def make_params(model_params: dict, split: Split, config: WorldConfig, seed: int = 0) -> WorldParams:
    """Cache the head inputs of the reward subsets once (no test data enters the environment)."""
    perm = canonical_perm(split.forget_class)
    inverse = np.argsort(perm)
    retain_idx = np.flatnonzero(split.retain)
    rng = np.random.default_rng(seed)
    retain_idx = rng.choice(retain_idx, min(config.reward_subset, len(retain_idx)), replace=False)

    def inputs(x):
        f = features(model_params, jnp.asarray(x))
        return jnp.concatenate([f, jnp.ones((len(x), 1))], axis=1)

    w0 = head(model_params)[:, perm]
    data = UnlearnData(
        inputs(split.x_train[retain_idx]),
        jnp.asarray(inverse[split.y_train[retain_idx]]),
        inputs(split.x_train[split.forget]),
        jnp.asarray(inverse[split.y_train[split.forget]]),
        jnp.ones(int(split.forget.sum())),
        inputs(split.x_val),
        jnp.asarray(inverse[split.y_val]),
    )
    return WorldParams(w0, jnp.std(w0), data, jnp.asarray(perm))


def stack_problems(problems: list[WorldParams], count: int | None = None) -> WorldParams:
    """Unlearning problems (e.g. one per forget class of one model) stacked on a leading axis, for training
    one policy across them (`count`: cycle them to that many, one per environment); forget sets are
    zero-padded to the longest, with weight 0."""
    if count is not None:
        problems = [problems[i % len(problems)] for i in range(count)]
    longest = max(p.data.forget_x.shape[0] for p in problems)

    def pad(p: WorldParams) -> WorldParams:
        extra = longest - p.data.forget_x.shape[0]
        d = p.data
        fx, fy, fw = (
            jnp.pad(a, [(0, extra)] + [(0, 0)] * (a.ndim - 1)) for a in (d.forget_x, d.forget_y, d.forget_w)
        )
        return p._replace(data=d._replace(forget_x=fx, forget_y=fy, forget_w=fw))

    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *map(pad, problems))


def make_bias_params(text_params: dict, x: np.ndarray, y: np.ndarray, g: np.ndarray) -> WorldParams:
    """Edit the embedding matrix E (V x 16) of the text classifier; reward data: the fair validation split."""
    w0 = text_params["embed"]
    data = BiasData(jnp.asarray(x), jnp.asarray(y), jnp.asarray(g), text_params["out"], text_params["bias"])
    return WorldParams(w0, jnp.std(w0), data, jnp.arange(w0.shape[1]))


def positive(logits: jax.Array) -> jax.Array:
    """A binary classifier's decision: logit > 0 for one output (or none), class 1 for two."""
    if logits.ndim == 2 and logits.shape[-1] == 2:
        return jnp.argmax(logits, -1) == 1
    return logits.reshape(logits.shape[0]) > 0


def model_head(params: WorldParams, weights: jax.Array) -> jax.Array:
    """Back from the canonical frame to the model's column order."""
    return weights[:, jnp.argsort(params.perm)]


class EditWorld:
    """The functional core shared by MaskWorld, ShiftWorld, PPO and CEM."""

    def __init__(
        self, config: WorldConfig, shape: tuple[int, int] = (65, CLASSES), readout: Readout | None = None
    ):
        """`shape`: the edited layer's (inputs, outputs): the digits head by default. `readout`: the logits
        as a function of the edited layer (default: the digits head, or the text classifier for bias)."""
        config.validate()
        inputs, outputs = shape
        self.config, self.n, self.m = config, inputs, outputs
        self.readout = readout or (text_readout if config.task == "bias" else head_readout)
        self.action_dim = config.rank * (inputs + outputs)
        self.obs_dim = inputs * outputs * config.observe_weights + 3

    def decode(self, action: jax.Array) -> jax.Array:
        """A = U V^T / r in the (n, m) layout of the head; every entry in [-1, 1]."""
        r, m, n = self.config.rank, self.m, self.n
        a = jnp.clip(action, -1.0, 1.0)
        u, v = a[: m * r].reshape(m, r), a[m * r :].reshape(n, r)
        return (v @ u.T) / r

    def edit(self, params: WorldParams, weights: jax.Array, action: jax.Array) -> jax.Array:
        delta = self.decode(action)
        c = self.config
        if c.world == "mask":
            new = weights * jnp.clip(1.0 + c.alpha * delta, 0.0, 2.0)
            return jnp.where(jnp.abs(new) < SNAP * params.scale, 0.0, new)
        return weights + c.beta * params.scale * delta

    def terms(self, params: WorldParams, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(utility, task term). Unlearning: retain-subset accuracy, forget-set accuracy. Bias: accuracy and
        true-positive-rate gap between the groups, on the fair validation split."""
        data, logits = params.data, lambda x: self.readout(params.data, weights, x)
        if self.config.task == "bias":
            m = group_metrics(positive(logits(data.x)), data.y, data.g)
            return m["accuracy"], m["tpr_gap"]
        retain_x, retain_y, forget_x, forget_y, forget_w, val_x, val_y = data

        def acc(x, y, w=None):
            right = jnp.argmax(logits(x), -1) == y
            return right.mean() if w is None else weighted_mean(right, w)

        forget_acc = acc(forget_x, forget_y, forget_w)
        if self.config.forget == "class":
            return acc(retain_x, retain_y), forget_acc
        # A random subset should end up looking unseen, not wrong: its accuracy no higher than on
        # validation data, and its losses not separable from validation losses (pairwise AUC 0.5).
        loss_f = optax.softmax_cross_entropy_with_integer_labels(logits(forget_x), forget_y)
        loss_v = optax.softmax_cross_entropy_with_integer_labels(logits(val_x), val_y)
        auc = weighted_mean(loss_f[:, None] < loss_v[None, :], forget_w) + 0.5 * weighted_mean(
            loss_f[:, None] == loss_v[None, :], forget_w
        )
        gap = jnp.maximum(0.0, forget_acc - acc(val_x, val_y))
        return acc(retain_x, retain_y), gap + jnp.abs(auc - 0.5)

    def _observe(self, params, weights, utility, task, t):
        tail = jnp.stack([utility, task, t / self.config.horizon])
        if not self.config.observe_weights:
            return tail.astype(jnp.float32)
        return jnp.concatenate([(weights / params.scale).ravel(), tail]).astype(jnp.float32)

    def _objective(self, utility, task):
        return self.config.lam_utility * utility - self.config.lam_task * task

    def reset(self, params: WorldParams) -> tuple[WorldState, jax.Array]:
        u, e = self.terms(params, params.w0)
        state = WorldState(params.w0, jnp.asarray(0, jnp.int32), self._objective(u, e))
        return state, self._observe(params, params.w0, u, e, 0)

    def step(
        self, params: WorldParams, state: WorldState, action: jax.Array
    ) -> tuple[WorldState, jax.Array, jax.Array, jax.Array, dict]:
        weights = self.edit(params, state.weights, action)
        u, e = self.terms(params, weights)
        objective = self._objective(u, e)
        t = state.t + 1
        done = t >= self.config.horizon
        info = {"utility": u, "task": e, "finite": jnp.isfinite(weights).all()}
        obs = self._observe(params, weights, u, e, t)
        return WorldState(weights, t, objective), obs, objective - state.objective, done, info

    def rollout(self, params: WorldParams, actions: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Open-loop episode of `actions` (horizon, action_dim): (return, final weights)."""
        state, _ = self.reset(params)

        def body(state, a):
            state, _, reward, _, _ = self.step(params, state, a)
            return state, reward

        state, rewards = jax.lax.scan(body, state, actions)
        return rewards.sum(), state.weights


class EditEnv(gym.Env):
    """Gymnasium view of one editing problem; `world` fixed by the subclass."""

    metadata: dict[str, Any] = {"render_modes": []}
    world = "mask"

    def __init__(self, params: WorldParams, config: WorldConfig | None = None):
        config = WorldConfig(world=self.world) if config is None else config
        if config.world != self.world:
            raise ValueError(f"{type(self).__name__} edits with world {self.world!r}, got {config.world!r}")
        self.core, self.params = EditWorld(config, params.w0.shape), params
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.core.action_dim,), np.float32)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.core.obs_dim,), np.float32)
        self._reset = jax.jit(self.core.reset)
        self._step = jax.jit(self.core.step)
        self._state: WorldState | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state, obs = self._reset(self.params)
        return np.asarray(obs), {}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action shape {action.shape}, expected {self.action_space.shape}")
        state, obs, reward, done, info = self._step(self.params, self._state, action)
        if not bool(info["finite"]):
            raise ValueError(f"the edit at step {int(state.t)} made the weights non-finite")
        self._state = state
        info = {k: float(v) for k, v in info.items() if k != "finite"}
        return np.asarray(obs), float(reward), bool(done), False, info

    @property
    def weights(self) -> np.ndarray:
        """The current head in the model's own column order."""
        return np.asarray(model_head(self.params, self._state.weights))


class MaskWorld(EditEnv):
    """Edits multiply the layer elementwise: W * clip(1 + alpha A, 0, 2)."""

    world = "mask"


class ShiftWorld(EditEnv):
    """Edits add to the layer: W + beta std(W0) A."""

    world = "shift"
