"""The two uncertainty models of AMF, behind one interface.

- `GPModel` (AMF-GP): the policy is the exact GP posterior mean over x = (state, goal), conditioned on the
  pretraining demonstrations and the collected ones; a GP cannot forget, so it needs no protection.
- `NNModel` (AMF-NN): an MLP pretrained by behaviour cloning, fine-tuned on the collected demonstrations with
  the adaptive prior (forgetting protection): mu(s, c) = (1 - a_c) mu_theta0(s, c) + a_c mu_theta(s, c),
  a_c = sigmoid(psi_c), psi_c starting at -4, with a penalty on the mean a_c so that tasks without data stay
  at the pretrained policy. Its kernel is a Bayesian last layer on the pretrained network's features,
  k(x, x') = phi(x)^T Lambda_0^-1 phi(x'), Lambda_0 = I + sigma^-2 sum_pretraining phi phi^T: a d x d
  statistic of the pretraining inputs (not rehearsal), so tasks pretraining did not cover stay uncertain.

Interface: init_params(keys); pretrain(key, pre, params) -> model state; fit(model, data, key) -> model
state; posterior(model, pre, data);
policy(model, posterior) -> TaskPolicy; cov(model, posterior, Z) -> posterior covariance over inputs Z.
`data` holds flat inputs (n, D), actions (n, A), task ids (n,) and a validity mask (n,).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from rewire.amf.gaussian import data_cholesky, posterior_cov, rbf, solve_weights
from rewire.envs.multitask import TaskInputs, TaskPolicy
from rewire.nets import MLP


class Data(NamedTuple):
    inputs: jax.Array  # (n, D)
    actions: jax.Array  # (n, A)
    tasks: jax.Array  # (n,)
    mask: jax.Array  # (n,) bool; valid rows come first


class Posterior(NamedTuple):
    inputs: jax.Array  # the conditioning inputs
    mask: jax.Array
    chol: jax.Array  # Cholesky factor of K_DD + sigma^2 I
    weights: jax.Array  # (K_DD + sigma^2 I)^-1 y (GP policy mean); unused by the NN
    # the NN's loss-gradient kernel: the labelled demonstrations it takes residuals against, the
    # conditioning inputs' embeddings, and the embeddings' scale
    pool: Data | None = None
    embeddings: jax.Array | None = None
    scale: jax.Array | None = None


@dataclass(frozen=True)
class GPSettings:
    """Product RBF kernel over (state, goal), with separate lengthscales for the two."""

    lengthscale_state: float = 0.4
    lengthscale_goal: float = 0.5
    variance: float = 0.02


@dataclass(frozen=True)
class NNSettings:
    """The neural model: an MLP pretrained by behaviour cloning, with task gates (an adaptive prior that
    fine-tuning may move away from) and a Bayesian last layer whose kernel gives the information gain."""

    hidden: tuple[int, ...] = (128, 128)
    lr: float = 1e-3
    pretrain_steps: int = 3000
    finetune_steps: int = 1000
    batch_size: int = 128
    gate_init: float = -4.0
    gate_lr: float = 0.05
    gate_penalty: float = 1e-2
    kernel_noise: float = 0.01  # sigma^2 of the last-layer model, features scaled to mean squared norm 1
    # last_layer: the Bayesian last layer on theta_0's features; loss_gradient: the paper's embeddings, the
    # gradient of the BC loss with respect to the fine-tuned network's last layer (README "AMF")
    kernel: str = "last_layer"


NN_KERNELS = ("last_layer", "loss_gradient")


@struct.dataclass
class GPModelState:
    """A GP has nothing to learn beyond conditioning on the demonstrations (see `GPModel.posterior`)."""


@struct.dataclass
class NNModelState:
    """theta0: the pretrained network; theta and gate: the fine-tuned network and per-task gates (the
    adaptive prior mixes the two); prior_cov and feature_scale: the Bayesian last layer's pretraining
    covariance and the features' scale."""

    theta0: Any
    theta: Any
    gate: jax.Array
    prior_cov: jax.Array
    feature_scale: jax.Array


class GPModel:
    def __init__(self, env: TaskInputs, settings: GPSettings, noise: float):
        if min(settings.lengthscale_state, settings.lengthscale_goal, settings.variance) <= 0:
            raise ValueError(f"GP lengthscales and variance must be positive, got {settings}")
        self.env, self.settings, self.noise = env, settings, noise
        self.lengthscales = jnp.asarray(
            [settings.lengthscale_state] * env.state_dim + [settings.lengthscale_goal] * env.goal_dim
        )

    def kernel(self, x: jax.Array, y: jax.Array) -> jax.Array:
        return rbf(x, y, self.lengthscales.astype(x.dtype), self.settings.variance)

    def init_params(self, keys: jax.Array) -> jax.Array:
        return jnp.zeros(keys.shape[0])  # a GP has no parameters to initialise

    def pretrain(self, key: jax.Array, pre: Data, params: Any) -> GPModelState:
        return GPModelState()  # "pretraining" a GP is conditioning on the pretraining demos (see posterior)

    def fit(self, model: GPModelState, data: Data, key: jax.Array) -> GPModelState:
        return model

    def posterior(self, model: GPModelState, pre: Data, data: Data) -> Posterior:
        x = jnp.concatenate([pre.inputs, data.inputs])
        y = jnp.concatenate([pre.actions, data.actions])
        mask = jnp.concatenate([pre.mask, data.mask])
        chol = data_cholesky(self.kernel(x, x), mask, self.noise)
        return Posterior(x, mask, chol, solve_weights(chol, y, mask))

    def policy(self, model: GPModelState, post: Posterior) -> TaskPolicy:
        def act(state, task):
            x = self.env.inputs(state, task)[None]
            k = self.kernel(post.inputs, x) * post.mask[:, None]
            return self.env.clip_action((k.T @ post.weights)[0])

        return act

    def cov(self, model: GPModelState, post: Posterior, z: jax.Array) -> jax.Array:
        return posterior_cov(self.kernel(z, z), self.kernel(post.inputs, z), post.chol, post.mask)


class NNModel:
    def __init__(self, env: TaskInputs, settings: NNSettings):
        if min(settings.pretrain_steps, settings.finetune_steps, settings.batch_size) < 1:
            raise ValueError(f"NN steps and batch size must be positive, got {settings}")
        if settings.kernel not in NN_KERNELS:
            raise ValueError(f"unknown NN kernel {settings.kernel!r}; choose one of {list(NN_KERNELS)}")
        self.env, self.settings, self.noise = env, settings, settings.kernel_noise
        self.net = MLP(tuple(settings.hidden), env.action_dim, "relu", with_features=True)

    def init_params(self, keys: jax.Array) -> Any:
        """Fresh network parameters for a batch of keys. Built with lax.map: a vmapped orthogonal init can
        deadlock XLA:CPU (jax 0.10.2) at larger batches."""
        x = jnp.zeros(self.env.input_dim, jnp.float32)
        return jax.lax.map(lambda k: self.net.init(k, x), keys)

    def _apply(self, params: Any, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        out, h = self.net.apply(params, x.astype(jnp.float32))
        return out.astype(x.dtype), h.astype(x.dtype)

    def _train(self, params, tx, loss_fn, key: jax.Array, num_valid: jax.Array, steps: int):
        """Adam on minibatches drawn uniformly from the first `num_valid` rows, in one lax.scan."""

        def body(carry, k):
            params, opt_state = carry
            idx = jax.random.randint(k, (self.settings.batch_size,), 0, jnp.maximum(num_valid, 1))
            grads = jax.grad(loss_fn)(params, idx)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, _), _ = jax.lax.scan(body, (params, tx.init(params)), jax.random.split(key, steps))
        return params

    def _last_layer_inputs(self, params: Any, x: jax.Array) -> jax.Array:
        """[h(x); 1]: the last hidden layer and the bias input."""
        h = self._apply(params, x)[1]
        return jnp.concatenate([h, jnp.ones_like(h[..., :1])], -1)

    def _features(self, model: NNModelState, x: jax.Array) -> jax.Array:
        return self._last_layer_inputs(model.theta0, x) / model.feature_scale

    def _bc_loss(self, out: jax.Array, actions: jax.Array) -> jax.Array:
        """Squared error in units of the largest action step, summed over action dims, mean over rows."""
        return jnp.mean(jnp.sum(((out - actions) / self.env.max_step) ** 2, -1))

    def pretrain(self, key: jax.Array, pre: Data, params: Any) -> NNModelState:
        """BC of theta_0 on the pretraining demos, then the last layer's pretraining precision."""

        def loss(p, idx):
            return self._bc_loss(self._apply(p, pre.inputs[idx])[0], pre.actions[idx])

        tx = optax.adam(self.settings.lr)
        theta0 = self._train(params, tx, loss, key, pre.inputs.shape[0], self.settings.pretrain_steps)
        phi = self._last_layer_inputs(theta0, pre.inputs)
        feature_scale = jnp.sqrt(jnp.mean(jnp.sum(phi**2, -1)))
        phi = phi / feature_scale
        precision = jnp.eye(phi.shape[1], dtype=phi.dtype) + phi.T @ phi / self.settings.kernel_noise
        return NNModelState(
            theta0=theta0,
            theta=theta0,
            gate=jnp.full(self.env.num_tasks, self.settings.gate_init, pre.inputs.dtype),
            prior_cov=jnp.linalg.inv(precision),
            feature_scale=feature_scale,
        )

    def _mixture(self, model: NNModelState, tuned: dict, x: jax.Array, task: jax.Array) -> jax.Array:
        """The adaptive prior: (1 - sigmoid(gate)) theta_0's output + sigmoid(gate) the tuned one's;
        `tuned` holds the tuned "theta" and "gate" (the model's own, or those being fitted)."""
        alpha = jax.nn.sigmoid(tuned["gate"][task])[..., None]
        base = jax.lax.stop_gradient(self._apply(model.theta0, x)[0])
        return (1 - alpha) * base + alpha * self._apply(tuned["theta"], x)[0]

    def fit(self, model: NNModelState, data: Data, key: jax.Array) -> NNModelState:
        """Behaviour cloning from theta_0 (not from the last round's weights: deterministic, no order effects)
        on the collected demos, with the adaptive prior; the gates learn faster than the network."""
        s = self.settings

        def loss(tuned, idx):
            out = self._mixture(model, tuned, data.inputs[idx], data.tasks[idx])
            return self._bc_loss(out, data.actions[idx]) + s.gate_penalty * jnp.mean(
                jax.nn.sigmoid(tuned["gate"])
            )

        tuned = {"theta": model.theta0, "gate": jnp.full_like(model.gate, s.gate_init)}
        tx = optax.multi_transform(
            {"theta": optax.adam(s.lr), "gate": optax.adam(s.gate_lr)}, {"theta": "theta", "gate": "gate"}
        )
        tuned = self._train(tuned, tx, loss, key, jnp.sum(data.mask), s.finetune_steps)
        return model.replace(**tuned)

    def _kernel(self, model: NNModelState, x: jax.Array, y: jax.Array) -> jax.Array:
        return self._features(model, x) @ model.prior_cov @ self._features(model, y).T

    def posterior(self, model: NNModelState, pre: Data, data: Data) -> Posterior:
        """Conditioned on the collected demos only: with the last layer, the pretraining ones are already
        in Lambda_0; with loss gradients, they (and the collected ones) label the residuals."""
        if self.settings.kernel == "loss_gradient":
            return self._gradient_posterior(model, pre, data)
        k = self._kernel(model, data.inputs, data.inputs)
        chol = data_cholesky(k, data.mask, self.settings.kernel_noise)
        return Posterior(data.inputs, data.mask, chol, jnp.zeros(()))

    # -- the loss-gradient kernel -------------------------------------------------------------------------
    def _embed(self, model: NNModelState, x: jax.Array, labels: jax.Array) -> jax.Array:
        """The gradient of the squared BC loss at (x, label) with respect to the fine-tuned network's last
        layer, up to a factor 2: vec((mu_theta(x) - label) [h_theta(x); 1]^T), in units of `max_step`."""
        out, h = self._apply(model.theta, x)
        inputs = jnp.concatenate([h, jnp.ones_like(h[..., :1])], -1)
        residual = (out - labels) / self.env.max_step
        return (residual[..., :, None] * inputs[..., None, :]).reshape(*x.shape[:-1], -1)

    def _nearest_labels(self, pool: Data, x: jax.Array) -> jax.Array:
        """The action of the nearest labelled input of `pool` (state and task encoding) to each row of x:
        the expert's action at a proxy state is unknown, so the residual is taken against the closest
        demonstration step (README "AMF")."""
        sq = jnp.sum(x**2, -1)[:, None] + jnp.sum(pool.inputs**2, -1)[None] - 2 * x @ pool.inputs.T
        return pool.actions[jnp.argmin(jnp.where(pool.mask[None], sq, jnp.inf), axis=1)]

    def _gradient_posterior(self, model: NNModelState, pre: Data, data: Data) -> Posterior:
        pool = Data(*(jnp.concatenate([a, b]) for a, b in zip(pre, data, strict=True)))
        every = self._embed(model, pool.inputs, pool.actions)
        scale = jnp.sqrt(jnp.sum(jnp.sum(every**2, -1) * pool.mask) / jnp.maximum(jnp.sum(pool.mask), 1))
        scale = jnp.maximum(scale, 1e-12)
        embeddings = self._embed(model, data.inputs, data.actions) / scale
        chol = data_cholesky(embeddings @ embeddings.T, data.mask, self.settings.kernel_noise)
        return Posterior(data.inputs, data.mask, chol, jnp.zeros(()), pool, embeddings, scale)

    def policy(self, model: NNModelState, post: Posterior) -> TaskPolicy:
        tuned = {"theta": model.theta, "gate": model.gate}

        def act(state, task):
            out = self._mixture(model, tuned, self.env.inputs(state, task), task)
            return self.env.clip_action(out)

        return act

    def cov(self, model: NNModelState, post: Posterior, z: jax.Array) -> jax.Array:
        if self.settings.kernel == "loss_gradient":
            phi = self._embed(model, z, self._nearest_labels(post.pool, z)) / post.scale
            return posterior_cov(phi @ phi.T, post.embeddings @ phi.T, post.chol, post.mask)
        return posterior_cov(
            self._kernel(model, z, z), self._kernel(model, post.inputs, z), post.chol, post.mask
        )
