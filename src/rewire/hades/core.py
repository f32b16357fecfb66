"""HaDES behaviour distillation (Lupu et al., ICLR 2024) and its neuroevolution baseline.

An ES searches over a synthetic dataset D = {(s_i, a_i)}; the fitness of D is the return of a freshly
initialised policy trained on D by behaviour cloning: max_D E_theta0[ J(pi_BC(theta0, D)) ] (paper, Sec. 3).
HaDES-R draws `inits` fresh initialisations per generation (datasets that transfer); HaDES-F keeps one fixed
initialisation (a compact parametrisation of one policy).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rewire.envs.control import BRAX_PREFIX, ControlTask, make_control
from rewire.es import ESConfig, ScoreFn
from rewire.hades.bc import GivenPolicy, Learner, Policy, act, init_many, policy_module, train_bc
from rewire.hades.dataset import load_synthetic
from rewire.rollout import control_rollout
from rewire.runs import config_from_json


@dataclass(frozen=True)
class HadesConfig:
    """A behaviour-distillation run. `labels`: for discrete actions, 'fixed' one-hot labels assigned
    round-robin (state i is labelled i mod n_actions, so no state is dropped) or 'learned' logits whose
    softmax is the target. Continuous actions are always evolved (unbounded; the env clips). `state_init`:
    where the evolved states start, 'zeros' (the mean observation; the reference) or 'observed' (distinct
    observations of a uniformly random policy, as HaDES's digits start from class-mean images).
    `state_features`: which observation features are evolved, 'all' (the reference) or 'varying' (those a
    uniformly random policy changes; the others stay at the mean observation)."""

    env_id: str = "CartPole-v1"
    size: int = 4
    variant: str = "R"
    inits: int = 2
    generations: int = 150
    es: ESConfig = field(default_factory=ESConfig)
    learner: Learner = field(default_factory=Learner)
    num_envs: int = 4
    rollout_steps: int | None = None  # None: the task's horizon
    labels: str = "fixed"
    evolve_lr: bool = False
    greedy: bool = False  # act with the mode instead of sampling (the paper samples)
    # The smallest normalisation scale: an observation feature that a random policy never changes (most of
    # MinAtar's pixels: bricks, unvisited cells) would otherwise be divided by 1e-4 when it does change
    std_floor: float = 0.0
    state_init: str = "zeros"
    # MinAtar's Breakout changes 123-132 of its 400 pixels under a random policy; evolving only those
    # removes 2/3 of the search dimensions, whose noise only perturbs the learner (README "HaDES").
    state_features: str = "all"

    def validate(self, task: ControlTask) -> None:
        if self.variant not in ("F", "R"):
            raise ValueError(
                f"unknown variant {self.variant!r}; choose 'F' (fixed init) or 'R' (random inits)"
            )
        if not 1 <= self.size <= 1024:
            raise ValueError(f"dataset size {self.size}: choose 1 to 1024 state-action pairs")
        if self.labels not in ("fixed", "learned"):
            raise ValueError(f"unknown labels {self.labels!r}; choose 'fixed' or 'learned'")
        if self.state_init not in STATE_INITS:
            raise ValueError(f"unknown state_init {self.state_init!r}; choose from {list(STATE_INITS)}")
        if self.state_features not in STATE_FEATURES:
            raise ValueError(
                f"unknown state_features {self.state_features!r}; choose from {list(STATE_FEATURES)}"
            )
        if self.std_floor < 0:
            raise ValueError(f"std_floor must be >= 0, got {self.std_floor}")
        if self.inits < 1 or self.num_envs < 1 or self.generations < 0:
            raise ValueError("inits and num_envs must be >= 1 and generations >= 0")
        self.es.validate()
        self.learner.validate()

    def steps(self, task: ControlTask) -> int:
        return self.rollout_steps or task.horizon

    @property
    def inits_per_candidate(self) -> int:
        """Inner initialisations each candidate is scored with: one fixed init for F, `inits` for R."""
        return 1 if self.variant == "F" else self.inits

    def env_steps_per_generation(self, task: ControlTask) -> int:
        return self.es.popsize * self.inits_per_candidate * self.num_envs * self.steps(task)


STATE_INITS = ("zeros", "observed")
STATE_FEATURES = ("all", "varying")
PRESETS = ("cpu", "paper")
"""The named settings of `default_config`: `cpu` (2 CPU cores) and `paper` (the reference's scale)."""
MINATAR_SUFFIX = "-MinAtar"
# The cpu preset's (generations, envs) per MinAtar game, sized so that `rewire bench hades --seeds 3` (HaDES
# and neuroevolution, 3 seeds) fits in 30 minutes on 2 cores: a HaDES plus a neuroevolution generation took
# 3.2 s on Breakout, 5.0 s on SpaceInvaders, 4.3 s on Asterix and 11 s on Freeway (2,500-step episodes,
# about as long at 2 envs as at 4), and each seed's evaluations take about 2 more minutes on Freeway
# (README "HaDES").
CPU_MINATAR_BUDGET = {"Breakout": (200, 4), "SpaceInvaders": (80, 4), "Asterix": (90, 4), "Freeway": (30, 4)}
# The reference's inner learner for Brax (Lupu et al. 2024, README "HaDES"): 2 x 512 tanh, Adam 5e-3 after a
# global-norm clip of 0.5, 200 full-batch steps (hopper; 400 on the other Brax tasks), Gaussian NLL.
REFERENCE_LEARNER = Learner(hidden=(512, 512), lr=5e-3, steps=200, clip_norm=0.5)
LEARNER_PRESETS = {"reference": REFERENCE_LEARNER}
"""Named inner learners for `rewire hades evaluate --learner NAME`."""


def default_config(env_id: str, preset: str = "cpu", **overrides: Any) -> HadesConfig:
    """Settings per task (overrides replace fields). `cpu`: sized for 2 CPU cores. `paper`: the reference's
    scale for accelerators (MinAtar and Brax only): population 2,048, 2,000 generations, width 512."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {list(PRESETS)}")
    classic = HadesConfig(env_id=env_id)
    minatar = env_id.endswith(MINATAR_SUFFIX)
    brax = env_id.startswith(BRAX_PREFIX)
    if preset == "paper" and not (minatar or brax):
        raise ValueError(f"the paper preset covers MinAtar and Brax tasks, not {env_id}; use --preset cpu")
    if minatar:
        # The reference's MinAtar setting: 16 pairs with fixed one-hot labels, SNES (sigma 0.5, temperature
        # 20: the paper preset), a ReLU MLP trained by BC for 64 Adam steps at lr 0.03. Fitness rollouts last
        # the whole episode cap (rollout_steps None: 1,000 steps; Freeway 2,500), so every env finishes an
        # episode and the fitness is a mean over whole episodes
        # (README "HaDES": 1,024 steps score Freeway 0).
        # The cpu preset's SNES departs from it (README "HaDES"): with 64 candidates, temperature 20 puts
        # 61% of the weight on the best 3, whose noisy returns turn the mean into a random walk.
        # Temperature 5 and sigma 0.1 were chosen on Breakout, seed 0.
        paper = preset == "paper"
        game = env_id.removesuffix(MINATAR_SUFFIX)
        generations, envs = (2000, 8) if paper else CPU_MINATAR_BUDGET.get(game, (200, 4))
        width, popsize = (512, 2048) if paper else (64, 64)
        sigma, temperature = (0.5, 20.0) if paper else (0.1, 5.0)
        base = HadesConfig(
            env_id=env_id,
            size=16,
            generations=generations,
            es=ESConfig("snes", popsize=popsize, sigma=sigma, temperature=temperature),
            learner=Learner(hidden=(width, width), activation="relu", lr=0.03, steps=64),
            num_envs=envs,
            std_floor=1.0,  # MinAtar's planes are 0/1: centred, not scaled (README "HaDES")
        )
    elif brax:
        # The reference's OpenES settings (sigma 0.03, Adam lr 0.05), with a narrower policy on CPU.
        paper = preset == "paper"
        steps = 200 if env_id in (f"{BRAX_PREFIX}hopper",) else 400
        base = HadesConfig(
            env_id=env_id,
            size=4,
            generations=2000 if paper else 300,
            es=ESConfig("openes", popsize=2048 if paper else 64, sigma=0.03, lr=0.05),
            learner=replace(REFERENCE_LEARNER, steps=steps)
            if paper
            else Learner(hidden=(64, 64), lr=5e-3, steps=200, clip_norm=0.5),
            num_envs=4 if paper else 1,
        )
    else:
        base = {
            "Acrobot-v1": replace(classic, size=3),
            "Pendulum-v1": replace(
                classic,
                size=8,
                generations=300,
                learner=Learner(lr=0.01, steps=100, clip_norm=0.5),
                rollout_steps=200,
            ),
            "MountainCarContinuous-v0": replace(
                classic, size=8, learner=Learner(lr=0.01, steps=100, clip_norm=0.5), num_envs=2
            ),
        }.get(env_id, classic)
    return replace(base, **overrides)


def learner_preset(name: str) -> Learner:
    """A named inner learner (`LEARNER_PRESETS`), for evaluating a dataset the way its authors trained."""
    if name not in LEARNER_PRESETS:
        raise ValueError(f"unknown learner preset {name!r}; choose from {sorted(LEARNER_PRESETS)}")
    return LEARNER_PRESETS[name]


# ----------------------------------------------------------------------------- observation normalisation


def random_observations(task: ControlTask, key: jax.Array, num_envs: int = 16) -> np.ndarray:
    """The observations (steps x envs, obs_dim) of a uniformly random policy over one horizon."""

    def random_policy(obs, k):
        if task.discrete:
            return jax.random.randint(k, (), 0, task.action_dim)
        return jax.random.uniform(k, (task.action_dim,), minval=-1.0, maxval=1.0)

    obs = control_rollout(task, random_policy, key, num_envs, task.horizon)["observations"]
    return np.asarray(obs).reshape(-1, task.obs_dim)


def observation_stats(observations: np.ndarray, std_floor: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Fixed normalisation constants (mean, std) of a uniformly random policy's observations
    (`random_observations`), the std at least `std_floor`.

    Synthetic states live in this normalised space; the constants are stored with the dataset, so a
    dataset means the same thing in every rollout (the reference's running statistics did not)."""
    return observations.mean(0), np.maximum(np.sqrt(observations.var(0) + 1e-8), std_floor)


def varying_features(observations: np.ndarray) -> np.ndarray:
    """Indices of the features that change across a uniformly random policy's observations
    (`random_observations`)."""
    return np.flatnonzero(observations.var(0) > 0)


def observed_states(
    task: ControlTask, key: jax.Array, size: int, obs_mean: np.ndarray, obs_std: np.ndarray
) -> np.ndarray:
    """`size` distinct observations of a uniformly random policy, normalised (repeats only if the policy
    saw fewer distinct ones): the 'observed' start of the evolved states."""
    rollout_key, pick_key = jax.random.split(key)
    distinct = np.unique(random_observations(task, rollout_key), axis=0)
    rows = jax.random.choice(pick_key, len(distinct), (size,), replace=size > len(distinct))
    return ((distinct[np.asarray(rows)] - obs_mean) / obs_std).astype(np.float32)


# ----------------------------------------------------------------------------- datasets and fitness


def dataset_template(
    config: HadesConfig,
    task: ControlTask,
    states: np.ndarray | None = None,
    features: np.ndarray | None = None,
) -> dict[str, jax.Array]:
    """The evolved arrays' start: all zeros (the reference's starting point), or the given `states`; with
    `features`, the states hold only those columns (`expand_states`). Named, never a bare flat vector."""
    n, a = config.size, task.action_dim
    width = task.obs_dim if features is None else len(features)
    if states is None:
        states = jnp.zeros((n, width))
    elif features is not None:
        states = states[:, features]
    out = {"states": jnp.asarray(states)}
    if not task.discrete:
        out["actions"] = jnp.zeros((n, a))
    elif config.labels == "learned":
        out["logits"] = jnp.zeros((n, a))
    if config.evolve_lr:
        out["log_lr"] = jnp.zeros(())
    return out


def expand_states(dataset: dict[str, Any], features: np.ndarray | None, obs_dim: int) -> dict[str, Any]:
    """The dataset with its evolved `features` columns placed in full-width states, the other features at
    0 (the mean observation); unchanged if `features` is None."""
    if features is None:
        return dataset
    states = dataset["states"]
    full = jnp.zeros((states.shape[0], obs_dim), states.dtype).at[:, jnp.asarray(features)].set(states)
    return dataset | {"states": full}


def bc_targets(dataset: dict[str, jax.Array], task: ControlTask) -> jax.Array:
    """What BC fits: evolved actions, softmax of evolved logits, or round-robin one-hot labels."""
    if not task.discrete:
        return dataset["actions"]
    if "logits" in dataset:
        return jax.nn.softmax(dataset["logits"])
    return jax.nn.one_hot(jnp.arange(dataset["states"].shape[0]) % task.action_dim, task.action_dim)


def fit_dataset(learner: Learner, module, params, dataset: dict[str, jax.Array], task: ControlTask):
    """Behaviour-clone `dataset` from `params` (at the evolved learning rate, if the dataset carries one)."""
    lr_scale = jnp.exp(dataset["log_lr"]) if "log_lr" in dataset else 1.0
    return train_bc(learner, module, params, dataset["states"], bc_targets(dataset, task), lr_scale)


def check_dataset(dataset: dict[str, Any], task: ControlTask) -> None:
    """Raise a clear error if a dataset does not fit the task's observation and action shapes."""
    states = np.asarray(dataset.get("states", np.zeros((0,))))
    if states.ndim != 2 or states.shape[1] != task.obs_dim or states.shape[0] < 1:
        raise ValueError(
            f"dataset states have shape {states.shape}; {task.env_id} needs (N, {task.obs_dim}) with N >= 1"
        )
    for name in ("actions", "logits"):
        if name in dataset:
            shape = np.asarray(dataset[name]).shape
            if shape != (states.shape[0], task.action_dim):
                need = (states.shape[0], task.action_dim)
                raise ValueError(f"dataset {name} have shape {shape}; {task.env_id} needs {need}")
    if not task.discrete and "actions" not in dataset:
        raise ValueError(f"{task.env_id} has continuous actions, but the dataset has no 'actions' array")
    if task.discrete and "actions" in dataset:
        raise ValueError(f"{task.env_id} has discrete actions; the dataset's continuous 'actions' do not fit")


def make_policy_fn(task: ControlTask, module, params, obs_mean, obs_std, greedy: bool):
    """policy_fn(obs, key) for rollouts: normalise the raw observation, then act."""
    return lambda obs, k: act(module, params, (obs - obs_mean) / obs_std, k, greedy)


def policy_for(config: HadesConfig, task: ControlTask, net: nn.Module | None = None) -> Policy:
    """The inner learner's network: the config's MLP, or the user's flax module `net` (which maps an
    observation to logits or a mean action; see `GivenPolicy`)."""
    if net is not None:
        return GivenPolicy(net, not task.discrete)
    return policy_module(config.learner, task.action_dim, not task.discrete)


def make_hades_score(
    config: HadesConfig,
    task: ControlTask,
    obs_mean: np.ndarray,
    obs_std: np.ndarray,
    module: Policy,
    features: np.ndarray | None = None,
) -> ScoreFn:
    """Fitness of one candidate dataset (of the evolved `features` only, if given) for one fresh
    initialisation: BC, then the rollout return."""
    learner = config.learner
    mean, std = jnp.asarray(obs_mean), jnp.asarray(obs_std)

    def score(dataset, params, eval_key):
        dataset = expand_states(dataset, features, task.obs_dim)
        params, losses = fit_dataset(learner, module, params, dataset, task)
        policy = make_policy_fn(task, module, params, mean, std, config.greedy)
        out = control_rollout(task, policy, eval_key, config.num_envs, config.steps(task))
        return out["mean_return"], {"bc_loss": losses[-1]}

    return score


def make_neuroevolution_score(
    config: HadesConfig, task: ControlTask, obs_mean: np.ndarray, obs_std: np.ndarray, module: Policy
) -> ScoreFn:
    """The baseline: the same ES directly on the policy's weights, with the same network and evaluation."""
    mean, std = jnp.asarray(obs_mean), jnp.asarray(obs_std)

    def score(params, init, eval_key):
        policy = make_policy_fn(task, module, params, mean, std, config.greedy)
        return control_rollout(task, policy, eval_key, config.num_envs, config.steps(task))["mean_return"], {}

    return score


def evaluate_policies(
    task: ControlTask,
    module,
    params,
    obs_mean: np.ndarray,
    obs_std: np.ndarray,
    key: jax.Array,
    episodes: int = 10,
    greedy: bool = False,
) -> np.ndarray:
    """Mean first-episode return over `episodes` full-horizon episodes for each of a stack of policies."""
    mean, std = jnp.asarray(obs_mean), jnp.asarray(obs_std)

    def one(p, k):
        policy = make_policy_fn(task, module, p, mean, std, greedy)
        return control_rollout(task, policy, k, episodes, task.horizon)["first_return"]

    count = jax.tree.leaves(params)[0].shape[0]
    return np.asarray(jax.jit(jax.vmap(one))(params, jax.random.split(key, count)))


def evaluate_dataset(
    dataset: dict[str, Any],
    task: ControlTask,
    learner: Learner,
    obs_mean: np.ndarray,
    obs_std: np.ndarray,
    key: jax.Array,
    inits: int = 10,
    episodes: int = 10,
    greedy: bool = False,
    net: nn.Module | None = None,
    init_key: jax.Array | None = None,
) -> dict[str, np.ndarray]:
    """Train `inits` fresh policies of `learner`'s architecture (or of the user's module `net`, with the
    learner's optimiser) on the dataset; per init, the mean first-episode return over `episodes` episodes
    and the final BC loss. With `init_key` (HaDES-F's fixed init), every policy starts from that one init,
    so the `inits` rows differ only in their evaluation episodes."""
    check_dataset(dataset, task)
    learner.validate()
    if net is None:
        module = policy_module(learner, task.action_dim, not task.discrete)
    else:
        module = GivenPolicy(net, not task.discrete)
    data = {k: jnp.asarray(v) for k, v in dataset.items()}
    k_init, k_eval = jax.random.split(key)
    init_keys = jax.random.split(k_init, inits) if init_key is None else jnp.stack([init_key] * inits)
    params = init_many(module, task.obs_dim, init_keys)
    params, losses = jax.jit(jax.vmap(lambda p: fit_dataset(learner, module, p, data, task)))(params)
    returns = evaluate_policies(task, module, params, obs_mean, obs_std, k_eval, episodes, greedy)
    return {"returns": returns, "bc_loss": np.asarray(losses[:, -1])}


def dataset_figure(dataset: dict[str, Any], task: ControlTask, path: str | os.PathLike) -> Path:
    """The dataset's figure (`rewire.report.plot_dataset`) with the targets BC fits."""
    from rewire.report import plot_dataset

    targets = bc_targets({k: jnp.asarray(v) for k, v in dataset.items()}, task)
    return plot_dataset(dataset["states"], targets, task.discrete, task.env_id, path)


def task_for(config: HadesConfig) -> ControlTask:
    task = make_control(config.env_id)
    config.validate(task)
    return task


@dataclass(frozen=True)
class TaskDataset:
    """One environment's synthetic dataset: its task, arrays and normalisation constants."""

    task: ControlTask
    dataset: dict[str, np.ndarray]
    obs_mean: np.ndarray
    obs_std: np.ndarray
    learner: Learner  # the learner it was distilled for


def load_task_dataset(path: str | os.PathLike) -> TaskDataset:
    """A `dataset.npz` of `rewire hades distill`, with its task rebuilt from the stored config and its
    arrays checked against that task (errors name the file)."""
    data, obs_mean, obs_std, meta = load_synthetic(path)
    config = config_from_json(HadesConfig, meta.get("config"), f"{path}: meta.config")
    task = task_for(config)
    try:
        check_dataset(data, task)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return TaskDataset(task, data, obs_mean, obs_std, config.learner)
