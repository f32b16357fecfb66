"""Environment interaction for a stack of agents: chunked collection and evaluation.

`JaxRunner` steps JAX environments inside one jitted scan, vmapped over agents (and over episodes for
evaluation). `GymRunner` steps Gymnasium environments in lockstep with one jitted, vmapped policy call per
step. Both return NumPy arrays shaped (agents, steps, ...), actions in the unit box [-1, 1].

Both runners save their state as named arrays (`snapshot`/`restore`, for the run loop's
checkpoints). A Gymnasium environment is never pickled: each episode starts from `reset(seed=...)` with a
seed derived from the runner's seed, the environment's index and the episode's number, so a resumed runner
rebuilds every environment from its id, that seed and the actions taken since the reset.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from rewire import store
from rewire.envs import EnvSpec
from rewire.envs.control import ControlTask
from rewire.mesh import fetch

# act_fn(policy_params, obs, key, deterministic) -> action in [-1, 1]^A, for one agent and one observation.
ActFn = Callable[[Any, jax.Array, jax.Array, bool], jax.Array]
TRAJ_KEYS = ("obs", "action", "reward", "next_obs", "terminated", "truncated")


def scan_steps(
    env,
    env_params,
    act_fn: ActFn,
    deterministic: bool,
    num_steps: int,
    policy_params: Any,
    env_state: Any,
    obs: jax.Array,
    key: jax.Array,
    to_env_action: Callable[[jax.Array], jax.Array] = lambda a: a,
):
    """`num_steps` steps of one environment with auto-reset; the true next observation is kept. Actions
    are recorded in the unit box and mapped by `to_env_action` for the env."""

    def body(carry, k):
        state, o = carry
        k_act, k_env = jax.random.split(k)
        a = act_fn(policy_params, o, k_act, deterministic)
        o2, state2, r, term, trunc, info = env.step(k_env, state, to_env_action(a), env_params)
        step = {
            "obs": o,
            "action": a,
            "reward": r,
            "next_obs": info["final_observation"],
            "terminated": term,
            "truncated": trunc,
        }
        return (state2, o2), step

    (env_state, obs), traj = jax.lax.scan(body, (env_state, obs), jax.random.split(key, num_steps))
    return env_state, obs, traj


def first_episode_metrics(reward: jax.Array, terminated: jax.Array, truncated: jax.Array) -> dict:
    """Return, success and length of the first episode in a (..., steps) trajectory."""
    done = (terminated | truncated).astype(jnp.float32)
    alive = jnp.cumprod(1.0 - done, axis=-1)
    alive = jnp.concatenate([jnp.ones_like(alive[..., :1]), alive[..., :-1]], axis=-1)  # alive before step t
    return {
        "return": (reward * alive).sum(-1),
        "success": (terminated * alive).max(-1) > 0,
        "length": alive.sum(-1),
    }


class JaxRunner:
    """One JAX environment per agent, stepped in a jitted, vmapped scan."""

    def __init__(self, spec: EnvSpec, act_fn: ActFn, num_agents: int, key: jax.Array):
        self.spec = spec
        self.env, self.env_params = spec.make_jax()
        steps = partial(scan_steps, to_env_action=spec.to_env_action_jax)
        self.num_agents = num_agents
        self.obs, self.env_state = jax.vmap(self.env.reset, in_axes=(0, None))(
            jax.random.split(key, num_agents), self.env_params
        )
        self._collect = jax.jit(
            lambda n, pp, s, o, k: jax.vmap(partial(steps, self.env, self.env_params, act_fn, False, n))(
                pp, s, o, k
            ),
            static_argnums=0,
        )

        def evaluate(policy_params, key, episodes: int):
            def one_agent(pp, k):
                keys = jax.random.split(k, episodes)
                obs, state = jax.vmap(self.env.reset, in_axes=(0, None))(keys, self.env_params)
                run = partial(steps, self.env, self.env_params, act_fn, True, spec.horizon, pp)
                _, _, traj = jax.vmap(run)(state, obs, jax.random.split(jax.random.fold_in(k, 1), episodes))
                return first_episode_metrics(traj["reward"], traj["terminated"], traj["truncated"])

            return jax.vmap(one_agent)(policy_params, jax.random.split(key, self.num_agents))

        self._evaluate = jax.jit(evaluate, static_argnums=2)

    def collect(self, policy_params: Any, key: jax.Array, num_steps: int) -> dict[str, np.ndarray]:
        keys = jax.random.split(key, self.num_agents)
        self.env_state, self.obs, traj = self._collect(
            num_steps, policy_params, self.env_state, self.obs, keys
        )
        return fetch(traj)

    def evaluate(self, policy_params: Any, key: jax.Array, episodes: int) -> dict[str, np.ndarray]:
        """Deterministic-policy episodes per agent: arrays (agents, episodes)."""
        return fetch(self._evaluate(policy_params, key, episodes))

    def snapshot(self) -> dict[str, np.ndarray]:
        return {"obs": fetch(self.obs)} | store.flatten(fetch(self.env_state), "env_state")

    def restore(self, arrays: dict[str, np.ndarray], source: str) -> None:
        template = {"obs": self.obs, "env_state": self.env_state}
        restored = store.restore(template, arrays, source)
        self.obs = jnp.asarray(restored["obs"])
        self.env_state = jax.tree.map(jnp.asarray, restored["env_state"])


def episode_seed(seed: int, env_index: int, episode: int) -> int:
    """The `reset` seed of episode `episode` of environment `env_index` (independent streams)."""
    return int(np.random.SeedSequence([seed, env_index, episode]).generate_state(1)[0])


EVAL_ENVS = 512  # most Gymnasium envs evaluated at once (a MuJoCo maze holds about 13 MB)


class GymRunner:
    """Gymnasium environments in lockstep, one per agent; the policy is one jitted, vmapped call."""

    def __init__(self, spec: EnvSpec, act_fn: ActFn, num_agents: int, key: jax.Array):
        self.spec = spec
        self.num_agents = num_agents
        self.seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
        self.envs = [spec.make_gym() for _ in range(num_agents)]
        self.eval_envs: list[gymnasium.Env] = []
        self.episodes = np.zeros(num_agents, np.int64)  # episodes started per environment
        self.actions: list[list[np.ndarray]] = [[] for _ in range(num_agents)]  # unit actions since reset
        self.obs = np.stack([self._reset(i) for i in range(num_agents)])
        self._act = jax.jit(jax.vmap(act_fn, in_axes=(0, 0, 0, None)), static_argnums=3)

    def _reset(self, i: int) -> np.ndarray:
        obs, _ = self.envs[i].reset(seed=episode_seed(self.seed, i, int(self.episodes[i])))
        self.episodes[i] += 1
        self.actions[i] = []
        return np.asarray(obs, np.float32)

    def _step_all(self, envs, obs, policy_params, key, deterministic, live=None):
        """One step of every env in `live` (all by default); the others report a zero step."""
        actions = fetch(self._act(policy_params, obs, jax.random.split(key, len(envs)), deterministic))
        out = {k: [] for k in TRAJ_KEYS}
        for i, (env, o, a) in enumerate(zip(envs, obs, actions, strict=True)):
            if live is None or live[i]:
                o2, r, term, trunc, _ = env.step(self.spec.to_env_action(a))
            else:
                o2, r, term, trunc = o, 0.0, False, False
            for k, v in zip(TRAJ_KEYS, (o, a, r, o2, term, trunc), strict=True):
                out[k].append(v)
        return {
            k: np.asarray(v, np.float32 if k not in ("terminated", "truncated") else bool)
            for k, v in out.items()
        }

    def collect(self, policy_params: Any, key: jax.Array, num_steps: int) -> dict[str, np.ndarray]:
        steps = []
        for k in jax.random.split(key, num_steps):
            step = self._step_all(self.envs, self.obs, policy_params, k, False)
            done = step["terminated"] | step["truncated"]
            self.obs = step["next_obs"].copy()
            for i in range(self.num_agents):
                self.actions[i].append(step["action"][i])
                if done[i]:
                    self.obs[i] = self._reset(i)
            steps.append(step)
        return {k: np.stack([s[k] for s in steps], axis=1) for k in TRAJ_KEYS}

    def evaluate(self, policy_params: Any, key: jax.Array, episodes: int) -> dict[str, np.ndarray]:
        """`episodes` deterministic episodes per agent, in waves of at most `EVAL_ENVS` envs; episode e of
        agent a starts from reset(seed + a * episodes + e), however the waves fall."""
        seed = int(jax.random.randint(key, (), 0, 2**31 - 1))
        per_wave = max(1, min(episodes, EVAL_ENVS // self.num_agents))
        waves = []
        for start in range(0, episodes, per_wave):
            count = min(per_wave, episodes - start)
            seeds = [seed + a * episodes + start + e for a in range(self.num_agents) for e in range(count)]
            waves.append(self._evaluate_wave(policy_params, key, seeds, count))
        return {k: np.concatenate([w[k] for w in waves], axis=1) for k in waves[0]}

    def _evaluate_wave(self, policy_params: Any, key: jax.Array, seeds: list[int], count: int) -> dict:
        # made once and kept: building a MuJoCo env takes about 0.1 s, and reset(seed) restarts one from its
        # seed alone (resuming relies on the same, `restore`)
        while len(self.eval_envs) < len(seeds):
            self.eval_envs.append(self.spec.make_gym())
        envs = self.eval_envs[: len(seeds)]
        obs = np.stack([env.reset(seed=s)[0] for s, env in zip(seeds, envs, strict=True)]).astype(np.float32)
        params = jax.tree.map(lambda x: jnp.repeat(x, count, axis=0), policy_params)
        traj, live = [], np.ones(len(envs), bool)
        for k in jax.random.split(key, self.spec.horizon):  # an env stops at the end of its first episode
            step = self._step_all(envs, obs, params, k, True, live)
            obs = step["next_obs"]
            live &= ~(step["terminated"] | step["truncated"])
            traj.append(step)
            if not live.any():
                break
        stacked = {
            k: jnp.asarray(np.stack([s[k] for s in traj], axis=-1))
            for k in ("reward", "terminated", "truncated")
        }
        metrics = first_episode_metrics(stacked["reward"], stacked["terminated"], stacked["truncated"])
        return {k: np.asarray(v).reshape(self.num_agents, count) for k, v in metrics.items()}

    def snapshot(self) -> dict[str, np.ndarray]:
        """The seed, each environment's episode count, the actions since its reset and its observation."""
        steps = np.array([len(a) for a in self.actions], np.int64)
        actions = np.zeros((self.num_agents, self.spec.horizon, self.spec.act_dim), np.float32)
        for i, taken in enumerate(self.actions):
            if taken:
                actions[i, : len(taken)] = np.stack(taken)
        return {
            "seed": np.int64(self.seed),
            "episodes": self.episodes.copy(),
            "steps": steps,
            "actions": actions,
            "obs": self.obs.copy(),
        }

    def restore(self, arrays: dict[str, np.ndarray], source: str) -> None:
        """Rebuild every environment from its id and episode seed and replay the actions since its reset; the
        observation must come out as it was saved, or the environment is not deterministic under its seed."""
        n, spec = self.num_agents, self.spec
        shapes = {
            "seed": (),
            "episodes": (n,),
            "steps": (n,),
            "actions": (n, spec.horizon, spec.act_dim),
            "obs": (n, spec.obs_dim),
        }
        if set(arrays) != set(shapes) or any(arrays[k].shape != s for k, s in shapes.items()):
            raise store.StoreError(f"{source}: the Gymnasium runner's arrays do not fit {n} x {spec.env_id}")
        if (
            (arrays["episodes"] < 1).any()
            or (arrays["steps"] < 0).any()
            or (arrays["steps"] > spec.horizon).any()
        ):
            raise store.StoreError(f"{source}: the Gymnasium runner's episode counters are out of range")
        self.seed = int(arrays["seed"])
        self.episodes = arrays["episodes"] - 1
        for i in range(n):
            self.obs[i] = self._reset(i)
            for a in arrays["actions"][i, : arrays["steps"][i]]:
                obs, *_ = self.envs[i].step(spec.to_env_action(a))
                self.obs[i] = obs
                self.actions[i].append(a)
        if not np.array_equal(self.obs, arrays["obs"]):
            raise store.StoreError(
                f"{source}: replaying the saved actions in {spec.env_id} does not reproduce the saved "
                "observations, so this environment cannot be resumed exactly"
            )


def make_runner(spec: EnvSpec, act_fn: ActFn, num_agents: int, key: jax.Array) -> JaxRunner | GymRunner:
    return (JaxRunner if spec.is_jax else GymRunner)(spec, act_fn, num_agents, key)


def control_rollout(
    task: ControlTask,
    policy_fn: Callable[[jax.Array, jax.Array], jax.Array],
    key: jax.Array,
    num_envs: int,
    num_steps: int,
) -> dict[str, jax.Array]:
    """`num_envs` copies of a JAX control task for `num_steps` auto-reset steps under `policy_fn(obs, key)`.

    Returns `mean_return`, the mean undiscounted return over the episodes that *finished* (the HaDES fitness;
    if none finished, the mean partial return, so a long episode never scores 0 merely for lasting longer
    than the rollout), `first_return` (the mean return of each env's first episode, the unbiased
    evaluation when `num_steps` covers the horizon), `episodes` (how many finished) and `observations`
    (steps, envs, obs_dim), which XLA drops when the caller does not use them.
    """
    reset = jax.vmap(task.env.reset, in_axes=(0, None))
    step = jax.vmap(task.env.step, in_axes=(0, 0, 0, None))
    obs, states = reset(jax.random.split(jax.random.fold_in(key, 0), num_envs), task.env_params)
    zeros = jnp.zeros(num_envs)

    def body(carry, k):
        states, obs, running, total, count, first, first_done = carry
        k_act, k_env = jax.random.split(k)
        action = jax.vmap(policy_fn)(obs, jax.random.split(k_act, num_envs))
        next_obs, states, reward, terminated, truncated, _ = step(
            jax.random.split(k_env, num_envs), states, task.to_env_action(action), task.env_params
        )
        running = running + reward
        done = terminated | truncated
        total = total + jnp.where(done, running, 0.0)
        first = jnp.where(done & ~first_done, running, first)
        carry = (
            states,
            next_obs,
            jnp.where(done, 0.0, running),
            total,
            count + done,
            first,
            first_done | done,
        )
        return carry, obs

    init = (states, obs, zeros, zeros, zeros, zeros, jnp.zeros(num_envs, bool))
    (_, _, running, total, count, first, first_done), observations = jax.lax.scan(
        body, init, jax.random.split(jax.random.fold_in(key, 1), num_steps)
    )
    episodes = count.sum()
    return {
        "mean_return": jnp.where(episodes > 0, total.sum() / jnp.maximum(episodes, 1), running.mean()),
        "first_return": jnp.where(first_done, first, running).mean(),
        "episodes": episodes,
        "observations": observations,
    }
