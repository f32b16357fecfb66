"""Evolution strategies: sign convention, sampling, weights, population scoring and exact resume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rewire.es import ESConfig, make_es, make_population_score, snes_weights
from rewire.hades.evolution import Evolution, NonFiniteFitness
from rewire.loop import Loop

TARGET = jnp.array([3.0, -2.0, 0.5])


def toy_score(candidate, init, key):
    """A 'return' maximised at TARGET."""
    return -jnp.sum((candidate["x"] - TARGET) ** 2), {"noise": jax.random.normal(key)}


@pytest.mark.parametrize(
    "config",
    [ESConfig("snes", popsize=16, sigma=1.0), ESConfig("openes", popsize=16, sigma=0.5, lr=0.2)],
)
def test_es_maximises_the_score(config):
    # evosax minimises; rewire negates once. A sign slip would walk away from TARGET.
    evo = Evolution(config, {"x": jnp.zeros(3)}, toy_score, num_inits=1, seed=0, generations=60)
    start = float(jnp.sum((evo.mean()["x"] - TARGET) ** 2))
    Loop(evo, quiet=True).run()
    end = float(jnp.sum((evo.mean()["x"] - TARGET) ** 2))
    assert end < 0.1 * start
    assert evo.history["score_mean"][-1] > evo.history["score_mean"][0]


def test_openes_samples_are_antithetic_and_snes_weights_favour_the_best():
    es, params = make_es(ESConfig("openes", popsize=8, sigma=0.3), {"x": jnp.zeros(3)})
    state = es.init(jax.random.key(0), {"x": jnp.ones(3)}, params)
    pop, _ = es.ask(jax.random.key(1), state, params)
    np.testing.assert_allclose(pop["x"][:4] + pop["x"][4:], 2.0, atol=1e-6)  # x_j + x_{j+P/2} = 2 mu
    w = np.asarray(snes_weights(8, 20.0))
    assert w.sum() == pytest.approx(1.0, abs=1e-6)
    assert np.all(np.diff(w) < 0)  # rank 0 (best) gets the largest weight
    # Hand-computed: softmax(-20 (r/7 - 0.5)) for r = 0 and r = 7.
    z = np.exp(-20 * (np.arange(8) / 7 - 0.5))
    assert w[0] == pytest.approx(z[0] / z.sum(), rel=1e-5)
    assert w[7] == pytest.approx(z[7] / z.sum(), rel=1e-5)


def test_vmapped_population_equals_a_loop_over_members():
    def score(candidate, init, key):  # depends on the candidate, the init and the evaluation key
        return jnp.sum(candidate["x"] * init) + jax.random.normal(key), {"i": init.sum()}

    scores = make_population_score(score, 3, init_fn=lambda k: jax.random.normal(k, (3,)))
    pop = {"x": jax.random.normal(jax.random.key(1), (5, 3))}
    key = jax.random.key(2)
    together, aux = scores(pop, key)
    one_by_one = [scores({"x": pop["x"][i : i + 1]}, key)[0][0] for i in range(5)]
    np.testing.assert_allclose(together, one_by_one, rtol=1e-6)
    # Common random numbers: every candidate saw the same three inits.
    np.testing.assert_allclose(aux["i"], np.broadcast_to(aux["i"][0], (5, 3)))


def test_fixed_init_is_the_same_every_generation_random_inits_are_not():
    def score(candidate, init, key):
        return jnp.sum(init), {}

    fixed = make_population_score(
        score, 1, fixed_init_key=jax.random.key(7), init_fn=lambda k: jax.random.normal(k, (2,))
    )
    rand = make_population_score(score, 1, init_fn=lambda k: jax.random.normal(k, (2,)))
    pop = {"x": jnp.zeros((2, 1))}
    assert fixed(pop, jax.random.key(0))[0][0] == fixed(pop, jax.random.key(1))[0][0]
    assert rand(pop, jax.random.key(0))[0][0] != rand(pop, jax.random.key(1))[0][0]


def test_resume_equals_an_uninterrupted_run(tmp_path):
    config = ESConfig("openes", popsize=8, sigma=0.5, lr=0.1)
    full = Evolution(config, {"x": jnp.zeros(3)}, toy_score, 2, seed=3, generations=6)
    full_loop = Loop(full, tmp_path / "full", every=0, quiet=True)
    full_loop.run()
    part = Evolution(config, {"x": jnp.zeros(3)}, toy_score, 2, seed=3, generations=6)
    Loop(part, tmp_path / "part", every=0, quiet=True).run(max_steps=3)
    fresh = Evolution(config, {"x": jnp.zeros(3)}, toy_score, 2, seed=3, generations=6)
    loop = Loop(fresh, tmp_path / "part", every=0, quiet=True)
    loop.start()
    assert fresh.generation == 3
    loop.run()
    np.testing.assert_array_equal(np.asarray(fresh.state.mean), np.asarray(full.state.mean))
    assert fresh.history == full.history
    metrics = [(tmp_path / d / "metrics.jsonl").read_text() for d in ("full", "part")]
    assert metrics[0] == metrics[1] and len(metrics[0].splitlines()) == 6


def test_non_finite_fitness_is_reported_with_its_generation_and_changes_nothing():
    def score(candidate, init, key):
        return jnp.where(candidate["x"][0] > 0, jnp.nan, 0.0), {}

    evo = Evolution(ESConfig("snes", popsize=8), {"x": jnp.zeros(2)}, score, 1, seed=0)
    before = np.asarray(evo.state.mean)
    with pytest.raises(NonFiniteFitness, match="generation 0"):
        evo.step()
    assert evo.generation == 0
    np.testing.assert_array_equal(np.asarray(evo.state.mean), before)


@pytest.mark.parametrize(
    "config",
    [ESConfig("cma"), ESConfig("openes", popsize=7), ESConfig("snes", popsize=1), ESConfig(sigma=-1.0)],
)
def test_bad_es_settings_raise(config):
    with pytest.raises(ValueError):
        make_es(config, {"x": jnp.zeros(2)})
