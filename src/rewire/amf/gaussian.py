"""Gaussian conditioning and the AMF information-gain criterion (pure JAX; run in float64).

The expert's action function is modelled as a Gaussian process with observation noise sigma^2 (one kernel
shared by every action dimension, so every dimension has the same gain). Posterior variances depend only on
inputs, never on the observed actions, so neither does the criterion.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

JITTER = 1e-10


def rbf(x: jax.Array, y: jax.Array, lengthscales: jax.Array, variance: float) -> jax.Array:
    """Product RBF kernel v exp(-sum_d (x_d - y_d)^2 / (2 l_d^2)) between rows of x (n, D) and y (m, D)."""
    xs, ys = x / lengthscales, y / lengthscales
    sq = jnp.sum(xs**2, -1)[:, None] + jnp.sum(ys**2, -1)[None, :] - 2 * xs @ ys.T
    return variance * jnp.exp(-0.5 * jnp.maximum(sq, 0.0))


def data_cholesky(k_dd: jax.Array, mask: jax.Array, noise: float) -> jax.Array:
    """Cholesky factor of K_DD + sigma^2 I over the valid rows of `mask`; padded rows become independent
    unit-variance points with zero cross-covariance, so they carry no information."""
    m = mask.astype(k_dd.dtype)
    k = k_dd * m[:, None] * m[None, :] + jnp.diag(noise * m + (1.0 - m))
    return jnp.linalg.cholesky(k)


def solve_weights(chol: jax.Array, y: jax.Array, mask: jax.Array) -> jax.Array:
    """(K_DD + sigma^2 I)^-1 y over the valid rows (padded rows get weight 0); the posterior mean at x is
    k(x, D) @ weights."""
    return jax.scipy.linalg.cho_solve((chol, True), y * mask.astype(y.dtype)[:, None])


def posterior_cov(k_zz: jax.Array, k_dz: jax.Array, chol: jax.Array, mask: jax.Array) -> jax.Array:
    """Sigma_D(Z, Z) = K_ZZ - K_ZD (K_DD + sigma^2 I)^-1 K_DZ, the GP posterior covariance."""
    v = jax.scipy.linalg.solve_triangular(chol, k_dz * mask.astype(k_dz.dtype)[:, None], lower=True)
    return k_zz - v.T @ v


def condition_on(cov: jax.Array, idx: jax.Array, noise: float) -> jax.Array:
    """Sigma - Sigma[:, X] (Sigma[X, X] + sigma^2 I)^-1 Sigma[X, :]: hallucinated observations at the points
    `idx` of Z (their labels are not needed)."""
    s_zx = cov[:, idx]
    s_xx = cov[jnp.ix_(idx, idx)] + noise * jnp.eye(idx.shape[0], dtype=cov.dtype)
    return cov - s_zx @ jnp.linalg.solve(s_xx, s_zx.T)


def predictive_gain(var_before: jax.Array, var_after: jax.Array, noise: float) -> jax.Array:
    """I(y_x; y_X') = 1/2 log((sigma_D^2(x) + sigma^2) / (sigma_{D+X'}^2(x) + sigma^2)), clamped at 0:
    the information a demonstration carries about the expert's (noisy) action at x."""
    after = jnp.maximum(var_after, JITTER)
    return 0.5 * jnp.maximum(jnp.log((var_before + noise) / (after + noise)), 0.0)


def candidate_gains(cov: jax.Array, cand_idx: jax.Array, weights: jax.Array, noise: float) -> jax.Array:
    """AMF score of every candidate task (Bagatella et al., the AMF criterion in its mean-marginal form):
    score(c') = sum_x w_x I(y_x; y_{X'(c')} | D), with X'(c') = Z[cand_idx[c']] and targets weighted by w.

    cov: (Z, Z) posterior covariance; cand_idx: (C, m) indices into Z; weights: (Z,). Returns (C,)."""
    var = jnp.diag(cov)

    def score(idx):
        s_zx = cov[:, idx]
        s_xx = cov[jnp.ix_(idx, idx)] + noise * jnp.eye(idx.shape[0], dtype=cov.dtype)
        reduction = jnp.sum(s_zx * jnp.linalg.solve(s_xx, s_zx.T).T, axis=1)
        return jnp.sum(weights * predictive_gain(var, var - reduction, noise))

    return jax.vmap(score)(cand_idx)


def greedy_batch(
    cov: jax.Array, cand_idx: jax.Array, weights: jax.Array, noise: float, batch: int
) -> tuple[jax.Array, jax.Array]:
    """Choose `batch` tasks one at a time; after each pick, condition the covariance on the chosen task's
    inputs (labels are not needed), so a task is picked again only if it is still the most informative.
    Ties go to the lowest task index. Returns (tasks (batch,), scores at each pick (batch, C))."""

    def pick(cov, _):
        scores = candidate_gains(cov, cand_idx, weights, noise)
        task = jnp.argmax(scores)
        return condition_on(cov, cand_idx[task], noise), (task, scores)

    _, (tasks, scores) = jax.lax.scan(pick, cov, None, length=batch)
    return tasks, scores
