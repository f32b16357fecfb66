"""Offline pre-training, then online fine-tuning, for a stack of agents (methods x seeds) in one process.

The algorithm lives in `rewire.finetune.cql` (pure, jitted); this module only orchestrates: data in,
collection, buffer inserts of finished episodes, evaluation, checkpoints and timing.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rewire.buffer import Buffer, Transition, buffer_add, buffer_from_transitions, buffer_init
from rewire.checkpoint import load_checkpoint, save_checkpoint
from rewire.data.episodes import (
    ACTION_CLIP,
    EpisodeDataset,
    episodes_to_transitions,
    label_rewards,
    validate_episodes,
)
from rewire.envs import EnvSpec, make_spec
from rewire.finetune import cql
from rewire.finetune.metrics import cumulative_regret, dip_depth
from rewire.progress import Bar
from rewire.rollout import EpisodeAssembler, make_runner

METHODS: dict[str, bool] = {"cql": False, "calql": True}  # method -> Cal-QL calibration flag


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
    offline_eval_every: int = 2_500
    offline_block: int = 500  # fused updates per jitted call
    online_capacity: int = 100_000
    probe_size: int = 2_048

    def validate(self) -> None:
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
        if self.offline_steps < 0 or self.online_steps < 0:
            raise ValueError("offline_steps and online_steps must be >= 0")
        if not 0.0 <= self.mixing <= 1.0:
            raise ValueError(f"mixing must lie in [0, 1], got {self.mixing}")

    def scales(self, spec: EnvSpec) -> tuple[float, float]:
        scale = self.reward_scale if self.reward_scale is not None else (10.0 if spec.sparse else 1.0)
        bias = self.reward_bias if self.reward_bias is not None else (-5.0 if spec.sparse else 0.0)
        return scale, bias


class Finetuner:
    """Holds the full training state; `run` advances it, `state_dict`/`from_state_dict` resume it exactly."""

    def __init__(self, config: FinetuneConfig, dataset: EpisodeDataset):
        config.validate()
        self.spec = make_spec(config.env_id)
        validate_episodes(Path(f"<dataset {dataset.env_id}>"), dataset.episodes, self.spec)
        self.config = dataclasses.replace(
            config,
            agent=dataclasses.replace(config.agent, obs_dim=self.spec.obs_dim, act_dim=self.spec.act_dim),
        )
        self.scale, self.bias = self.config.scales(self.spec)
        data = episodes_to_transitions(
            dataset.episodes, self.spec, self.config.agent.discount, self.scale, self.bias
        )
        self.offline = buffer_from_transitions(data)
        n = data.reward.shape[0]
        probe_idx = np.random.default_rng(config.seed).choice(n, min(n, config.probe_size), replace=False)
        self.probe = jax.tree.map(lambda x: jnp.asarray(x[probe_idx]), data)

        self.flags = np.array([METHODS[m] for m in config.methods for _ in range(config.seeds)])
        self.agent_labels = [f"{m}/seed{s}" for m in config.methods for s in range(config.seeds)]
        root = jax.random.PRNGKey(config.seed)
        # Seed i of every method starts from the same initialisation: a paired comparison.
        seed_keys = jax.random.split(jax.random.fold_in(root, 0), config.seeds)
        keys = jnp.concatenate([seed_keys] * len(config.methods))
        self.states = jax.vmap(lambda k, f: cql.init(k, self.config.agent, f))(keys, jnp.asarray(self.flags))
        num = len(self.flags)
        cap = max(config.online_capacity, config.chunk + self.spec.horizon)
        self.online = jax.vmap(lambda _: buffer_init(self.spec.obs_dim, self.spec.act_dim, cap))(
            jnp.arange(num)
        )
        self.runner = make_runner(self.spec, self.act_fn, num, jax.random.fold_in(root, 1))
        self.assembler = EpisodeAssembler(num)
        self.key = jax.random.fold_in(root, 2)
        self.offline_done = 0
        self.online_done = 0
        self.next_offline_eval = 0
        self.next_online_eval = 0
        self.history: list[dict] = []
        self.switch_probe: dict | None = None
        self.train_metrics: list[dict] = []
        self.update_time = 0.0
        self.updates_timed = 0
        self._compiled: set[tuple[int, float]] = set()
        self._add = jax.jit(jax.vmap(buffer_add))

    # ------------------------------------------------------------------------------------------- pieces

    def act_fn(self, actor_params: Any, obs: jax.Array, key: jax.Array, deterministic: bool) -> jax.Array:
        return cql.act(self.config.agent, actor_params, obs, key, deterministic)

    def _next_key(self) -> jax.Array:
        self.key, k = jax.random.split(self.key)
        return k

    def _train(self, num_steps: int, mixing: float) -> dict:
        start = time.perf_counter()
        self.states, metrics = cql.train_steps(
            self.states, self.offline, self.online, self.config.agent, num_steps, mixing
        )
        metrics = jax.device_get(metrics)
        elapsed = time.perf_counter() - start
        signature = (num_steps, mixing)
        if signature in self._compiled:  # the first call of each shape includes compilation
            self.update_time += elapsed
            self.updates_timed += num_steps
        self._compiled.add(signature)
        return {k: np.asarray(v).tolist() for k, v in metrics.items()}

    def _evaluate(self, phase: str, step: int) -> None:
        res = self.runner.evaluate(self.states.params["actor"], self._next_key(), self.config.eval_episodes)
        record = {
            "phase": phase,
            "step": int(step),
            "success": res["success"].mean(1).tolist(),
            "return": res["return"].mean(1).tolist(),
        }
        self.history.append(record)

    def _insert(self, finished: list[list[dict[str, np.ndarray]]]) -> None:
        length = self.config.chunk + self.spec.horizon
        num = len(finished)
        items = {
            f: np.zeros((num, length) + shape, np.float32)
            for f, shape in (
                ("obs", (self.spec.obs_dim,)),
                ("action", (self.spec.act_dim,)),
                ("reward", ()),
                ("next_obs", (self.spec.obs_dim,)),
                ("terminal", ()),
                ("mc_return", ()),
            )
        }
        counts = np.zeros(num, np.int32)
        gamma = self.config.agent.discount
        for i, episodes in enumerate(finished):
            for ep in episodes:
                rewards, returns = label_rewards(
                    ep["reward"], ep["terminated"], self.spec, gamma, self.scale, self.bias
                )
                rows = slice(counts[i], counts[i] + len(rewards))
                items["obs"][i, rows] = ep["obs"]
                items["action"][i, rows] = np.clip(ep["action"], -ACTION_CLIP, ACTION_CLIP)
                items["reward"][i, rows] = rewards
                items["next_obs"][i, rows] = ep["next_obs"]
                items["terminal"][i, rows] = ep["terminated"]
                items["mc_return"][i, rows] = returns
                counts[i] += len(rewards)
        if counts.any():
            self.online = self._add(
                self.online, Transition(**{k: jnp.asarray(v) for k, v in items.items()}), jnp.asarray(counts)
            )

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
    def total_steps(self) -> int:
        return self.config.offline_steps + self.config.online_steps

    @property
    def done_steps(self) -> int:
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

    def step(self) -> int:
        """One iteration: an offline block or an online chunk. Returns the progress made (steps)."""
        cfg = self.config
        if self.offline_done < cfg.offline_steps:
            if self.offline_done >= self.next_offline_eval:
                self._evaluate("offline", self.offline_done)
                self.next_offline_eval += cfg.offline_eval_every
            n = min(cfg.offline_block, cfg.offline_steps - self.offline_done)
            self.train_metrics.append(
                {"phase": "offline", "step": self.offline_done + n, **self._train(n, 1.0)}
            )
            self.offline_done += n
            return n
        if self.online_done == 0 and self.switch_probe is None:
            self.switch_probe = {
                k: np.asarray(v).tolist()
                for k, v in cql.calibration_probe(self.states, self.probe, cfg.agent).items()
            }
        at_end = self.online_done >= cfg.online_steps
        if (self.online_done >= self.next_online_eval or at_end) and not self._evaluated_now:
            self._evaluate("online", self.online_done)
            while self.next_online_eval <= self.online_done:
                self.next_online_eval += cfg.eval_every
        if at_end:
            return 0
        traj = self.runner.collect(self.states.params["actor"], self._next_key(), cfg.chunk)
        self._insert(self.assembler.add(traj))
        warm = int(np.min(np.asarray(self.online.size))) >= cfg.online_warmup
        metrics = self._train(cfg.chunk * cfg.utd, cfg.mixing if warm else 1.0)
        self.train_metrics.append({"phase": "online", "step": self.online_done + cfg.chunk, **metrics})
        self.online_done += cfg.chunk
        return cfg.chunk

    def run(
        self,
        bar: Bar | None = None,
        max_iterations: int | None = None,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 20,
    ) -> None:
        """Advance until done (or `max_iterations`), checkpointing every `checkpoint_every` iterations."""
        bar = bar or Bar()
        it = 0
        while not self.finished and (max_iterations is None or it < max_iterations):
            before = len(self.history)
            steps = self.step()
            it += 1
            bar.advance(steps, self._eval_note(self.history[-1]) if len(self.history) > before else None)
            if checkpoint is not None and it % checkpoint_every == 0:
                save_checkpoint(checkpoint, self.state_dict())
        if checkpoint is not None:
            save_checkpoint(checkpoint, self.state_dict())

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
        """Per-agent metrics and curves (method note, 4.4)."""
        steps, success, returns = self.curves("online")
        score = success if self.spec.sparse else returns
        per_agent = []
        for j, label in enumerate(self.agent_labels):
            row = {
                "agent": label,
                "method": label.split("/")[0],
                "final_success": float(success[-1, j]),
                "final_return": float(returns[-1, j]),
                "updates_per_s": self.updates_per_s,
            }
            if len(steps) and steps[0] == 0:
                row["success_at_switch"] = float(success[0, j])
                row["return_at_switch"] = float(returns[0, j])
                row["dip_depth"] = dip_depth(steps, score[:, j], self.config.online_steps)
                if self.spec.sparse and len(steps) > 1:
                    row["cumulative_regret"] = cumulative_regret(steps, success[:, j])
            if self.switch_probe is not None:
                row["q_minus_mc_at_switch"] = self.switch_probe["q_minus_mc"][j]
                row["bound_rate_at_switch"] = self.switch_probe["bound_rate"][j]
            per_agent.append(row)
        off_steps, off_success, off_returns = self.curves("offline")
        return {
            "agents": per_agent,
            "curves": {
                "online": {
                    "steps": steps.tolist(),
                    "success": success.T.tolist(),
                    "return": returns.T.tolist(),
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
        """Gradient updates per second of each agent (all agents train together in one vmapped call),
        compilation excluded."""
        return self.updates_timed / self.update_time if self.update_time > 0 else float("nan")

    # -------------------------------------------------------------------------------------- persistence

    _FIELDS = (
        "states",
        "online",
        "key",
        "offline_done",
        "online_done",
        "next_offline_eval",
        "next_online_eval",
        "history",
        "switch_probe",
        "train_metrics",
        "update_time",
        "updates_timed",
    )

    def state_dict(self) -> dict:
        state = {name: getattr(self, name) for name in self._FIELDS}
        state.update(
            config=self.config,
            offline=self.offline,
            probe=self.probe,
            runner=self.runner.state_dict(),
            pending=self.assembler.pending,
        )
        return jax.device_get(state)

    @classmethod
    def from_state_dict(cls, state: dict) -> Finetuner:
        self = cls.__new__(cls)
        config: FinetuneConfig = state["config"]
        self.spec = make_spec(config.env_id)
        self.config = config
        self.scale, self.bias = config.scales(self.spec)
        to_dev = partial(jax.tree.map, jnp.asarray)
        self.offline: Buffer = to_dev(state["offline"])
        self.probe = to_dev(state["probe"])
        self.flags = np.array([METHODS[m] for m in config.methods for _ in range(config.seeds)])
        self.agent_labels = [f"{m}/seed{s}" for m in config.methods for s in range(config.seeds)]
        for name in cls._FIELDS:
            value = state[name]
            setattr(self, name, to_dev(value) if name in ("states", "online", "key") else value)
        self.runner = make_runner(self.spec, self.act_fn, len(self.flags), jax.random.PRNGKey(0))
        self.runner.load_state_dict(state["runner"])
        self.assembler = EpisodeAssembler(len(self.flags))
        self.assembler.pending = state["pending"]
        self._compiled = set()  # this process compiles afresh: its first calls are not timed
        self._add = jax.jit(jax.vmap(buffer_add))
        return self

    @classmethod
    def resume(cls, path: str | Path) -> Finetuner:
        return cls.from_state_dict(load_checkpoint(path))
