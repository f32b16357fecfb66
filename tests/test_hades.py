"""HaDES: inner BC loop, fitness rollouts, datasets on disk, bad inputs, small end-to-end runs."""

import math
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from rewire.cli import app
from rewire.envs.control import make_control
from rewire.es import ESConfig, make_population_score
from rewire.hades.bc import Learner, bc_loss, init_many, initializer, policy_module, train_bc
from rewire.hades.core import (
    HadesConfig,
    bc_targets,
    check_dataset,
    dataset_template,
    default_config,
    evaluate_dataset,
    fit_dataset,
    make_hades_score,
    policy_for,
    random_observations,
    task_for,
)
from rewire.hades.dataset import load_synthetic, save_synthetic
from rewire.hades.run import build_hades, fixed_init_key, save_dataset
from rewire.rollout import control_rollout


def test_inner_bc_reduces_its_loss_and_reproduces_the_labels():
    module = policy_module(Learner(), 2, continuous=False)
    params = module.init(jax.random.key(0), jnp.zeros(4))
    states = jnp.array([[1.0, 0.0, -1.0, 0.5], [-1.0, 0.5, 1.0, -0.5]])
    targets = jax.nn.one_hot(jnp.array([0, 1]), 2)
    trained, losses = train_bc(Learner(steps=64), module, params, states, targets)
    assert losses[0] == pytest.approx(math.log(2), abs=0.02)  # near-uniform logits at init
    assert float(bc_loss(module, trained, states, targets)) < 0.05
    assert jnp.argmax(module.apply(trained, states), -1).tolist() == [0, 1]


def test_gaussian_nll_matches_closed_form():
    module = policy_module(Learner(hidden=(8,)), 1, continuous=True)
    params = module.init(jax.random.key(0), jnp.zeros(2))
    params = jax.tree.map(jnp.zeros_like, params)  # mean 0, log-std 0 everywhere
    loss = bc_loss(module, params, jnp.zeros((3, 2)), jnp.array([[0.0], [1.0], [2.0]]))
    expected = np.mean([0.5 * a**2 + 0.5 * np.log(2 * np.pi) for a in (0.0, 1.0, 2.0)])
    assert float(loss) == pytest.approx(expected, rel=1e-6)


def test_round_robin_labels_use_every_state():
    task = make_control("Acrobot-v1")  # 3 actions; 4 states do not divide evenly
    targets = bc_targets({"states": jnp.zeros((4, 6))}, task)
    assert jnp.argmax(targets, -1).tolist() == [0, 1, 2, 0]


def test_cartpole_always_left_has_a_short_return_and_mean_ignores_unfinished_episodes():
    task = make_control("CartPole-v1")
    out = control_rollout(task, lambda obs, k: jnp.array(0), jax.random.key(0), 4, 200)
    assert 7 <= float(out["first_return"]) <= 12  # pushing one way topples the pole in about 9 steps
    assert float(out["mean_return"]) == pytest.approx(float(out["first_return"]), abs=2.0)
    # Pendulum never ends before 200 steps: a 50-step rollout must score its partial return, not 0.
    pend = make_control("Pendulum-v1")
    short = control_rollout(pend, lambda obs, k: jnp.zeros(1), jax.random.key(0), 2, 50)
    assert int(short["episodes"]) == 0 and float(short["mean_return"]) < -1.0


def test_identical_candidates_get_identical_fitness():
    """Common random numbers: within a generation, candidates share inits and environment noise."""
    config = replace(default_config("CartPole-v1"), size=2)
    task = make_control("CartPole-v1")
    score = make_hades_score(config, task, np.zeros(4), np.ones(4), policy_for(config, task))
    scores = make_population_score(score, 2, init_fn=initializer(policy_for(config, task), task.obs_dim))
    candidate = jax.random.normal(jax.random.key(1), (2, 4))
    values, _ = scores({"states": jnp.stack([candidate, candidate, -candidate])}, jax.random.key(5))
    assert values[0] == values[1]
    other, _ = scores({"states": jnp.stack([candidate, candidate, -candidate])}, jax.random.key(6))
    assert not np.allclose(values, other)  # fresh noise next generation


def test_dataset_round_trip_and_shape_checks(tmp_path):
    task = make_control("Pendulum-v1")
    config = default_config("Pendulum-v1", size=4)
    data = {k: np.asarray(v) + 1.0 for k, v in dataset_template(config, task).items()}
    path = save_synthetic(tmp_path / "d.npz", data, np.zeros(3), np.ones(3), {"env_id": "Pendulum-v1"})
    back, mean, std, meta = load_synthetic(path)
    assert meta["env_id"] == "Pendulum-v1" and set(back) == {"states", "actions"}
    np.testing.assert_array_equal(back["states"], data["states"])
    check_dataset(back, task)
    with pytest.raises(ValueError, match="needs \\(N, 3\\)"):
        check_dataset({"states": np.zeros((4, 5)), "actions": np.zeros((4, 1))}, task)
    with pytest.raises(ValueError, match="actions"):
        check_dataset({"states": np.zeros((4, 3)), "actions": np.zeros((4, 2))}, task)
    with pytest.raises(ValueError, match="discrete"):
        check_dataset({"states": np.zeros((4, 4)), "actions": np.zeros((4, 2))}, make_control("CartPole-v1"))
    with pytest.raises(FileNotFoundError):
        load_synthetic(tmp_path / "missing.npz")


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"env_id": "CartPole-v9"}, "unknown environment"),
        ({"variant": "X"}, "variant"),
        ({"labels": "soft"}, "labels"),
        ({"state_init": "random"}, "state_init"),
        ({"state_features": "some"}, "state_features"),
        ({"size": 0}, "dataset size"),
        ({"learner": Learner(optimizer="rmsprop")}, "optimiser"),
    ],
)
def test_bad_configs_raise(overrides, match):
    with pytest.raises(ValueError, match=match):
        task_for(replace(HadesConfig(), **overrides))


def test_observed_state_init_starts_at_distinct_random_policy_observations():
    config = replace(default_config("CartPole-v1"), size=6, es=ESConfig(popsize=4), state_init="observed")
    run = build_hades(config, 0)
    states = np.asarray(run.evolution.mean()["states"])
    assert states.shape == (6, 4) and len(np.unique(states, axis=0)) == 6
    observed = (
        random_observations(run.task, jax.random.split(jax.random.fold_in(jax.random.key(0), 4))[0])
        - run.obs_mean
    ) / run.obs_std
    assert all(np.isclose(observed, row, atol=1e-5).all(1).any() for row in states)  # each one was seen
    np.testing.assert_array_equal(states, np.asarray(build_hades(config, 0).evolution.mean()["states"]))
    zeros = build_hades(replace(config, state_init="zeros"), 0).evolution.mean()["states"]
    assert not np.any(np.asarray(zeros))  # the reference's start


def test_unknown_architecture_field_raises():
    with pytest.raises(ValueError, match="unknown architecture field"):
        Learner().with_arch("width=32,colour=red")
    assert Learner().with_arch("width=32,depth=3,act=relu").hidden == (32, 32, 32)


def test_cartpole_distillation_learns_and_resumes_exactly(tmp_path):
    """End-to-end: 4 pairs, population 16. Population-mean return rises far above a random policy's
    (about 22), and a run stopped and resumed from its checkpoint matches an uninterrupted one."""
    config = replace(default_config("CartPole-v1"), es=ESConfig(popsize=16), generations=30)
    full = build_hades(config, seed=0)
    full.loop(quiet=True).run()
    hist = full.evolution.history["score_mean"]
    assert hist[0] < 60 and max(hist[-5:]) > 150

    build_hades(config, seed=0).loop(tmp_path / "run", quiet=True, every=0).run(max_steps=12)
    resumed = build_hades(config, seed=0)
    resumed.loop(tmp_path / "run", quiet=True).run()
    assert resumed.evolution.history == full.evolution.history
    np.testing.assert_array_equal(
        np.asarray(resumed.evolution.state.mean), np.asarray(full.evolution.state.mean)
    )

    path = save_dataset(full, tmp_path / "dataset.npz")
    data, mean, std, meta = load_synthetic(path)
    ev = evaluate_dataset(data, full.task, config.learner, mean, std, jax.random.key(0), inits=4, episodes=4)
    assert ev["returns"].shape == (4,) and np.all(ev["bc_loss"] < 0.1)


def test_init_many_gives_distinct_fresh_policies():
    module = policy_module(Learner(), 2, continuous=False)
    params = init_many(module, 4, jax.random.split(jax.random.key(0), 3))
    kernels = params["params"]["MLP_0"]["Dense_0"]["kernel"]
    assert kernels.shape == (3, 4, 64) and not np.allclose(kernels[0], kernels[1])


def test_fixed_init_evaluation_trains_from_the_init_the_fitness_used():
    config = default_config("CartPole-v1", size=2, variant="F", generations=1)
    config = replace(config, learner=replace(config.learner, steps=1))  # one step: the loss shows the init
    run = build_hades(config, seed=3)
    run.loop(None, quiet=True).run()  # one ES update moves the mean off its all-zero start
    fixed = run.evaluate_fixed_init(inits=3)
    fresh = run.evaluate_mean(inits=3)
    assert len(set(fixed["bc_loss"].tolist())) == 1  # one init, so one trained policy
    assert len(set(fresh["bc_loss"].tolist())) == 3
    task, module = run.task, policy_for(config, run.task)
    data = {k: jnp.asarray(v) for k, v in run.evolution.mean().items()}
    params0 = initializer(module, task.obs_dim)(fixed_init_key(3))
    _, losses = fit_dataset(config.learner, module, params0, data, task)
    assert float(losses[-1]) == pytest.approx(float(fixed["bc_loss"][0]), rel=1e-5)
    with pytest.raises(ValueError, match="no fixed init"):
        build_hades(replace(config, variant="R"), seed=3).evaluate_fixed_init()


def test_digits_distillation_improves_on_its_class_mean_start():
    from rewire.hades.digits import DigitsConfig, distill_digits

    config = DigitsConfig(generations=25, es=ESConfig("openes", popsize=16, sigma=0.05, lr=0.01))
    result = distill_digits(config, seed=0, quiet=True)
    assert result["history"]["score_mean"][-1] > result["history"]["score_mean"][0]  # lower train CE
    assert result["images"].shape == (10, 64)
    # fresh classifiers trained on the evolved images beat those trained on the class means they started
    # from (0.926 against 0.900 at seed 0), and one random real image per class (0.717) by far
    assert result["test_accuracy"] > result["baselines"]["class_means"] + 0.01
    assert result["baselines"]["class_means"] > result["baselines"]["random_real"]


def test_cli_distill_evaluate_and_bad_input(tmp_path):
    runner = CliRunner()
    args = ["hades", "distill", "--env", "CartPole-v1", "--size", "2", "--generations", "3", "--popsize", "8"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path), "--quiet"])
    assert res.exit_code == 0, res.output
    import re

    per_init = re.search(r"per init: ([^)]*)\)", " ".join(res.output.split())).group(1)
    assert all(re.fullmatch(r"-?\d+\.\d", value) for value in per_init.split(", ")), per_init  # rounded
    (run_dir,) = list(tmp_path.glob("hades-*"))
    assert {"dataset.npz", "checkpoint.ckpt", "result.json", "config.json", "dataset.png"} <= {
        p.name for p in run_dir.iterdir()
    }
    res = runner.invoke(
        app,
        [
            "hades",
            "evaluate",
            str(run_dir / "dataset.npz"),
            "--arch",
            "width=32",
            "--inits",
            "2",
            "--episodes",
            "2",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "width=32" in res.output
    res = runner.invoke(app, ["hades", "distill", "--env", "NoSuchEnv-v0", "--quiet"])
    assert res.exit_code == 2 and "unknown environment" in res.output
    res = runner.invoke(app, ["hades", "distill", "--state-features", "some", "--quiet"])
    assert res.exit_code == 2 and "unknown state_features 'some'" in res.output
    assert "Traceback" not in res.output


@pytest.mark.slow
def test_brax_hopper_smoke_on_cpu():
    pytest.importorskip("brax")
    config = replace(
        default_config("brax-hopper"), es=ESConfig("openes", popsize=4, sigma=0.03), generations=2
    )
    config = replace(config, learner=replace(config.learner, steps=10))
    run = build_hades(config, seed=0)
    run.loop(quiet=True).run()
    assert run.evolution.generation == 2 and np.isfinite(run.evolution.history["score_mean"]).all()


def test_fit_on_an_env_object_with_a_flax_policy_of_ones_own(tmp_path):
    import flax.linen as nn
    import gymnax

    import rewire.hades as hades

    env, params = gymnax.make("Pendulum-v1")  # an env object, not an id; a continuous action
    config = hades.Config(size=2, generations=2, es=hades.ESConfig(popsize=4), rollout_steps=20)
    net = nn.Sequential([nn.Dense(8), nn.tanh, nn.Dense(1)])  # observation -> mean action
    result = hades.fit((env, params), config, seed=1, out=tmp_path / "run", policy=net)
    assert result.record["config"]["env_id"] == "Pendulum-v1" and "Dense" in result.record["policy"]
    assert [row["generation"] for row in result.metrics] == [1, 2]
    assert set(result.dataset) == {"states", "actions"} and result.dataset["states"].shape == (2, 3)
    again = hades.fit((env, params), config, seed=1, out=tmp_path / "run", policy=net)  # resumes: done
    np.testing.assert_array_equal(again.dataset["states"], result.dataset["states"])
    with pytest.raises(ValueError, match="another config or seed"):
        hades.fit((env, params), config, seed=2, out=tmp_path / "run", policy=net)
    copy = hades.load(result.save(tmp_path / "copy"))
    assert copy.summary == result.summary and (tmp_path / "copy" / "checkpoint.ckpt").exists()
    assert result.plot().exists()


def test_every_gymnax_id_with_fitting_spaces_is_a_task():
    minatar = make_control("Breakout-MinAtar")  # image planes, flattened for an MLP
    assert (minatar.obs_dim, minatar.action_dim, minatar.discrete) == (400, 3, True)
    out = control_rollout(minatar, lambda obs, k: jnp.array(1), jax.random.key(0), 2, 30)
    assert out["observations"].shape == (30, 2, 400)
    with pytest.raises(ValueError, match="unknown environment id"):
        make_control("NoSuchEnv-v0")
