"""The generation loop's task around a jitted ES generation: history and exact resume (`rewire.loop` runs it).

Shared by HaDES, its neuroevolution baseline and digits distillation. The key of generation g is
fold_in(seed key, g), so a run resumed from a checkpoint at generation g continues bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from rewire import store
from rewire.es import ESConfig, ScoreFn, make_es, make_generation


class NonFiniteFitness(ValueError):
    """A candidate's fitness was NaN or infinite; the ES state is left at the generation before it."""


class Evolution:
    """Runs an ES over a solution pytree for `generations`; `score_fn` is maximised. The state is the evosax
    state plus the per-generation history (population mean/max score and the means of the score's
    diagnostics). A `rewire.loop.Resumable`."""

    kind = "rewire.hades/evolution"
    unit = "generations"

    def __init__(
        self,
        es_config: ESConfig,
        mean: Any,
        score_fn: ScoreFn,
        num_inits: int,
        seed: int,
        fixed_init_key: jax.Array | None = None,
        init_fn: Callable[[jax.Array], Any] | None = None,
        generations: int = 0,
        mesh: Mesh | None = None,
    ):
        """`mesh`: the population is split over its devices (`rewire.mesh`)."""
        self.es, self.es_params = make_es(es_config, mean)
        self.generations = generations
        init_key, self.key = jax.random.split(jax.random.key(seed))
        state = self.es.init(init_key, mean, self.es_params)
        self._generation = jax.jit(
            make_generation(self.es, self.es_params, score_fn, num_inits, fixed_init_key, init_fn, mesh)
        )
        # Give the initial state the exact dtypes a generation returns (evosax starts with weakly typed
        # scalars), so the generation compiles once rather than twice.
        out = jax.eval_shape(self._generation, state, self.key)[0]
        self.initial = jax.tree.map(lambda x, s: jnp.asarray(x, s.dtype), state, out)
        self.init()

    def init(self) -> None:
        self.state = self.initial
        self.history: dict[str, list[float]] = {}

    @property
    def generation(self) -> int:
        return int(self.state.generation_counter)

    @property
    def total(self) -> int:
        return self.generations

    @property
    def done(self) -> int:
        return self.generation

    @property
    def finished(self) -> bool:
        return self.generation >= self.generations

    def mean(self) -> Any:
        """The ES mean as a solution pytree (what HaDES releases, not the best noisy candidate)."""
        return self.es.get_mean(self.state)

    def step(self) -> list[dict]:
        """One generation; raises `NonFiniteFitness` (state unchanged) if any fitness is not finite."""
        g = self.generation
        state, metrics = self._generation(self.state, jax.random.fold_in(self.key, g))
        score = np.asarray(metrics["score"])
        if not np.isfinite(score).all():
            bad = np.flatnonzero(~np.isfinite(score)).tolist()
            raise NonFiniteFitness(f"non-finite fitness at generation {g} for candidates {bad[:10]}")
        self.state = state
        row = {"score_mean": float(score.mean()), "score_max": float(score.max())}
        row |= {f"{k}_mean": float(np.mean(v)) for k, v in metrics.items() if k != "score"}
        for k, v in row.items():
            self.history.setdefault(k, []).append(v)
        return [{"generation": g + 1, **row}]

    def note(self) -> str:
        if not self.history:
            return ""
        mean, top = self.history["score_mean"][-1], self.history["score_max"][-1]
        return f"gen {self.generation}: mean {mean:.4g} max {top:.4g}"

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict]:
        history = {f"history/{k}": np.asarray(v, np.float64) for k, v in self.history.items()}
        return store.flatten(self.state, "es") | history, {"history": list(self.history)}

    def restore(self, stored: store.Stored) -> None:
        stored.only("es", "history")
        names = stored.meta.get("history")
        if not isinstance(names, list):
            raise store.StoreError(f"{stored.path}: no history record")
        history = {k: stored.arrays.get(f"history/{k}") for k in names}
        if any(v is None or v.ndim != 1 for v in history.values()):
            raise store.StoreError(f"{stored.path}: the history arrays do not match their record")
        self.state = jax.tree.map(jnp.asarray, store.restore(self.initial, stored.group("es"), stored.path))
        self.history = {k: v.tolist() for k, v in history.items()}
        if any(len(v) != self.generation for v in self.history.values()):
            raise store.StoreError(f"{stored.path}: the history does not cover generation {self.generation}")
