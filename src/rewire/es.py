"""Evolution strategies (evosax 0.3) with the reference settings of HaDES, and a jitted generation step.

evosax 0.3 *minimises*; everything in rewire speaks of a score to *maximise* (a return, minus a loss) and
negates it exactly once, in `make_generation`. The settings below are passed explicitly because evosax 0.3
changed the defaults of the 0.1.x release that the HaDES reference used (see docs in `ESConfig`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import optax
from evosax.algorithms import SNES, Open_ES
from evosax.core.fitness_shaping import identity_fitness_shaping_fn
from jax.sharding import Mesh

from rewire.mesh import constrain, whole

# score_fn(candidate, init, eval_key) -> (score to maximise, dict of scalar diagnostics); `init` is what
# `init_fn(init_key)` returns (the inner learner's initial parameters), or the init key itself.
ScoreFn = Callable[[Any, Any, jax.Array], tuple[jax.Array, dict]]


@dataclass(frozen=True)
class ESConfig:
    """Outer-loop settings.

    `openes`: antithetic sampling, raw (unshaped) fitness, Adam on the mean with beta1 0.99 (the 0.1.x
    defaults the reference ran with), learning rate and sigma decayed each generation down to their floors.
    `snes`: diagonal sigma, rank weights softmax(-T (rank/(P-1) - 0.5)) with temperature T (rank 0 = best),
    mean learning rate 1 and sigma learning rate (3 + ln d) / (5 sqrt d), as in the reference.
    """

    algorithm: str = "snes"
    popsize: int = 64
    sigma: float = 0.5
    lr: float = 0.05  # openes only
    lr_decay: float = 1.0
    lr_floor: float = 0.001
    sigma_decay: float = 1.0
    sigma_floor: float = 0.001
    temperature: float = 20.0  # snes only

    def validate(self) -> None:
        if self.algorithm not in ("openes", "snes"):
            raise ValueError(f"unknown ES {self.algorithm!r}; choose 'openes' or 'snes'")
        if self.popsize < 2 or (self.algorithm == "openes" and self.popsize % 2):
            raise ValueError(f"population {self.popsize}: need >= 2, and even for antithetic OpenES")
        if self.sigma <= 0 or self.lr <= 0:
            raise ValueError("sigma and lr must be positive")


def _decay(value: float, rate: float, floor: float) -> optax.Schedule:
    if rate == 1.0:
        return optax.constant_schedule(value)
    return optax.exponential_decay(value, 1, rate, end_value=floor)


def snes_weights(popsize: int, temperature: float) -> jax.Array:
    """SNES utilities by rank (rank 0 = best): softmax(-T (rank / (P - 1) - 0.5)); they sum to 1."""
    return jax.nn.softmax(-temperature * (jnp.arange(popsize) / (popsize - 1) - 0.5))


def make_es(config: ESConfig, template: Any) -> tuple[Any, Any]:
    """The evosax algorithm and its params for a solution pytree `template`."""
    config.validate()
    if config.algorithm == "openes":
        es = Open_ES(
            config.popsize,
            template,
            use_antithetic_sampling=True,
            optimizer=optax.adam(_decay(config.lr, config.lr_decay, config.lr_floor), b1=0.99, b2=0.999),
            std_schedule=_decay(config.sigma, config.sigma_decay, config.sigma_floor),
            fitness_shaping_fn=identity_fitness_shaping_fn,
        )
        return es, es.default_params
    es = SNES(config.popsize, template)
    params = es.default_params.replace(
        std_init=jnp.asarray(config.sigma), weights=snes_weights(config.popsize, config.temperature)
    )
    return es, params


def make_population_score(
    score_fn: ScoreFn,
    num_inits: int,
    fixed_init_key: jax.Array | None = None,
    init_fn: Callable[[jax.Array], Any] | None = None,
) -> Callable[[Any, jax.Array], tuple[jax.Array, dict]]:
    """`(population, key) -> (score per candidate, diagnostics per candidate and init)`.

    Each candidate is scored with `num_inits` inner initialisations (or the one `fixed_init_key`, HaDES-F);
    init and evaluation keys are shared by the whole population (common random numbers). Population x
    inits is flattened into one vmap axis (much faster than nested vmaps on CPU). The initialisations are
    built once, one after another (`lax.map`), and shared: building them inside the population vmap repeats
    the work P times, and batched orthogonal initialisation can deadlock XLA:CPU (jax 0.10) at some sizes.
    """

    def scores(population, key):
        size = jax.tree.leaves(population)[0].shape[0]
        k_init, k_eval = jax.random.split(key)
        if fixed_init_key is None:
            init_keys = jax.random.split(k_init, num_inits)
        else:
            init_keys = jnp.stack([fixed_init_key] * num_inits)
        eval_keys = jax.random.split(k_eval, num_inits)
        inits = init_keys if init_fn is None else jax.lax.map(init_fn, init_keys)
        # Candidate i with init j sits at flat index i * num_inits + j.
        flat = jax.tree.map(lambda x: jnp.repeat(x, num_inits, axis=0), population)
        which = jnp.arange(size * num_inits) % num_inits
        score, aux = jax.vmap(score_fn)(flat, jax.tree.map(lambda x: x[which], inits), eval_keys[which])
        aux = {k: v.reshape(size, num_inits) for k, v in aux.items()}
        return score.reshape(size, num_inits).mean(axis=1), aux

    return scores


def make_generation(
    es: Any,
    es_params: Any,
    score_fn: ScoreFn,
    num_inits: int,
    fixed_init_key: jax.Array | None = None,
    init_fn: Callable[[jax.Array], Any] | None = None,
    mesh: Mesh | None = None,
) -> Callable[[Any, jax.Array], tuple[Any, dict]]:
    """One generation as a pure function `(es_state, key) -> (next es_state, metrics)`: ask, score the
    population (`make_population_score`, fresh keys each generation), tell. `metrics["score"]` is the
    per-candidate score (mean over inits), checked for finiteness by the caller. With `mesh`, the
    population is split over its devices (the candidates' scoring runs where they sit; evosax's pattern)."""
    scores = make_population_score(score_fn, num_inits, fixed_init_key, init_fn)

    def generation(es_state, key):
        k_ask, k_score, k_tell = jax.random.split(key, 3)
        population, es_state = es.ask(k_ask, es_state, es_params)
        score, aux = scores(constrain(population, mesh), k_score)
        next_state, _ = es.tell(k_tell, population, -score, es_state, es_params)  # evosax minimises
        return whole((next_state, {"score": score} | aux), mesh)

    return generation
