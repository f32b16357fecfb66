"""Offline pre-training, then online fine-tuning, for a stack of agents (methods x seeds) in one process.

The algorithm lives in `rewire.calql.cql` (pure, jitted); this module only orchestrates: data in,
collection, buffer inserts of finished episodes and evaluation, as a `rewire.loop.Resumable` that the run
loop checkpoints and resumes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rewire import store
from rewire.buffer import buffer_from_transitions, buffer_init
from rewire.calql import cql
from rewire.calql.metrics import DIP_WINDOW, cumulative_regret, dip_depth
from rewire.calql.online import LabelRule, absorb, pending_init
from rewire.data.episodes import (
    EpisodeDataset,
    episodes_to_transitions,
    load_dataset,
    truncation_tail,
    validate_episodes,
)
from rewire.envs import EnvSpec, make_spec
from rewire.loop import CHECKPOINT, Stopwatch, read_checkpoint
from rewire.mesh import Devices, batch_mesh, fetch, place, replicate
from rewire.rollout import make_runner, scan_steps
from rewire.runs import RECORD, config_from_json, file_record, read_run_record, write_json

METHODS: dict[str, bool] = {"cql": False, "calql": True}
"""Each method and whether it turns on Cal-QL's calibration (the Monte-Carlo floor)."""

ONLINE_LOOPS = ("auto", "device", "host")
"""Where the online phase runs: "device", collection, labelling, insertion and updates of many chunks in one
jitted scan (JAX envs only); "host", a round trip per chunk (any env); "auto", "device" for JAX envs."""


@dataclass(frozen=True)
class FinetuneConfig:
    """One offline -> online experiment. Agents are `methods` x `seeds`, trained together under vmap."""

    env_id: str = "PointMaze-umaze-v0"
    methods: tuple[str, ...] = ("cql", "calql")
    seeds: int = 3
    seed: int = 0
    agent: cql.CQLConfig = field(default_factory=cql.CQLConfig)
    offline_steps: int = 10_000
    online_steps: int = 5_000  # environment steps per agent
    chunk: int = 50  # environment steps per collection; chunk * utd updates follow each
    utd: int = 1
    mixing: float = 0.5  # share of each online-phase batch drawn from the offline data
    online_warmup: int = 0  # online transitions needed before online samples enter batches
    reward_scale: float | None = None  # None: 10 on sparse tasks (rewards x10 - 5), else 1
    reward_bias: float | None = None  # None: -5 on sparse tasks, else 0
    eval_episodes: int = 20
    eval_every: int = 250  # online environment steps
    # within the dip's window (the first DIP_WINDOW of online steps, the switch included): evaluations this
    # often and this large (0: as eval_every / eval_episodes), so that a dip is measured, not sampled
    early_eval_every: int = 0
    early_eval_episodes: int = 0
    offline_eval_every: int = 2_500
    offline_block: int = 500  # fused updates per jitted call
    online_capacity: int = 100_000
    probe_size: int = 2_048
    online_loop: str = "auto"  # ONLINE_LOOPS

    def validate(self) -> None:
        if self.online_loop not in ONLINE_LOOPS:
            raise ValueError(f"online_loop must be one of {ONLINE_LOOPS}, got {self.online_loop!r}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
        for name in (
            "seeds",
            "chunk",
            "utd",
            "eval_episodes",
            "eval_every",
            "offline_block",
            "online_capacity",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.early_eval_every < 0 or self.early_eval_episodes < 0:
            raise ValueError("early_eval_every and early_eval_episodes must be >= 0 (0: as the others)")
        if self.offline_steps < 0 or self.online_steps < 0:
            raise ValueError("offline_steps and online_steps must be >= 0")
        if not 0.0 <= self.mixing <= 1.0:
            raise ValueError(f"mixing must lie in [0, 1], got {self.mixing}")
        self.agent.validate()

    def scales(self, spec: EnvSpec) -> tuple[float, float]:
        scale = self.reward_scale if self.reward_scale is not None else (10.0 if spec.sparse else 1.0)
        bias = self.reward_bias if self.reward_bias is not None else (-5.0 if spec.sparse else 0.0)
        return scale, bias


def next_online_eval(config: FinetuneConfig, step: int) -> int:
    """The online evaluation after the one at `step`: `early_eval_every` later inside the dip's window,
    `eval_every` later after it."""
    early = step < DIP_WINDOW * config.online_steps and config.early_eval_every
    return step + (config.early_eval_every if early else config.eval_every)


def online_eval_steps(config: FinetuneConfig) -> list[int]:
    """Every online evaluation's step: the switch, the schedule of `next_online_eval`, the end."""
    steps = [0]
    while steps[-1] < config.online_steps:
        steps.append(min(next_online_eval(config, steps[-1]), config.online_steps))
    return steps


PROBE_CURVES = ("q_minus_mc", "q_pi_minus_mc")  # probed at every online evaluation (the Q curve)


@functools.cache
def absorber(rule: LabelRule) -> Callable:
    """`online.absorb` jitted and vmapped over agents, one per labelling rule (shared by every trainer)."""
    return jax.jit(jax.vmap(partial(absorb, rule=rule)))


_SEGMENTS: dict[tuple, tuple[Callable, Any]] = {}


def device_segment(config: FinetuneConfig, rule: LabelRule, spec: EnvSpec) -> Callable:
    """The jitted device loop, `(num_chunks, offline, states, online, pending, env_state, obs, key)`:
    `num_chunks` chunks of collection, labelling, insertion and UTD updates, each exactly as the host loop
    runs them. One per setting and env, so that every trainer of a setting shares its compilation (a
    user's env object counts by identity, and is held while its loop is)."""
    cache_key = (config, rule, spec, id(spec.jax_env))
    if cache_key in _SEGMENTS:
        return _SEGMENTS[cache_key][0]
    env, env_params = spec.make_jax()
    num = len(config.methods) * config.seeds

    act = partial(cql.act, config.agent)
    to_env = spec.to_env_action_jax
    steps = partial(scan_steps, env, env_params, act, False, config.chunk, to_env_action=to_env)
    collect, add = jax.vmap(steps), jax.vmap(partial(absorb, rule=rule))

    def segment(num_chunks: int, offline: Any, *carry: Any) -> tuple[tuple, dict]:
        def train(states: cql.AgentState, online: Any, mixing: float) -> tuple[cql.AgentState, dict]:
            return cql.train_steps(states, offline, online, config.agent, config.chunk * config.utd, mixing)

        def one_chunk(carry: tuple, _: None) -> tuple[tuple, dict]:
            states, online, pending, env_state, obs, key = carry
            key, k = jax.random.split(key)  # as `Finetuner._next_key` draws the host loop's chunk key
            env_state, obs, traj = collect(states.params["actor"], env_state, obs, jax.random.split(k, num))
            pending, online = add(pending, online, traj)
            if config.online_warmup == 0:
                states, metrics = train(states, online, config.mixing)
            else:  # online samples enter batches once every buffer holds `online_warmup` transitions
                warm = jnp.min(online.size) >= config.online_warmup
                states, metrics = jax.lax.cond(
                    warm, lambda: train(states, online, config.mixing), lambda: train(states, online, 1.0)
                )
            return (states, online, pending, env_state, obs, key), metrics

        return jax.lax.scan(one_chunk, carry, None, length=num_chunks)

    _SEGMENTS[cache_key] = (jax.jit(segment, static_argnums=0), spec.jax_env)
    return _SEGMENTS[cache_key][0]


class DivergedCritic(ValueError):
    """A critic's loss or Q-values left the range any policy's values can have; the run stops there."""


class Finetuner:
    """Holds the full training state of every agent; a `rewire.loop.Resumable` (`Loop(trainer).run()`)."""

    kind = "rewire.calql/finetuner"
    unit = "steps"

    def __init__(
        self,
        config: FinetuneConfig,
        dataset: EpisodeDataset,
        spec: EnvSpec | None = None,
        devices: Devices = None,
    ):
        """`spec`: the env (`rewire.envs.as_spec`, for an env of the user's own); default: `config.env_id`,
        which then names `spec`'s env. `devices`: the agents (methods x seeds) are split over them
        (`rewire.mesh`)."""
        config.validate()
        self.mesh = batch_mesh(
            devices, len(config.methods) * config.seeds, "Cal-QL's agents (methods x seeds)"
        )
        self.spec = make_spec(config.env_id) if spec is None else spec
        validate_episodes(Path(f"<dataset {dataset.env_id}>"), dataset.episodes, self.spec)
        self.config = dataclasses.replace(
            config,
            env_id=self.spec.env_id,
            agent=dataclasses.replace(config.agent, obs_dim=self.spec.obs_dim, act_dim=self.spec.act_dim),
        )
        if self.config.online_loop == "device" and not self.spec.is_jax:
            raise ValueError(f"online_loop 'device' needs a JAX env; {self.spec.env_id} is a Gymnasium env")
        self.on_device = self.config.online_loop != "host" and self.spec.is_jax
        scale, bias = self.config.scales(self.spec)
        gamma = self.config.agent.discount
        # the floor's value after a truncated end, offline and online alike (see `mc_returns`)
        tail = truncation_tail(dataset.episodes, gamma, scale, bias)
        data = episodes_to_transitions(dataset.episodes, self.spec, gamma, scale, bias, tail)
        failure = self.spec.failure_reward * scale + bias
        self.rule = LabelRule(gamma, scale, bias, tail, self.spec.sparse, failure, self.spec.horizon)
        # |Q| of any policy is at most max|r| / (1 - gamma); far beyond that the critic has diverged
        self.q_limit = 10.0 * float(np.abs(data.reward).max()) / (1.0 - gamma) + 1.0
        self.offline = replicate(buffer_from_transitions(data), self.mesh)
        n = data.reward.shape[0]
        if self.config.agent.batch_size > n:
            raise ValueError(
                f"batch size {self.config.agent.batch_size} is larger than the dataset's {n} transitions"
            )
        probe_idx = np.random.default_rng(config.seed).choice(n, min(n, config.probe_size), replace=False)
        self.probe = replicate(jax.tree.map(lambda x: jnp.asarray(x[probe_idx]), data), self.mesh)

        self.flags = np.array([METHODS[m] for m in config.methods for _ in range(config.seeds)])
        self.agent_labels = [f"{m}/seed{s}" for m in config.methods for s in range(config.seeds)]
        self.root = jax.random.PRNGKey(config.seed)
        self.update_watch = Stopwatch()  # gradient updates of this process, compilation excluded
        self.online_watch = Stopwatch()  # online chunks (collection to updates), evaluations excluded
        self._absorb = absorber(self.rule)
        self.init()
        self._segment = device_segment(self.config, self.rule, self.spec) if self.on_device else None

    def init(self) -> None:
        """Fresh agents, empty online buffers, environments reset, nothing evaluated."""
        config, num = self.config, len(self.flags)
        # Seed i of every method starts from the same initialisation: a paired comparison.
        seed_keys = jax.random.split(jax.random.fold_in(self.root, 0), config.seeds)
        keys = jnp.concatenate([seed_keys] * len(config.methods))
        self.states = jax.vmap(lambda k, f: cql.init(k, self.config.agent, f))(keys, jnp.asarray(self.flags))
        cap = max(config.online_capacity, self.spec.horizon)
        spec = self.spec
        self.online = jax.vmap(lambda _: buffer_init(spec.obs_dim, spec.act_dim, cap))(jnp.arange(num))
        self.pending = jax.vmap(lambda _: pending_init(spec.obs_dim, spec.act_dim, spec.horizon))(
            jnp.arange(num)
        )
        self.states, self.online, self.pending = place((self.states, self.online, self.pending), self.mesh)
        self.runner = make_runner(self.spec, self.act_fn, num, jax.random.fold_in(self.root, 1))
        self._place_runner()
        self.key = jax.random.fold_in(self.root, 2)
        self.offline_done = 0
        self.online_done = 0
        self.next_offline_eval = 0
        self.next_online_eval = 0
        self.history: list[dict] = []
        self.switch_probe: dict | None = None

    # ------------------------------------------------------------------------------------------- pieces

    def _place_runner(self) -> None:
        """The device loop's environments live beside their agents."""
        if self.on_device:
            self.runner.env_state, self.runner.obs = place(
                (self.runner.env_state, self.runner.obs), self.mesh
            )

    def act_fn(self, actor_params: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        return cql.act(self.config.agent, actor_params, obs, key, deterministic)

    def _next_key(self) -> jax.Array:
        self.key, k = jax.random.split(self.key)
        return k

    def _train(self, num_steps: int, mixing: float) -> dict:
        with self.update_watch.time(num_steps):
            states, metrics = cql.train_steps(
                self.states, self.offline, self.online, self.config.agent, num_steps, mixing
            )
            metrics = fetch(metrics)
        phase = "online" if self.offline_done >= self.config.offline_steps else "offline"
        self._check(metrics, f"{phase} step {self.online_done if phase == 'online' else self.offline_done}")
        self.states = states
        return {k: np.asarray(v).tolist() for k, v in metrics.items()}

    def _check(self, metrics: dict, where: str) -> None:
        """Raise `DivergedCritic` if a block's metrics (per agent) show a diverged critic."""
        loss, q = np.asarray(metrics["critic_loss"]), np.asarray(metrics["q_data"])
        bad = ~np.isfinite(loss) | ~np.isfinite(q) | (np.abs(q) > self.q_limit)
        if bad.any():
            agents = [f"{self.agent_labels[i]} (mean Q {q[i]:.3g})" for i in np.flatnonzero(bad)]
            raise DivergedCritic(
                f"the critic diverged after {where}: {', '.join(agents)}; |Q| cannot exceed "
                f"{(self.q_limit - 1.0) / 10.0:.3g} for these rewards. Lower the learning rates or tau"
            )

    def _early(self, step: int) -> bool:
        """`step` lies in the dip's window (`dip_depth`), where evaluations are `early_eval_*`."""
        return step <= DIP_WINDOW * self.config.online_steps

    def _evaluate(self, phase: str, step: int) -> dict:
        cfg = self.config
        early = phase == "online" and self._early(step) and cfg.early_eval_episodes
        episodes = cfg.early_eval_episodes if early else cfg.eval_episodes
        res = self.runner.evaluate(self.states.params["actor"], self._next_key(), episodes)
        record = {
            "phase": phase,
            "step": int(step),
            "success": res["success"].mean(1).tolist(),
            "return": res["return"].mean(1).tolist(),
        }
        if phase == "online":  # the Q curve: the critic's scale against the data's MC returns
            probe = fetch(cql.calibration_probe(self.states, self.probe, self.config.agent))
            record |= {k: np.asarray(probe[k]).tolist() for k in PROBE_CURVES}
        self.history.append(record)
        return record

    def _eval_note(self, record: dict) -> str:
        key = "success" if self.spec.sparse else "return"
        parts = []
        for m in self.config.methods:
            vals = [
                v
                for v, label in zip(record[key], self.agent_labels, strict=True)
                if label.startswith(m + "/")
            ]
            parts.append(f"{m} {np.median(vals):.2f}")
        return f"{record['phase']} {record['step']}: {key} " + ", ".join(parts)

    # --------------------------------------------------------------------------------------------- loop

    @property
    def total(self) -> int:
        return self.config.offline_steps + self.config.online_steps

    @property
    def done(self) -> int:
        return self.offline_done + self.online_done

    @property
    def _evaluated_now(self) -> bool:
        last = self.history[-1] if self.history else None
        return last is not None and last["phase"] == "online" and last["step"] == self.online_done

    @property
    def finished(self) -> bool:
        """Both phases done and the final policy evaluated."""
        return (
            self.offline_done >= self.config.offline_steps
            and self.online_done >= self.config.online_steps
            and self._evaluated_now
        )

    def step(self) -> list[dict]:
        """One iteration: an offline block or an online chunk (with the evaluations due). Returns the metric
        rows: {"kind": "train"} with the block's mean losses per agent, {"kind": "eval"} per evaluation."""
        cfg, rows = self.config, []
        if self.offline_done < cfg.offline_steps:
            if self.offline_done >= self.next_offline_eval:
                rows.append({"kind": "eval", **self._evaluate("offline", self.offline_done)})
                self.next_offline_eval += cfg.offline_eval_every
            # a block ends where the next evaluation is due, so the offline curve has the asked resolution
            end = min(self.offline_done + cfg.offline_block, cfg.offline_steps, self.next_offline_eval)
            n = end - self.offline_done
            metrics = self._train(n, 1.0)
            self.offline_done += n
            return [*rows, {"kind": "train", "phase": "offline", "step": self.offline_done, **metrics}]
        if self.online_done == 0 and self.switch_probe is None:
            self.switch_probe = {
                k: np.asarray(v).tolist()
                for k, v in fetch(cql.calibration_probe(self.states, self.probe, cfg.agent)).items()
            }
            rows.append({"kind": "probe", "step": 0, **self.switch_probe})
        at_end = self.online_done >= cfg.online_steps
        if (self.online_done >= self.next_online_eval or at_end) and not self._evaluated_now:
            rows.append({"kind": "eval", **self._evaluate("online", self.online_done)})
            while self.next_online_eval <= self.online_done:
                self.next_online_eval = next_online_eval(cfg, self.next_online_eval)
        if at_end:
            return rows
        if self.on_device:
            return rows + self._device_chunks()
        with self.online_watch.time(cfg.chunk):
            traj = self.runner.collect(self.states.params["actor"], self._next_key(), cfg.chunk)
            self.pending, self.online = self._absorb(self.pending, self.online, traj)
            warm = int(np.min(fetch(self.online.size))) >= cfg.online_warmup
            metrics = self._train(cfg.chunk * cfg.utd, cfg.mixing if warm else 1.0)
        self.online_done += cfg.chunk
        return [*rows, {"kind": "train", "phase": "online", "step": self.online_done, **metrics}]

    def _device_chunks(self) -> list[dict]:
        """The chunks up to the next evaluation (at most an offline block's worth of updates) in one
        jitted call: the same chunks, in the same order and with the same keys, as the host loop's."""
        cfg, runner = self.config, self.runner
        due = min(self.next_online_eval, cfg.online_steps) - self.online_done
        most = max(1, cfg.offline_block // (cfg.chunk * cfg.utd))
        num = min(most, max(1, math.ceil(due / cfg.chunk)))
        carry = (self.states, self.online, self.pending, runner.env_state, runner.obs, self.key)
        with self.online_watch.time(num * cfg.chunk):
            carry, metrics = self._segment(num, self.offline, *carry)
            metrics = fetch(metrics)
        rows = []
        for c in range(num):
            chunk_metrics = {k: v[c] for k, v in metrics.items()}
            self._check(chunk_metrics, f"online step {self.online_done + c * cfg.chunk}")
            step = self.online_done + (c + 1) * cfg.chunk
            row = {k: np.asarray(v).tolist() for k, v in chunk_metrics.items()}
            rows.append({"kind": "train", "phase": "online", "step": step, **row})
        self.states, self.online, self.pending, runner.env_state, runner.obs, self.key = carry
        self.online_done += num * cfg.chunk
        return rows

    def note(self) -> str:
        return self._eval_note(self.history[-1]) if self.history else ""

    # ------------------------------------------------------------------------------------------ results

    def curves(self, phase: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps, success (evals x agents), return (evals x agents)) for one phase."""
        rows = [r for r in self.history if r["phase"] == phase]
        return (
            np.array([r["step"] for r in rows]),
            np.array([r["success"] for r in rows]),
            np.array([r["return"] for r in rows]),
        )

    def results(self) -> dict:
        """Per-agent metrics and curves (README, "Cal-QL"). On dense-reward tasks (no success to speak of)
        the rows report returns only, and the dip is measured on the return."""
        steps, success, returns = self.curves("online")
        sparse = self.spec.sparse
        score = success if sparse else returns
        per_agent = []
        for j, label in enumerate(self.agent_labels):
            row = {"agent": label, "method": label.split("/")[0], "final_return": float(returns[-1, j])}
            row |= {"final_success": float(success[-1, j])} if sparse else {}
            if len(steps) and steps[0] == 0:
                row["return_at_switch"] = float(returns[0, j])
                row |= {"success_at_switch": float(success[0, j])} if sparse else {}
                row["dip_depth"] = dip_depth(steps, score[:, j], self.config.online_steps)
                if sparse and len(steps) > 1:
                    row["cumulative_regret"] = cumulative_regret(steps, success[:, j])
            if self.switch_probe is not None:
                for key in ("q_minus_mc", "q_pi_minus_mc", "bound_rate"):
                    if key in self.switch_probe:
                        row[f"{key}_at_switch"] = self.switch_probe[key][j]
            per_agent.append(row)
        off_steps, off_success, off_returns = self.curves("offline")
        online_rows = [r for r in self.history if r["phase"] == "online"]
        probes = {
            k: np.array([r[k] for r in online_rows]).T.tolist()
            for k in PROBE_CURVES
            if online_rows and all(k in r for r in online_rows)
        }
        return {
            "agents": per_agent,
            "curves": {
                "online": {
                    "steps": steps.tolist(),
                    "success": success.T.tolist(),
                    "return": returns.T.tolist(),
                    **probes,
                },
                "offline": {
                    "steps": off_steps.tolist(),
                    "success": off_success.T.tolist(),
                    "return": off_returns.T.tolist(),
                },
                "labels": self.agent_labels,
            },
        }

    @property
    def updates_per_s(self) -> float:
        """Gradient updates per second of each agent (all agents train together in one vmapped call), over
        the updates this process ran, compilation excluded."""
        return self.update_watch.rate

    # -------------------------------------------------------------------------------------- persistence

    _COUNTERS = ("offline_done", "online_done", "next_offline_eval", "next_online_eval")

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = (
            store.flatten(fetch(self.states), "agents")
            | store.flatten(fetch(self.online), "online")
            | {"key": np.asarray(self.key)}
            | {f"runner/{k}": v for k, v in self.runner.snapshot().items()}
            | store.flatten(fetch(self.pending), "pending")
        )
        meta = {name: getattr(self, name) for name in self._COUNTERS}
        return arrays, meta | {"history": self.history, "switch_probe": self.switch_probe}

    def restore(self, stored: store.Stored) -> None:
        """The state of a checkpoint written by this configuration (bit-identical continuation)."""
        meta, source = stored.only("agents", "online", "key", "runner", "pending").meta, str(stored.path)
        if not all(isinstance(meta.get(name), int) for name in self._COUNTERS):
            raise store.StoreError(f"{source}: the checkpoint lacks the trainer's counters")
        if not isinstance(meta.get("history"), list):
            raise store.StoreError(f"{source}: the checkpoint lacks the evaluation history")
        template = {"agents": self.states, "online": self.online, "pending": self.pending, "key": self.key}
        arrays = {k: v for k, v in stored.arrays.items() if k.split("/")[0] in template}
        restored = store.restore(template, arrays, source)
        lengths = np.asarray(restored["pending"].length)
        if ((lengths < 0) | (lengths >= self.spec.horizon)).any():
            raise store.StoreError(f"{source}: a pending episode's length is out of range")
        self.states, self.online, self.pending = place(
            (restored["agents"], restored["online"], restored["pending"]), self.mesh
        )
        self.key = jnp.asarray(restored["key"])
        self.runner.restore(stored.group("runner"), source)
        self._place_runner()
        for name in self._COUNTERS:
            setattr(self, name, meta[name])
        self.history, self.switch_probe = meta["history"], meta.get("switch_probe")


def dataset_record(path: str | os.PathLike, run_dir: str | os.PathLike) -> dict[str, str]:
    """The dataset's `file_record`, with the path relative to the run directory when it lies inside it (so
    the directory can be moved)."""
    record = file_record(path)
    where, home = Path(record["path"]), Path(run_dir).resolve()
    if where.is_relative_to(home):
        record["path"] = str(where.relative_to(home))
    return record


def load_run(
    run_dir: str | os.PathLike,
    restore: bool = True,
    offline_steps: int | None = None,
    online_steps: int | None = None,
    devices: Devices = None,
) -> Finetuner:
    """The trainer of a `rewire calql train` run directory: its config, its dataset (checked against the
    recorded sha256) and, with `restore`, the state of its last checkpoint. `offline_steps` and
    `online_steps` extend the run (config.json records the new budgets); neither can shrink, and the
    offline phase cannot grow once the online phase has begun."""
    run_dir = Path(run_dir)
    record = read_run_record(run_dir)
    config = config_from_json(FinetuneConfig, record["config"], f"{run_dir}/config.json: config")
    budgets = {"offline_steps": offline_steps, "online_steps": online_steps}
    extended = {k: v for k, v in budgets.items() if v is not None and v != getattr(config, k)}
    for name, value in extended.items():
        if value < getattr(config, name):
            flag = "--" + name.replace("_", "-")
            raise ValueError(
                f"{flag} {value}: a resumed run can only be extended (it has {getattr(config, name)})"
            )
    checkpoint = run_dir / CHECKPOINT
    if "offline_steps" in extended and checkpoint.exists():
        saved = read_checkpoint(checkpoint, Finetuner.kind)[0].meta
        if saved.get("online_done") or saved.get("switch_probe") is not None:
            raise ValueError(
                f"--offline-steps {offline_steps}: {run_dir} has begun its online phase, so its offline "
                "phase cannot grow"
            )
    if extended:
        config = dataclasses.replace(config, **extended)
    source = record.get("dataset")
    if not isinstance(source, dict) or not {"path", "sha256"} <= set(source):
        raise ValueError(f"{run_dir}/config.json: no dataset record (path and sha256)")
    path = run_dir / source["path"]
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: its dataset {path} is not there")
    if file_record(path)["sha256"] != source["sha256"]:
        raise ValueError(f"{path}: not the dataset {run_dir} was trained on (its sha256 differs)")
    trainer = Finetuner(config, load_dataset(path, make_spec(config.env_id)), devices=devices)
    if extended:
        write_json(run_dir / RECORD, record | {"config": trainer.config})
    if restore:
        if not checkpoint.exists():
            raise FileNotFoundError(f"{run_dir}: no checkpoint ({CHECKPOINT}) there")
        trainer.restore(read_checkpoint(checkpoint, Finetuner.kind)[0])
    return trainer
