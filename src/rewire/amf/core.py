"""AMF, active multi-task fine-tuning (Bagatella et al.): the pure core.

Each round: estimate the states the expert visits in every target task (proxies), build the posterior
covariance of the expert's actions over those inputs, choose a batch of tasks by greedy expected information
gain (or by a baseline selector), ask the scripted expert for one demonstration of each, and refit the
policy. The target distribution is uniform over all tasks.

`AMF.init(key, pre_tasks, params) -> state` and `AMF.round(state) -> (state, metrics)` are pure and jit- and
vmap-able: the shell runs seeds, settings and selectors side by side. Selectors: `amf`, `uniform` (a fixed
shuffled round-robin order per seed, as the paper's uniform "with a fixed sampling order") and `random`
(i.i.d. uniform tasks). Every selector of a seed sees the same pretrained policy and the same expert noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import jax
import jax.numpy as jnp
from flax import struct

from rewire.amf.gaussian import greedy_batch
from rewire.amf.models import Data, GPModel, GPModelState, GPSettings, NNModel, NNModelState, NNSettings
from rewire.envs.metaworld import MetaWorldFamily, MetaWorldSettings
from rewire.envs.multitask import MultiTaskEnv, TaskFamily, TaskPolicy, make_multitask

Family = MultiTaskEnv | TaskFamily | MetaWorldFamily
METAWORLD = "metaworld"

SELECTORS = ("amf", "uniform", "random")
"""Task selectors: greedy information gain, a fixed shuffled round robin, i.i.d. uniform."""
MODELS = ("gp", "nn")
"""Policy models: an exact GP, or an MLP with a Bayesian last layer."""
PROXIES = ("rollout", "is")


@dataclass(frozen=True)
class AMFConfig:
    """One AMF experiment. `budget` demonstrations are requested in rounds of `batch`.

    proxies: 'rollout' (one noise-free rollout of the current policy per task; the default) or 'is'
    (past demonstrations, pretraining ones included, importance-weighted by the current policy with
    Gaussian likelihoods of std `is_action_std`, log-weights tempered by 1/H, top `is_top_k` per task).
    `proxy_stride` keeps every k-th state of a proxy trajectory. With `targets`, the target distribution
    (the criterion's weights, the baselines' task pool and the reported success) is uniform over those
    tasks; AMF may still ask for any task.
    """

    env: str = "reach2d"
    tasks: int = 24
    model: str = "gp"
    budget: int = 48
    batch: int = 4
    proxies: str = "rollout"
    proxy_stride: int = 2
    is_top_k: int = 3
    is_action_std: float = 0.05
    targets: tuple[int, ...] | None = None  # target task ids (default: all tasks, uniformly)
    gp: GPSettings = field(default_factory=GPSettings)
    nn: NNSettings = field(default_factory=NNSettings)
    metaworld: MetaWorldSettings = field(default_factory=MetaWorldSettings)
    eval_every: int = 1

    @property
    def rounds(self) -> int:
        return self.budget // self.batch

    def validate(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; choose one of {list(MODELS)}")
        if self.proxies not in PROXIES:
            raise ValueError(f"unknown proxies {self.proxies!r}; choose one of {list(PROXIES)}")
        if self.batch < 1:
            raise ValueError(f"--batch must be at least 1, got {self.batch}")
        if self.budget < self.batch:
            raise ValueError(f"--budget {self.budget} is below the batch size {self.batch}: no round fits")
        if self.budget % self.batch:
            raise ValueError(f"--budget {self.budget} must be a multiple of --batch {self.batch}")
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be at least 1, got {self.eval_every}")
        if self.proxy_stride < 1 or self.is_top_k < 1 or self.is_action_std <= 0:
            raise ValueError("need proxy_stride >= 1, is_top_k >= 1 and is_action_std > 0")
        if self.proxies == "is" and self.is_top_k > self.tasks:
            raise ValueError(f"is_top_k {self.is_top_k} exceeds the {self.tasks} tasks")


@struct.dataclass
class AMFState:
    """One run's state. key: the seed's key data (every draw derives from it); round; selector: its index
    in `SELECTORS`; order: the uniform selector's fixed task order; pre_*: the pretraining demonstrations
    (states (N, H, S), actions (N, H, A), tasks); states, actions, tasks: the demonstrations collected so
    far, in `budget` preallocated slots of which `count` are filled; model: the policy model's state."""

    key: jax.Array
    round: jax.Array
    selector: jax.Array
    order: jax.Array
    pre_states: jax.Array
    pre_actions: jax.Array
    pre_tasks: jax.Array
    states: jax.Array
    actions: jax.Array
    tasks: jax.Array
    count: jax.Array
    model: GPModelState | NNModelState


def selector_id(name: str) -> int:
    if name not in SELECTORS:
        raise ValueError(f"unknown selector {name!r}; choose one of {list(SELECTORS)}")
    return SELECTORS.index(name)


class AMF:
    """The pure functions of one configuration."""

    def __init__(self, config: AMFConfig, family: Family | None = None):
        """`family`: a task family of your own (`TaskFamily`); default: the config's built-in `env`."""
        if family is None and config.env == METAWORLD:
            family = config.metaworld.family()
        if family is not None:
            config = replace(config, env=family.name, tasks=family.num_tasks)
        if isinstance(family, MetaWorldFamily):
            config = replace(config, metaworld=family.settings)
        config.validate()
        self.config = config
        self.env: Family = make_multitask(config.env, config.tasks) if family is None else family
        self.host = getattr(self.env, "host", False)  # episodes on the host's simulators, not in jit
        if self.host and config.model != "nn":
            raise ValueError(
                f"{self.env.name} runs AMF-NN only (--model nn): an RBF GP over its 39-D states has no "
                'lengthscales to stand on (README "AMF")'
            )
        targets = range(self.env.num_tasks) if config.targets is None else config.targets
        self.targets = jnp.asarray([self.env.check_task(t) for t in targets], jnp.int32)
        if not len(self.targets) or len(set(targets)) != len(self.targets):
            raise ValueError(f"targets must be distinct task ids, got {config.targets}")
        # weight of each task in the target distribution mu_c
        self.target_weights = jnp.zeros(self.env.num_tasks).at[self.targets].set(1.0 / len(self.targets))
        if config.model == "gp":
            self.model = GPModel(self.env, config.gp, self.env.expert_noise**2)
        else:
            self.model = NNModel(self.env, config.nn)

    # -- keys: one seed key drives everything -------------------------------------------------------
    @staticmethod
    def _keys(key_data: jax.Array) -> dict[str, jax.Array]:
        names = ("pretrain_demos", "order", "pretrain", "params", "rounds")
        return dict(zip(names, jax.random.split(jax.random.wrap_key_data(key_data), len(names)), strict=True))

    def param_keys(self, key_data: jax.Array) -> jax.Array:
        """Network-initialisation keys for a batch of seed keys (the shell builds parameters outside vmap)."""
        return jax.vmap(lambda k: self._keys(k)["params"])(key_data)

    # -- data -------------------------------------------------------------------------------------------
    def _flat(self, states: jax.Array, actions: jax.Array, tasks: jax.Array, valid: jax.Array) -> Data:
        h = self.env.horizon
        inputs = jax.vmap(self.env.inputs)(states, tasks)
        return Data(
            inputs.reshape(-1, self.env.input_dim),
            actions.reshape(-1, self.env.action_dim),
            jnp.repeat(tasks, h),
            jnp.repeat(valid, h),
        )

    def pretraining_data(self, state: AMFState) -> Data:
        tasks = state.pre_tasks
        return self._flat(state.pre_states, state.pre_actions, tasks, jnp.ones(tasks.shape, bool))

    def _collected_valid(self, state: AMFState) -> jax.Array:
        return jnp.arange(self.config.budget) < state.count

    def collected_data(self, state: AMFState) -> Data:
        return self._flat(state.states, state.actions, state.tasks, self._collected_valid(state))

    # -- init -------------------------------------------------------------------------------------------
    def init(
        self,
        key_data: jax.Array,
        pre_tasks: jax.Array,
        params: jax.Array,
        pre_demos: tuple[jax.Array, jax.Array] | None = None,
    ) -> AMFState:
        """Pretraining demos of `pre_tasks` from the expert (or `pre_demos`, (states, actions) a host
        family's simulators made), the pretrained model, an empty demo store."""
        keys, env, n = self._keys(key_data), self.env, self.config.budget
        if pre_demos is None:
            pre_states, pre_actions = jax.vmap(env.demonstrate)(
                pre_tasks, jax.random.split(keys["pretrain_demos"], pre_tasks.shape[0])
            )
        else:
            pre_states, pre_actions = pre_demos
        state = AMFState(
            key=key_data,
            round=jnp.zeros((), jnp.int32),
            selector=jnp.zeros((), jnp.int32),
            order=jax.random.permutation(keys["order"], self.targets),
            pre_states=pre_states,
            pre_actions=pre_actions,
            pre_tasks=pre_tasks.astype(jnp.int32),
            states=jnp.zeros((n, env.horizon, env.state_dim), pre_states.dtype),
            actions=jnp.zeros((n, env.horizon, env.action_dim), pre_states.dtype),
            tasks=jnp.zeros(n, jnp.int32),
            count=jnp.zeros((), jnp.int32),
            model=None,
        )
        return state.replace(
            model=self.model.pretrain(keys["pretrain"], self.pretraining_data(state), params)
        )

    # -- proxies of the expert's state distribution per task --------------------------------------------
    def rollout_proxies(
        self, policy: TaskPolicy, states: jax.Array | None = None, lengths: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """One noise-free rollout of the current policy per task (or its `states` (C, H, S), from a host
        family's simulators): inputs Z, target weights, candidate idx. `lengths` (C,): each rollout's steps
        up to its first success; a task's target weight is spread over those steps only, because the states
        after a task is done say nothing about how to do it (README "AMF"). The candidates keep every step,
        as a demonstration does."""
        env, c = self.env, self.env.num_tasks
        tasks = jnp.arange(c)
        if states is None:
            key = jax.random.key(0)
            states = jax.vmap(lambda t: env.rollout(policy, t, env.nominal_start, key)[0])(tasks)
        horizon = states.shape[1]
        states = states[:, :: self.config.proxy_stride]
        m = states.shape[1]
        z = jax.vmap(env.inputs)(states, tasks).reshape(-1, env.input_dim)
        steps = jnp.full(c, horizon) if lengths is None else lengths
        kept = jnp.arange(m)[None] * self.config.proxy_stride < steps[:, None]  # (C, m); step 0 always
        weights = self.target_weights[:, None] * kept / kept.sum(1, keepdims=True)
        return z, weights.reshape(-1).astype(z.dtype), jnp.arange(c * m).reshape(c, m)

    def importance_proxies(
        self,
        policy: TaskPolicy,
        pool_states: jax.Array,
        pool_actions: jax.Array,
        pool_tasks: jax.Array,
        pool_valid: jax.Array,
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Past demonstrations re-weighted to each task c (README, "Where rewire departs from the papers"):
        log w_i(c) = sum_t [log pi(a_t | s_t, c) - log pi(a_t | s_t, c_i)] / H, self-normalised over the top
        k. Targets of c are the top-k demos' states paired with c; c's candidate inputs are its top-1 demo's
        states."""
        env, cfg, c = self.env, self.config, self.env.num_tasks
        n = pool_tasks.shape[0]

        def log_lik(task):
            mean = jax.vmap(jax.vmap(lambda s: policy(s, task)))(pool_states)
            return -jnp.sum((pool_actions - mean) ** 2, (-1, -2)) / (2 * cfg.is_action_std**2)

        ll = jax.lax.map(log_lik, jnp.arange(c))  # (C, n)
        log_w = (ll - ll[pool_tasks, jnp.arange(n)][None]) / env.horizon
        log_w = jnp.where(pool_valid[None], log_w, -jnp.inf)
        top, idx = jax.lax.top_k(log_w, cfg.is_top_k)  # (C, k)
        w = jax.nn.softmax(top, axis=-1)
        states = pool_states[idx][:, :, :: cfg.proxy_stride]  # (C, k, m, S)
        k, m = states.shape[1], states.shape[2]
        z = jax.vmap(env.inputs)(states, jnp.arange(c)).reshape(-1, env.input_dim)
        w = w * self.target_weights[:, None]
        weights = jnp.broadcast_to(w[:, :, None] / m, (c, k, m)).reshape(-1)
        cand_idx = jnp.arange(c)[:, None] * k * m + jnp.arange(m)[None]
        return z, weights, cand_idx

    def proxies(
        self,
        state: AMFState,
        policy: TaskPolicy,
        rollout_states: jax.Array | None = None,
        rollout_lengths: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        if self.config.proxies == "rollout":
            return self.rollout_proxies(policy, rollout_states, rollout_lengths)
        valid = jnp.concatenate([jnp.ones(state.pre_tasks.shape, bool), self._collected_valid(state)])
        return self.importance_proxies(
            policy,
            jnp.concatenate([state.pre_states, state.states]),
            jnp.concatenate([state.pre_actions, state.actions]),
            jnp.concatenate([state.pre_tasks, state.tasks]),
            valid,
        )

    # -- one round --------------------------------------------------------------------------------------
    def policy(self, state: AMFState) -> TaskPolicy:
        post = self.model.posterior(state.model, self.pretraining_data(state), self.collected_data(state))
        return self.model.policy(state.model, post)

    def evaluate(self, state: AMFState) -> jax.Array:
        """Success of the current policy in every task (noise-free rollouts): (C,) of 0/1."""
        return self.env.success_per_task(self.policy(state))

    def select(
        self,
        state: AMFState,
        key: jax.Array,
        rollout_states: jax.Array | None = None,
        rollout_lengths: jax.Array | None = None,
    ) -> dict:
        """This round's batch for every selector, AMF's scores and whether the covariance was finite.
        `rollout_states`, `rollout_lengths`: the current policy's proxy rollouts (C, H, S) and their steps
        up to the first success (C,), when a host family made them (`rollout_proxies`)."""
        cfg = self.config
        pre, data = self.pretraining_data(state), self.collected_data(state)
        post = self.model.posterior(state.model, pre, data)
        policy = self.model.policy(state.model, post)
        z, weights, cand_idx = self.proxies(state, policy, rollout_states, rollout_lengths)
        cov = self.model.cov(state.model, post, z)
        amf, scores = greedy_batch(cov, cand_idx, weights, self.model.noise, cfg.batch)
        n = len(self.targets)
        uniform = state.order[(state.round * cfg.batch + jnp.arange(cfg.batch)) % n]
        random = self.targets[jax.random.randint(key, (cfg.batch,), 0, n)]
        return {
            "amf": amf.astype(jnp.int32),
            "uniform": uniform,
            "random": random.astype(jnp.int32),
            "scores": scores[0],
            "finite": jnp.all(jnp.isfinite(cov)),
        }

    def round_keys(self, state: AMFState) -> tuple[jax.Array, jax.Array, jax.Array]:
        """This round's keys: (select, demonstrations, fit)."""
        key = jax.random.fold_in(self._keys(state.key)["rounds"], state.round)
        return tuple(jax.random.split(key, 3))

    def choose(
        self,
        state: AMFState,
        rollout_states: jax.Array | None = None,
        rollout_lengths: jax.Array | None = None,
    ) -> dict:
        """This round's selection (`select`) and the batch of the run's own selector (`tasks`)."""
        choice = self.select(state, self.round_keys(state)[0], rollout_states, rollout_lengths)
        return choice | {"tasks": jnp.stack([choice[name] for name in SELECTORS])[state.selector]}

    def add(self, state: AMFState, tasks: jax.Array, states: jax.Array, actions: jax.Array) -> AMFState:
        """Store one demonstration (states (H, S), actions (H, A)) of each task of the batch, and refit."""
        at = state.count
        k_fit = self.round_keys(state)[2]
        state = state.replace(
            states=jax.lax.dynamic_update_slice_in_dim(state.states, states, at, 0),
            actions=jax.lax.dynamic_update_slice_in_dim(state.actions, actions, at, 0),
            tasks=jax.lax.dynamic_update_slice_in_dim(state.tasks, tasks, at, 0),
            count=at + self.config.batch,
            round=state.round + 1,
        )
        return state.replace(model=self.model.fit(state.model, self.collected_data(state), k_fit))

    def round(self, state: AMFState) -> tuple[AMFState, dict]:
        """Select a batch of tasks, get one expert demonstration of each, refit, evaluate."""
        choice = self.choose(state)
        k_demo = self.round_keys(state)[1]
        tasks = choice["tasks"]
        states, actions = jax.vmap(self.env.demonstrate)(tasks, jax.random.split(k_demo, self.config.batch))
        state = self.add(state, tasks, states, actions)
        metrics = {"tasks": tasks, "scores": choice["scores"], "finite": choice["finite"]}
        return state, metrics | {"success": self.evaluate(state)}
