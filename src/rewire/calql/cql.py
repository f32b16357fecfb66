"""CQL(H) on SAC, with Cal-QL as a switch (Nakamoto et al. 2023; Kumar et al. 2020).

One parameter pytree {actor, critic, log_alpha, log_alpha_prime} and one gradient of the summed losses;
stop-gradients on the cross terms give every block the gradient of its own loss only, as in the reference
implementation of Nakamoto et al. (2023). `calibrate` lives in the agent state as a traced
boolean, so CQL and Cal-QL agents (times seeds) train side by side under one vmap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from rewire.buffer import Buffer, Transition, sample_mixed
from rewire.nets import CriticEnsemble, TanhGaussianPolicy, tanh_gaussian_sample

sg = jax.lax.stop_gradient


@dataclass(frozen=True)
class CQLConfig:
    """Hyper-parameters (defaults: rewire's small-CPU settings, README "Where rewire departs from the papers";
    paper values in comments)."""

    obs_dim: int = 0  # filled in from the environment
    act_dim: int = 0
    actor_hidden: tuple[int, ...] = (64, 64)  # paper: (256, 256)
    critic_hidden: tuple[int, ...] = (64, 64)  # paper AntMaze: 4 x 256
    discount: float = 0.99
    tau: float = 5e-3
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 1e-4
    init_alpha: float = 1.0
    target_entropy: float | None = None  # None: -act_dim
    cql_weight: float = 5.0
    cql_n_actions: int = 4  # paper: 10
    cql_temp: float = 1.0
    lagrange: bool = False
    target_gap: float = 0.8
    init_log_alpha_prime: float = 1.0
    importance_sampling: bool = True
    max_target_backup: bool = True
    clip_diff_min: float = -math.inf
    clip_diff_max: float = math.inf
    batch_size: int = 128  # paper: 256

    def validate(self) -> None:
        """Refuse settings no learner can use (a clear error instead of a silent divergence)."""
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau (the target critics' Polyak rate) must lie in (0, 1], got {self.tau}")
        if not 0.0 < self.discount < 1.0:
            raise ValueError(f"discount must lie in (0, 1), got {self.discount}")
        for name in ("actor_lr", "critic_lr", "alpha_lr", "init_alpha", "cql_temp"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.cql_weight < 0:
            raise ValueError(f"cql_weight must be >= 0, got {self.cql_weight}")
        if self.batch_size < 1 or self.cql_n_actions < 1:
            raise ValueError("batch_size and cql_n_actions must be at least 1")
        if not self.actor_hidden or not self.critic_hidden or min(self.actor_hidden + self.critic_hidden) < 1:
            raise ValueError("hidden widths must be positive")


@struct.dataclass
class AgentState:
    """One agent's whole training state: actor, twin critics and the temperatures (`params`), the target
    critics, the optimiser state, its key and step, and whether Cal-QL's floor is on."""

    params: dict
    target_critic: Any
    opt_state: Any
    key: jax.Array
    step: jax.Array
    calibrate: jax.Array  # bool: Cal-QL's floor on, or plain CQL


def _modules(config: CQLConfig) -> tuple[nn.Module, nn.Module]:
    return (
        TanhGaussianPolicy(config.actor_hidden, config.act_dim),
        CriticEnsemble(config.critic_hidden, num=2),
    )


def _optimizer(config: CQLConfig) -> optax.GradientTransformation:
    rates = {
        "actor": config.actor_lr,
        "critic": config.critic_lr,
        "log_alpha": config.alpha_lr,
        "log_alpha_prime": config.critic_lr,
    }
    return optax.multi_transform(
        {name: optax.adam(lr) for name, lr in rates.items()},
        lambda params: {name: jax.tree.map(lambda _, n=name: n, block) for name, block in params.items()},
    )


def init(key: jax.Array, config: CQLConfig, calibrate: bool | jax.Array = True) -> AgentState:
    """Fresh agent: actor, twin critics (+ targets), temperature and CQL Lagrange multiplier."""
    actor, critic = _modules(config)
    k_actor, k_critic, k_state = jax.random.split(key, 3)
    obs = jnp.zeros((1, config.obs_dim))
    act = jnp.zeros((1, config.act_dim))
    params = {
        "actor": actor.init(k_actor, obs)["params"],
        "critic": critic.init(k_critic, obs, act)["params"],
        "log_alpha": jnp.log(jnp.float32(config.init_alpha)),
        "log_alpha_prime": jnp.float32(config.init_log_alpha_prime),
    }
    return AgentState(
        params=params,
        target_critic=params["critic"],
        opt_state=_optimizer(config).init(params),
        key=k_state,
        step=jnp.int32(0),
        calibrate=jnp.asarray(calibrate, bool),
    )


def policy_dist(config: CQLConfig, actor_params: Any, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    actor, _ = _modules(config)
    return actor.apply({"params": actor_params}, obs)


def act(
    config: CQLConfig, actor_params: Any, obs: jax.Array, key: jax.Array, deterministic: bool
) -> jax.Array:
    """Evaluation uses tanh(mean); exploration samples the tanh-Gaussian."""
    mean, log_std = policy_dist(config, actor_params, obs)
    if deterministic:
        return jnp.tanh(mean)
    return tanh_gaussian_sample(mean, log_std, key)[0]


def q_values(config: CQLConfig, critic_params: Any, obs: jax.Array, action: jax.Array) -> jax.Array:
    """Q of both critics: shape (2, ...). `obs` broadcasts over extra sample axes of `action`."""
    _, critic = _modules(config)
    obs = (
        jnp.broadcast_to(obs[..., None, :], action.shape[:-1] + obs.shape[-1:])
        if action.ndim > obs.ndim
        else obs
    )
    return critic.apply({"params": critic_params}, obs, action)


def cql_logsumexp_entries(
    config: CQLConfig,
    q_uniform: jax.Array,
    q_next_pi: jax.Array,
    logp_next_pi: jax.Array,
    q_cur_pi: jax.Array,
    logp_cur_pi: jax.Array,
    q_data: jax.Array,
    mc_return: jax.Array,
    calibrate: jax.Array,
) -> jax.Array:
    """The 3n CQL(H) entries z (Kumar et al. 2020, eq. 4 with importance sampling), last axis = samples.

    Cal-QL floors the policy-sampled Q-values at the Monte-Carlo return g *before* the importance-weight
    subtraction and inside the logsumexp; the uniform entries are never floored.
    """
    floor = mc_return[..., None]
    q_cur_pi = jnp.where(calibrate, jnp.maximum(q_cur_pi, floor), q_cur_pi)
    q_next_pi = jnp.where(calibrate, jnp.maximum(q_next_pi, floor), q_next_pi)
    if config.importance_sampling:
        uniform_log_density = config.act_dim * math.log(0.5)
        return jnp.concatenate(
            [q_uniform - uniform_log_density, q_next_pi - logp_next_pi, q_cur_pi - logp_cur_pi], axis=-1
        )
    return jnp.concatenate([q_uniform, q_data[..., None], q_next_pi, q_cur_pi], axis=-1)


def losses(
    params: dict,
    target_critic: Any,
    calibrate: jax.Array,
    batch: Transition,
    key: jax.Array,
    config: CQLConfig,
) -> tuple[jax.Array, dict]:
    """Sum of the actor, temperature, twin-critic (Bellman + CQL) and Lagrange losses (section 2.2)."""
    n = config.cql_n_actions
    target_entropy = -config.act_dim if config.target_entropy is None else config.target_entropy
    k_pi, k_next, k_unif, k_cur, k_nxt = jax.random.split(key, 5)
    obs, next_obs = batch.obs, batch.next_obs

    # Temperature and actor: the critic is a constant here, alpha is a constant in the actor loss.
    mean, log_std = policy_dist(config, params["actor"], obs)
    a_pi, logp_pi = tanh_gaussian_sample(mean, log_std, k_pi)
    alpha = jnp.exp(params["log_alpha"])
    temp_loss = -(params["log_alpha"] * sg(logp_pi + target_entropy)).mean()
    q_pi = q_values(config, sg(params["critic"]), obs, a_pi).min(0)
    actor_loss = (sg(alpha) * logp_pi - q_pi).mean()

    # Everything below trains the critics only: policy samples and log-densities are constants.
    mean_s, log_std_s = sg(mean), sg(log_std)
    mean_s2, log_std_s2 = policy_dist(config, sg(params["actor"]), next_obs)
    n_target = n if config.max_target_backup else 1
    a_next, _ = tanh_gaussian_sample(mean_s2, log_std_s2, k_next, n_target)
    q_next = q_values(config, target_critic, next_obs, a_next).min(0).max(-1)
    target = sg(batch.reward + config.discount * (1.0 - batch.terminal) * q_next)

    q_data = q_values(config, params["critic"], obs, batch.action)  # (2, B)
    bellman = ((q_data - target) ** 2).mean(-1)  # (2,)

    batch_size = obs.shape[0]
    uniform = jax.random.uniform(k_unif, (batch_size, n, config.act_dim), minval=-1.0, maxval=1.0)
    a_cur, logp_cur = tanh_gaussian_sample(mean_s, log_std_s, k_cur, n)
    a_nxt, logp_nxt = tanh_gaussian_sample(mean_s2, log_std_s2, k_nxt, n)
    # All three sample sets are evaluated at the current state s (as in the reference code), in one call.
    q_unif, q_nxt, q_cur = jnp.split(
        q_values(config, params["critic"], obs, jnp.concatenate([uniform, a_nxt, a_cur], axis=1)), 3, axis=-1
    )
    z = cql_logsumexp_entries(
        config, q_unif, q_nxt, logp_nxt, q_cur, logp_cur, q_data, batch.mc_return, calibrate
    )
    lse = config.cql_temp * jax.nn.logsumexp(z / config.cql_temp, axis=-1)
    delta = jnp.clip(lse - q_data, config.clip_diff_min, config.clip_diff_max).mean(-1)  # (2,)

    if config.lagrange:
        alpha_prime = jnp.clip(jnp.exp(params["log_alpha_prime"]), 0.0, 1e6)
        cql_term = sg(alpha_prime) * config.cql_weight * (delta - config.target_gap)
        alpha_prime_loss = -alpha_prime * config.cql_weight * (sg(delta).mean() - config.target_gap)
    else:
        alpha_prime = jnp.float32(0.0)
        cql_term = config.cql_weight * delta
        alpha_prime_loss = jnp.float32(0.0)
    critic_loss = (bellman + cql_term).sum()

    q_cur_raw = sg(q_cur).min(0)
    metrics = {
        "critic_loss": critic_loss,
        "actor_loss": actor_loss,
        "alpha": alpha,
        "alpha_prime": alpha_prime,
        "cql_gap": delta.mean(),
        "q_data": q_data.mean(),
        "mc_return": batch.mc_return.mean(),
        "bound_rate": (q_cur_raw < batch.mc_return[:, None]).mean(),
    }
    return actor_loss + temp_loss + critic_loss + alpha_prime_loss, metrics


def update(state: AgentState, batch: Transition, config: CQLConfig) -> tuple[AgentState, dict]:
    """One gradient step on every block, then Polyak averaging of the target critics."""
    key, k_loss = jax.random.split(state.key)
    grads, metrics = jax.grad(losses, has_aux=True)(
        state.params, state.target_critic, state.calibrate, batch, k_loss, config
    )
    updates, opt_state = _optimizer(config).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    target = optax.incremental_update(params["critic"], state.target_critic, config.tau)
    new_state = state.replace(
        params=params, target_critic=target, opt_state=opt_state, key=key, step=state.step + 1
    )
    return new_state, metrics


@partial(jax.jit, static_argnames=("config", "num_steps", "mixing"))
def train_steps(
    states: AgentState, offline: Buffer, online: Buffer, config: CQLConfig, num_steps: int, mixing: float
) -> tuple[AgentState, dict]:
    """`num_steps` fused updates for a stack of agents (leading axis), each sampling its batches from the
    shared offline data and its own online buffer. Returns block-averaged metrics per agent."""

    def one_agent(state: AgentState, online_buf: Buffer) -> tuple[AgentState, dict]:
        def body(s: AgentState, _: None) -> tuple[AgentState, dict]:
            key, k_batch = jax.random.split(s.key)
            batch = sample_mixed(offline, online_buf, k_batch, config.batch_size, mixing)
            return update(s.replace(key=key), batch, config)

        state, metrics = jax.lax.scan(body, state, None, length=num_steps)
        return state, jax.tree.map(jnp.mean, metrics)

    return jax.vmap(one_agent)(states, online)


@partial(jax.jit, static_argnames=("config",))
def calibration_probe(states: AgentState, probe: Transition, config: CQLConfig) -> dict:
    """Per agent: mean Q(s, a_data) and mean Q(s, pi(s)) minus the mean MC return (the critic's scale against
    the data's returns, Nakamoto et al. 2023, Fig. 2), and the bound rate (share of Q(s, pi(s)) below g)."""

    def one(state: AgentState) -> dict:
        q_data = q_values(config, state.params["critic"], probe.obs, probe.action).mean(0)
        mean, _ = policy_dist(config, state.params["actor"], probe.obs)
        q_pi = q_values(config, state.params["critic"], probe.obs, jnp.tanh(mean)).min(0)
        return {
            "q_minus_mc": q_data.mean() - probe.mc_return.mean(),
            "q_pi_minus_mc": q_pi.mean() - probe.mc_return.mean(),
            "bound_rate": (q_pi < probe.mc_return).mean(),
        }

    return jax.vmap(one)(states)
