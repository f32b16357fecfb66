"""Trained policies as objects, and one `evaluate` for all of them.

A policy has `act(obs, key=None)`: an action for one observation in the environment's own action units
(the deterministic action without a key, a sample with one). `evaluate` runs whole episodes of any such
policy in a Gymnasium env (by id or instance) or a gymnax-style JAX env.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
import numpy as np

from rewire.envs import as_spec
from rewire.rollout import episode_seed


class Policy(Protocol):
    def act(self, obs: Any, key: jax.Array | None = None) -> np.ndarray: ...


def evaluate(
    policy: Policy, env: Any, episodes: int = 10, seed: int = 0, stochastic: bool = False
) -> dict[str, np.ndarray]:
    """`episodes` full episodes of `policy` in `env` (an id, a Gymnasium env, a JAX env or `(env,
    params)`): per episode its return, its length and whether it ended in a terminal state (on the
    success-terminal sparse tasks, whether it succeeded). Episode e resets with a seed derived from `seed`
    and e; `stochastic` samples actions (with keys from `seed`) instead of taking the deterministic one."""
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    spec = as_spec(env)
    key = jax.random.key(seed)
    returns, lengths, terminal = np.zeros(episodes), np.zeros(episodes, np.int64), np.zeros(episodes, bool)
    jax_env = spec.make_jax() if spec.jax_env is not None else None
    for e in range(episodes):
        if jax_env is not None:
            step_env, params = jax_env
            env_key = jax.random.key(episode_seed(seed, 0, e))
            obs, state = step_env.reset(env_key, params)
        else:
            gym_env = spec.make_gym()
            obs, _ = gym_env.reset(seed=episode_seed(seed, 0, e))
        for t in range(spec.horizon):
            k = jax.random.fold_in(jax.random.fold_in(key, e), t) if stochastic else None
            action = np.asarray(policy.act(np.asarray(obs, np.float32), k))
            if jax_env is not None:
                env_key, k_step = jax.random.split(env_key)
                obs, state, reward, term, trunc, _ = step_env.step(k_step, state, action, params)
            else:
                obs, reward, term, trunc, _ = gym_env.step(action)
            returns[e] += float(reward)
            lengths[e] = t + 1
            if bool(term) or bool(trunc):
                terminal[e] = bool(term)
                break
        if jax_env is None:
            gym_env.close()
    return {"return": returns, "length": lengths, "terminated": terminal}
