"""The inner loop of behaviour distillation: a freshly initialised network trained by full-batch behaviour
cloning on a (synthetic) dataset, in one `lax.scan`."""

from __future__ import annotations

from dataclasses import dataclass, replace

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from rewire.nets import MLP, gaussian_log_density


@dataclass(frozen=True)
class Learner:
    """Network and optimiser of the inner learner. `clip_norm` clips the global gradient norm first
    (the reference's continuous-control setting); Adam uses eps 1e-5 as in the reference."""

    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    lr: float = 0.03
    steps: int = 64
    optimizer: str = "adam"
    clip_norm: float | None = None

    def validate(self) -> None:
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"unknown optimiser {self.optimizer!r}; choose 'adam' or 'sgd'")
        if self.steps < 1 or self.lr <= 0 or not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"bad learner {self}: need steps >= 1, lr > 0 and positive widths")

    def with_arch(self, spec: str) -> Learner:
        """Parse 'width=256,depth=3,act=relu,lr=0.01,steps=128' (any subset) into a modified learner."""
        fields: dict = {}
        for part in filter(None, spec.split(",")):
            name, _, value = part.partition("=")
            if name == "width":
                fields["hidden"] = (int(value),) * len(fields.get("hidden", self.hidden))
            elif name == "depth":
                fields["hidden"] = (fields.get("hidden", self.hidden)[0],) * int(value)
            elif name == "act":
                fields["activation"] = value
            elif name in ("lr", "steps"):
                fields[name] = float(value) if name == "lr" else int(value)
            else:
                raise ValueError(
                    f"unknown architecture field {name!r} in {spec!r}; use width, depth, act, lr, steps"
                )
        learner = replace(self, **fields)
        learner.validate()
        return learner


class BCPolicy(nn.Module):
    """Categorical logits (discrete) or a diagonal Gaussian with a state-independent log-std (continuous)."""

    hidden: tuple[int, ...]
    out_dim: int
    activation: str
    continuous: bool

    @nn.compact
    def __call__(self, obs: jax.Array):
        out = MLP(self.hidden, self.out_dim, self.activation)(obs)
        if not self.continuous:
            return out
        log_std = self.param("log_std", nn.initializers.zeros, (self.out_dim,))
        return out, jnp.broadcast_to(log_std, out.shape)


class GivenPolicy(nn.Module):
    """A user's flax module as a BC policy: its output is the logits (discrete actions) or the mean action
    (continuous), to which a learned state-independent log-std is added, as in `BCPolicy`."""

    net: nn.Module
    continuous: bool

    @nn.compact
    def __call__(self, obs: jax.Array):
        out = self.net(obs)
        if not self.continuous:
            return out
        log_std = self.param("log_std", nn.initializers.zeros, (out.shape[-1],))
        return out, jnp.broadcast_to(log_std, out.shape)


Policy = BCPolicy | GivenPolicy


def policy_module(learner: Learner, out_dim: int, continuous: bool) -> BCPolicy:
    return BCPolicy(tuple(learner.hidden), out_dim, learner.activation, continuous)


def initializer(module: Policy, obs_dim: int):
    """init_fn(key) -> fresh parameters of `module` for `obs_dim`-dimensional inputs."""
    return lambda key: module.init(key, jnp.zeros(obs_dim))


def init_many(module: Policy, obs_dim: int, keys: jax.Array):
    """Fresh parameters for each key, stacked. Built one after another (`lax.map`) because a vmapped
    orthogonal initialisation can deadlock XLA:CPU (jax 0.10) at some batch sizes."""
    return jax.lax.map(initializer(module, obs_dim), keys)


def bc_loss(module: Policy, params, states: jax.Array, targets: jax.Array) -> jax.Array:
    """Cross-entropy against target probabilities (discrete), or the Gaussian negative log-likelihood of
    the target actions (continuous), averaged over the dataset."""
    if not module.continuous:
        return -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(module.apply(params, states)), axis=-1))
    mean, log_std = module.apply(params, states)
    return -jnp.mean(jnp.sum(gaussian_log_density(targets, mean, log_std), axis=-1))


def train_bc(
    learner: Learner,
    module: Policy,
    params,
    states: jax.Array,
    targets: jax.Array,
    lr_scale: jax.Array | float = 1.0,
):
    """`learner.steps` full-batch gradient steps from `params`; returns (params, loss before each step)."""
    parts = [optax.clip_by_global_norm(learner.clip_norm)] if learner.clip_norm else []
    if learner.optimizer == "adam":
        parts.append(optax.scale_by_adam(eps=1e-5))
    parts.append(optax.scale(-learner.lr * lr_scale))  # the rate may be traced (evolved per candidate)
    opt = optax.chain(*parts)
    grad_fn = jax.value_and_grad(lambda p: bc_loss(module, p, states, targets))

    def step(carry, _):
        p, opt_state = carry
        loss, grads = grad_fn(p)
        updates, opt_state = opt.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), None, length=learner.steps)
    return params, losses


def act(module: Policy, params, obs: jax.Array, key: jax.Array, greedy: bool) -> jax.Array:
    """Sample an action (or take the mode when `greedy`) for one observation."""
    if not module.continuous:
        logits = module.apply(params, obs)
        return jnp.argmax(logits) if greedy else jax.random.categorical(key, logits)
    mean, log_std = module.apply(params, obs)
    return mean if greedy else mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
