"""Shared networks (flax linen): MLPs, tanh-Gaussian policies, critic ensembles; the one Gaussian
log-density."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Activation = Callable[[jax.Array], jax.Array]
ACTIVATIONS: dict[str, Activation] = {"relu": nn.relu, "tanh": nn.tanh, "gelu": nn.gelu, "silu": nn.silu}


def activation(name: str) -> Activation:
    """Look an activation up by name, with a clear error for unknown names."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """Orthogonally initialised MLP (hidden gain sqrt(2), output gain `out_gain`, zero biases).
    With `with_features`, returns (output, last hidden layer) for last-layer uncertainty models."""

    hidden: Sequence[int]
    out_dim: int
    act: str = "relu"
    out_gain: float = 1e-2
    with_features: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array | tuple[jax.Array, jax.Array]:
        f = activation(self.act)
        for width in self.hidden:
            x = f(nn.Dense(width, kernel_init=nn.initializers.orthogonal(jnp.sqrt(2.0)))(x))
        out = nn.Dense(self.out_dim, kernel_init=nn.initializers.orthogonal(self.out_gain))(x)
        return (out, x) if self.with_features else out


LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class TanhGaussianPolicy(nn.Module):
    """Gaussian in pre-tanh space; log-std = m * raw + c with learnable scalars m (1.0) and c (-1.0),
    clipped to [-20, 2], as in the Cal-QL reference code. Returns (mean, log_std)."""

    hidden: Sequence[int]
    act_dim: int
    act: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = MLP(self.hidden, 2 * self.act_dim, self.act)(obs)
        mean, raw = jnp.split(out, 2, axis=-1)
        mult = self.param("log_std_multiplier", nn.initializers.constant(1.0), ())
        offset = self.param("log_std_offset", nn.initializers.constant(-1.0), ())
        return mean, jnp.clip(mult * raw + offset, LOG_STD_MIN, LOG_STD_MAX)


def gaussian_log_density(x: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """log N(x; mean, exp(log_std)^2), elementwise (sum over the action axis for a diagonal Gaussian)."""
    return -0.5 * ((x - mean) / jnp.exp(log_std)) ** 2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi)


def tanh_log_det(u: jax.Array) -> jax.Array:
    """log |d tanh(u) / du| = log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|."""
    return 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))


def tanh_gaussian_sample(
    mean: jax.Array, log_std: jax.Array, key: jax.Array, num: int | None = None
) -> tuple[jax.Array, jax.Array]:
    """Reparameterised tanh-Gaussian sample and its log-density (with the tanh change of variables).

    With `num`, draws `num` samples per state along a new axis -2: shapes (..., num, A) and (..., num).
    """
    if num is not None:
        mean = jnp.repeat(mean[..., None, :], num, axis=-2)
        log_std = jnp.repeat(log_std[..., None, :], num, axis=-2)
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
    return jnp.tanh(u), jnp.sum(gaussian_log_density(u, mean, log_std) - tanh_log_det(u), axis=-1)


class CriticEnsemble(nn.Module):
    """`num` independently initialised Q(s, a) MLPs evaluated in one vmapped call: output (num, ...)."""

    hidden: Sequence[int]
    num: int = 2
    act: str = "relu"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            MLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num,
        )
        x = jnp.concatenate([obs, action], axis=-1)
        return ensemble(self.hidden, 1, self.act)(x)[..., 0]
