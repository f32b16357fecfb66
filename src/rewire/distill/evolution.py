"""The generation loop around a jitted ES generation: progress, history, checkpoints and exact resume.

Shared by HaDES, its neuroevolution baseline and digits distillation. The key of generation g is
fold_in(seed key, g), so a run resumed from a checkpoint at generation g continues bit for bit.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rewire.checkpoint import save_checkpoint
from rewire.es import ESConfig, ScoreFn, make_es, make_generation
from rewire.progress import progress_bar


class NonFiniteFitness(ValueError):
    """A candidate's fitness was NaN or infinite; the ES state is left at the generation before it."""


class Evolution:
    """Runs an ES over a solution pytree; `score_fn` is maximised. The state is the evosax state plus the
    per-generation history (population mean/max score and the means of the score's diagnostics)."""

    def __init__(
        self,
        es_config: ESConfig,
        mean: Any,
        score_fn: ScoreFn,
        num_inits: int,
        seed: int,
        fixed_init_key: jax.Array | None = None,
        init_fn: Callable[[jax.Array], Any] | None = None,
    ):
        self.es, self.es_params = make_es(es_config, mean)
        init_key, self.key = jax.random.split(jax.random.key(seed))
        state = self.es.init(init_key, mean, self.es_params)
        self._generation = jax.jit(
            make_generation(self.es, self.es_params, score_fn, num_inits, fixed_init_key, init_fn)
        )
        # Give the initial state the exact dtypes a generation returns (evosax starts with weakly typed
        # scalars), so the generation compiles once rather than twice.
        out = jax.eval_shape(self._generation, state, self.key)[0]
        self.state = jax.tree.map(lambda x, s: jnp.asarray(x, s.dtype), state, out)
        self.history: dict[str, list[float]] = {}
        self.meta: dict = {}  # saved with every checkpoint (config, seed, ...), so a run can be rebuilt
        self.seconds: list[float] = []  # wall time of each generation run in this process

    @property
    def generations_per_s(self) -> float:
        """Speed after the first generation this process ran (that one includes compilation)."""
        steady = self.seconds[1:]
        return len(steady) / sum(steady) if steady else float("nan")

    @property
    def generation(self) -> int:
        return int(self.state.generation_counter)

    def mean(self) -> Any:
        """The ES mean as a solution pytree (what HaDES releases, not the best noisy candidate)."""
        return self.es.get_mean(self.state)

    def step(self) -> dict[str, float]:
        """One generation; raises `NonFiniteFitness` (state unchanged) if any fitness is not finite."""
        g, start = self.generation, time.perf_counter()
        state, metrics = self._generation(self.state, jax.random.fold_in(self.key, g))
        score = np.asarray(metrics["score"])
        self.seconds.append(time.perf_counter() - start)
        if not np.isfinite(score).all():
            bad = np.flatnonzero(~np.isfinite(score)).tolist()
            raise NonFiniteFitness(f"non-finite fitness at generation {g} for candidates {bad[:10]}")
        self.state = state
        row = {"score_mean": float(score.mean()), "score_max": float(score.max())}
        row |= {f"{k}_mean": float(np.mean(v)) for k, v in metrics.items() if k != "score"}
        for k, v in row.items():
            self.history.setdefault(k, []).append(v)
        return row

    def run(
        self,
        generations: int,
        checkpoint: str | os.PathLike | None = None,
        every: int = 25,
        quiet: bool = False,
        description: str = "ES",
    ) -> None:
        """Run until `generations` in total have been done, checkpointing every `every` and at the end."""
        todo = generations - self.generation
        with progress_bar(description, max(todo, 0), quiet) as bar:
            for _ in range(todo):
                row = self.step()
                bar.advance(
                    1, f"gen {self.generation}: mean {row['score_mean']:.4g} max {row['score_max']:.4g}"
                )
                if checkpoint is not None and (
                    self.generation % every == 0 or self.generation == generations
                ):
                    self.save(checkpoint)

    def state_dict(self) -> dict:
        return {"es_state": jax.device_get(self.state), "history": self.history}

    def load_state_dict(self, state: dict) -> None:
        self.state = jax.tree.map(jnp.asarray, state["es_state"])
        self.history = {k: list(v) for k, v in state["history"].items()}

    def save(self, path: str | os.PathLike) -> None:
        save_checkpoint(path, self.state_dict() | self.meta)
