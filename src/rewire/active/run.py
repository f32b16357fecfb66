"""The AMF shell: (setting, seed, selector) combinations of one configuration run side by side (one vmapped,
jitted round for all of them), with a progress bar, a history, and a checkpoint after every round, so an
interrupted run resumes exactly where it stopped. Everything runs in float64 (Gaussian conditioning)."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rewire.active.amf import AMF, AMFConfig, config_dict, config_from_dict, selector_id
from rewire.checkpoint import load_checkpoint, save_checkpoint
from rewire.envs.multitask import pretraining_demo_tasks
from rewire.progress import progress_bar

THRESHOLD = 0.9


class NonFiniteKernel(ValueError):
    """The posterior covariance over the proxy inputs was not finite (diverged states or bad settings)."""


def demos_to(threshold: float, demos: list[int], success: list[float]) -> int | None:
    """The first number of demonstrations at which `success` reaches `threshold` (None: never)."""
    return next((d for d, s in zip(demos, success, strict=True) if s >= threshold - 1e-9), None)


class AMFRun:
    """Runs every (setting, seed, selector) of `config` together; `run()` then `results()`."""

    def __init__(
        self,
        config: AMFConfig,
        settings: list[str],
        seeds: list[int],
        selectors: list[str],
        checkpoint: str | os.PathLike | None = None,
        saved: dict | None = None,
    ):
        """`saved` (from `resume`) restores the state and history instead of pretraining afresh."""
        ids = [selector_id(name) for name in selectors]
        if not (settings and seeds and selectors):
            raise ValueError("need at least one setting, seed and selector")
        self.amf = AMF(config)
        self.config, self.settings, self.seeds, self.selectors = config, settings, seeds, selectors
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.labels = [(t, s, m) for t in settings for s in seeds for m in selectors]
        self._round = jax.jit(jax.vmap(self.amf.round))
        self._evaluate = jax.jit(jax.vmap(self.amf.evaluate))
        if saved is not None:
            self.state, self.history = saved["state"], saved["history"]
            return
        with jax.enable_x64(True):
            pairs = [(t, s) for t in settings for s in seeds]
            key_data = jnp.stack([jax.random.key_data(jax.random.key(s)) for _, s in pairs])
            pre = jnp.stack([jnp.asarray(pretraining_demo_tasks(self.amf.env, t)) for t, _ in pairs])
            params = self.amf.model.init_params(self.amf.param_keys(key_data))
            state = jax.jit(jax.vmap(self.amf.init))(key_data, pre, params)
            state = jax.tree.map(lambda x: jnp.repeat(x, len(selectors), axis=0), state)
            state["selector"] = jnp.tile(jnp.asarray(ids, jnp.int32), len(pairs))
            self.state = state
            success = np.asarray(self._evaluate(state))
        self.history: dict[str, list] = {"success": [success], "tasks": [], "scores": []}

    @property
    def round(self) -> int:
        return len(self.history["tasks"])

    @property
    def done(self) -> bool:
        return self.round >= self.config.rounds

    def step(self) -> None:
        """One round for every run; raises NonFiniteKernel (state unchanged) if a covariance is not finite."""
        with jax.enable_x64(True):
            state, metrics = self._round(self.state)
            metrics = jax.tree.map(np.asarray, metrics)
        if not metrics["finite"].all():
            bad = [self.labels[i] for i in np.flatnonzero(~metrics["finite"])]
            raise NonFiniteKernel(
                f"round {self.round + 1}: the posterior covariance is not finite for runs {bad} "
                "(setting, seed, selector); check the kernel settings and that the policy's states stay "
                "finite"
            )
        self.state = state
        for name in ("success", "tasks", "scores"):
            self.history[name].append(metrics[name])
        if self.checkpoint is not None:
            self.save(self.checkpoint)

    def run(self, quiet: bool = False) -> AMFRun:
        with progress_bar("AMF rounds", self.config.rounds, quiet) as bar:
            bar.advance(self.round)
            while not self.done:
                self.step()
                bar.advance(1, note=self._note())
        return self

    def _note(self) -> str:
        mean = np.asarray(self.history["success"][-1])[:, np.asarray(self.amf.targets)].mean(-1)
        by = {
            m: np.median([v for v, (_, _, n) in zip(mean, self.labels, strict=True) if n == m])
            for m in self.selectors
        }
        return " ".join(f"{m} {v:.2f}" for m, v in by.items())

    # -- persistence ------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        return save_checkpoint(
            path,
            {
                "config": config_dict(self.config),
                "settings": self.settings,
                "seeds": self.seeds,
                "selectors": self.selectors,
                "state": self.state,
                "history": self.history,
            },
        )

    @classmethod
    def resume(cls, path: str | os.PathLike) -> AMFRun:
        """Rebuild a run from its checkpoint and continue at the next round (bit-identical to no stop)."""
        saved = load_checkpoint(path)
        config = config_from_dict(saved["config"])
        return cls(config, saved["settings"], saved["seeds"], saved["selectors"], path, saved)

    # -- results ----------------------------------------------------------------------------------------
    def results(self) -> dict:
        """Per setting and selector: demos spent, median (over seeds) mean success, per-seed curves, the
        tasks each seed asked for, the share of demos spent on tasks pretraining never saw, demos to 0.9."""
        demos = [r * self.config.batch for r in range(self.round + 1)]
        success = np.stack(self.history["success"])  # (rounds + 1, runs, C)
        tasks = (
            np.concatenate(self.history["tasks"], axis=1) if self.round else np.zeros((len(self.labels), 0))
        )
        out: dict = {}
        for setting in self.settings:
            seen = set(pretraining_demo_tasks(self.amf.env, setting).tolist())
            out[setting] = {}
            for selector in self.selectors:
                idx = [i for i, (t, _, m) in enumerate(self.labels) if t == setting and m == selector]
                per_seed = success[:, idx][..., np.asarray(self.amf.targets)].mean(-1).T  # (seeds, rounds+1)
                median = np.median(per_seed, 0).tolist()
                asked = tasks[idx]
                out[setting][selector] = {
                    "demos": demos,
                    "success_median": median,
                    f"demos_to_{THRESHOLD}": demos_to(THRESHOLD, demos, median),
                    "success_per_seed": per_seed.tolist(),
                    "tasks_per_seed": asked.tolist(),
                    "unseen_task_fraction": float(np.mean([t not in seen for t in asked.ravel()]))
                    if asked.size
                    else None,
                    "success_per_task_final": success[-1, idx].mean(0).tolist(),
                }
        return out
