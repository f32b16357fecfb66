"""HaDES on the paper's domains: MinAtar and Brax presets, whole-episode fitness, a generation's cost against
its floor, and zero-shot multi-task agents from per-environment datasets."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from rewire.bench.hades import generation_cost, run_dir
from rewire.cli import app
from rewire.envs.control import make_control
from rewire.es import ESConfig
from rewire.hades.bc import act, init_many
from rewire.hades.core import (
    default_config,
    expand_states,
    learner_preset,
    make_hades_score,
    observation_stats,
    policy_for,
    random_observations,
    varying_features,
)
from rewire.hades.dataset import save_synthetic
from rewire.hades.multitask import (
    MASKED,
    Layout,
    TaskDataset,
    layout_for,
    multitask_module,
    run_multitask,
    train_multitask,
    union,
)
from rewire.hades.run import build_hades, fit
from rewire.rollout import control_rollout


def test_minatar_and_brax_presets_hold_the_reference_settings():
    cpu, paper = default_config("Breakout-MinAtar"), default_config("Breakout-MinAtar", "paper")
    for c, sigma, temperature in ((cpu, 0.1, 5.0), (paper, 0.5, 20.0)):
        assert (c.size, c.labels, c.es.algorithm, c.es.sigma, c.es.temperature) == (
            16,
            "fixed",
            "snes",
            sigma,
            temperature,
        )
        assert (c.learner.activation, c.learner.lr, c.learner.steps, c.rollout_steps) == (
            "relu",
            0.03,
            64,
            None,
        )
    assert cpu.std_floor == paper.std_floor == 1.0  # 0/1 planes: centred, not divided by 1e-4
    assert (paper.es.popsize, paper.generations, paper.learner.hidden) == (2048, 2000, (512, 512))
    # The cpu preset's budget per game (30 minutes for 3 seeds on 2 cores); the paper's is the same for all.
    budgets = {g: default_config(f"{g}-MinAtar") for g in ("Breakout", "SpaceInvaders", "Asterix", "Freeway")}
    assert {g: (c.generations, c.num_envs) for g, c in budgets.items()} == {
        "Breakout": (200, 4),
        "SpaceInvaders": (80, 4),
        "Asterix": (90, 4),
        "Freeway": (30, 4),
    }
    assert (
        default_config("Freeway-MinAtar", "paper").generations,
        default_config("Freeway-MinAtar", "paper").num_envs,
    ) == (2000, 8)
    brax = default_config("brax-hopper", "paper")
    assert (brax.es.algorithm, brax.es.sigma, brax.es.popsize, brax.generations) == (
        "openes",
        0.03,
        2048,
        2000,
    )
    assert brax.learner == learner_preset("reference")
    reference = learner_preset("reference")
    assert (reference.hidden, reference.activation, reference.lr, reference.steps, reference.clip_norm) == (
        (512, 512),
        "tanh",
        5e-3,
        200,
        0.5,
    )
    with pytest.raises(ValueError, match="paper preset covers MinAtar and Brax"):
        default_config("CartPole-v1", "paper")
    with pytest.raises(ValueError, match="unknown preset"):
        default_config("CartPole-v1", "gpu")


def test_the_std_floor_bounds_the_normalisation_scale():
    task = make_control("CartPole-v1")
    key = jax.random.key(0)
    observations = random_observations(task, key, 4)
    mean, std = observation_stats(observations)
    floored_mean, floored = observation_stats(observations, std_floor=0.5)
    np.testing.assert_array_equal(floored_mean, mean)
    np.testing.assert_allclose(floored, np.maximum(std, 0.5))
    assert (std < 0.5).any() and (floored >= 0.5).all()


def test_expand_states_places_the_evolved_columns_among_zeros():
    data = {"states": jnp.array([[1.0, 2.0], [3.0, 4.0]]), "logits": jnp.ones((2, 3))}
    full = expand_states(data, np.array([1, 3]), 5)
    np.testing.assert_array_equal(np.asarray(full["states"]), [[0, 1, 0, 2, 0], [0, 3, 0, 4, 0]])
    assert full["logits"] is data["logits"] and expand_states(data, None, 5) is data


def test_varying_state_features_evolve_only_what_a_random_policy_changes():
    """Breakout: most pixels never change under a random policy; with state_features 'varying' the ES
    evolves the others only, the released states are 0 (the mean observation) elsewhere, and a candidate's
    fitness is that of its full-width dataset under the 'all' score."""
    config = replace(
        default_config("Breakout-MinAtar"),
        size=4,
        generations=1,
        es=ESConfig("snes", popsize=4, sigma=0.1, temperature=5.0),
        num_envs=1,
        rollout_steps=50,
        state_features="varying",
    )
    run = build_hades(config, 0)
    key = jax.random.fold_in(jax.random.key(0), 1)
    observations = random_observations(run.task, key)
    features = varying_features(observations)
    fixed = np.setdiff1d(np.arange(run.task.obs_dim), features)
    assert 0 < len(features) < run.task.obs_dim / 2
    assert (observations[:, fixed] == observations[:1, fixed]).all()
    assert (observations[:, features].var(0) > 0).all()
    assert run.evolution.mean()["states"].shape == (4, len(features))
    run.evolution.step()
    released = run.dataset()["states"]
    assert released.shape == (4, run.task.obs_dim) and not released[:, fixed].any()
    np.testing.assert_array_equal(released[:, features], np.asarray(run.evolution.mean()["states"]))
    module = policy_for(config, run.task)
    params = init_many(module, run.task.obs_dim, jax.random.split(jax.random.key(1), 1))
    params = jax.tree.map(lambda x: x[0], params)
    reduced = make_hades_score(config, run.task, run.obs_mean, run.obs_std, module, features)
    full = make_hades_score(config, run.task, run.obs_mean, run.obs_std, module)
    mean = run.evolution.mean()
    eval_key = jax.random.key(2)
    assert float(reduced(mean, params, eval_key)[0]) == float(full(run.dataset(), params, eval_key)[0])


def test_freeway_fitness_covers_whole_episodes():
    """Freeway's episodes last 2,500 steps: the preset's rollouts last as long, so each env finishes its
    episode and the score is its return (a 1,024-step rollout finishes none)."""
    task = make_control("Freeway-MinAtar")
    config = default_config("Freeway-MinAtar")
    assert config.steps(task) == task.horizon == 2500
    up = lambda obs, k: jnp.array(1)  # noqa: E731 (the action set is noop, up, down)
    whole = control_rollout(task, up, jax.random.key(0), 2, config.steps(task))
    assert int(whole["episodes"]) == 2 and float(whole["mean_return"]) > 5
    short = control_rollout(task, up, jax.random.key(0), 2, 1024)
    assert int(short["episodes"]) == 0


def test_layouts_pad_states_into_slots_with_a_task_id():
    layout = Layout((4, 6, 2), (2, 3, 3))
    assert (layout.obs_dim, layout.input_dim, layout.actions) == (12, 15, 3)
    assert layout.valid == ((True, True, False), (True, True, True), (True, True, True))
    x = np.asarray(layout.inputs(jnp.arange(1.0, 7.0), 1))
    np.testing.assert_array_equal(x, [0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0, 1, 0])
    shared = Layout((4, 6, 2), (2, 3, 3), "shared")
    assert shared.input_dim == 9
    np.testing.assert_array_equal(
        np.asarray(shared.inputs(jnp.array([7.0, 8.0]), 2)), [7, 8, 0, 0, 0, 0, 0, 0, 1]
    )


def _tasks() -> list[TaskDataset]:
    """CartPole (2 actions) and Acrobot (3) with random states and round-robin labels, in memory."""
    out = []
    for i, (env, n) in enumerate((("CartPole-v1", 4), ("Acrobot-v1", 6))):
        task = make_control(env)
        states = np.asarray(jax.random.normal(jax.random.key(i), (n, task.obs_dim)))
        config = default_config(env)
        out.append(
            TaskDataset(
                task, {"states": states}, np.zeros(task.obs_dim), np.ones(task.obs_dim), config.learner
            )
        )
    return out


def test_a_fresh_multitask_network_ignores_the_task_id_and_never_picks_a_missing_action():
    tasks = _tasks()
    layout = layout_for(tasks)
    module = multitask_module(tasks[0].learner, layout)
    params = init_many(module, layout.input_dim, jax.random.split(jax.random.key(0), 1))
    params = jax.tree.map(lambda x: x[0], params)
    padded = jnp.zeros(layout.obs_dim).at[:4].set(jnp.array([0.3, -1.0, 0.5, 2.0]))
    as_cartpole = module.apply(params, jnp.concatenate([padded, jnp.array([1.0, 0.0])]))
    as_acrobot = module.apply(params, jnp.concatenate([padded, jnp.array([0.0, 1.0])]))
    # the task id's weights start at zero (README "HaDES"); only the mask differs
    np.testing.assert_allclose(as_cartpole[:2], as_acrobot[:2])
    assert float(as_cartpole[2]) == MASKED and float(as_acrobot[2]) != MASKED
    state = layout.inputs(jnp.array([0.3, -1.0, 0.5, 2.0]), 0)
    actions = jax.vmap(lambda k: act(module, params, state, k, False))(
        jax.random.split(jax.random.key(1), 2000)
    )
    assert set(np.asarray(actions).tolist()) == {0, 1}


def test_multitask_bc_fits_every_dataset_of_the_union():
    tasks = _tasks()
    layout = layout_for(tasks)
    module, params, losses = train_multitask(tasks, tasks[0].learner, jax.random.key(0), 3, layout)
    inputs, targets = union(tasks, layout)
    assert inputs.shape == (10, layout.input_dim) and targets.shape == (10, 3)
    expected = [0, 1, 0, 1, 0, 1, 2, 0, 1, 2]
    for i in range(3):
        logits = module.apply(jax.tree.map(lambda x, i=i: x[i], params), inputs)
        assert jnp.argmax(logits, -1).tolist() == expected
    assert float(losses.max()) < 0.05


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """Quick HaDES runs for CartPole and Acrobot (a few generations reach good returns)."""
    root = tmp_path_factory.mktemp("multitask")
    results = []
    for env, generations, popsize in (("CartPole-v1", 5, 16), ("Acrobot-v1", 30, 32)):
        config = replace(default_config(env), generations=generations, es=ESConfig(popsize=popsize))
        results.append(fit(env, config, 0, root / env))
    return results


def test_generation_cost_sets_a_generation_against_rollouts_plus_bc(distilled):
    run = distilled[0].run
    cost = generation_cost(run, 0.5, repeats=1)
    assert cost["policies"] == 32 and cost["env_steps"] == 32 * 4 * 500
    assert cost["floor_seconds"] == pytest.approx(cost["rollout_seconds"] + cost["bc_seconds"])
    assert cost["overhead"] == pytest.approx(0.5 / cost["floor_seconds"])
    assert min(cost["rollout_seconds"], cost["bc_seconds"]) > 0


def test_a_zero_shot_multitask_agent_keeps_most_of_each_single_task_return(distilled):
    result = run_multitask([r.directory / "dataset.npz" for r in distilled], seed=0, inits=4, episodes=4)
    for env, row in result["tasks"].items():
        m, s, r = row["multitask_median"], row["single_task_median"], row["random_return"]
        assert row["normalised"] == pytest.approx((m - r) / (s - r))
        assert s > r + 50, f"{env}: the quick dataset did not learn ({s} against random {r})"
        assert row["normalised"] > 0.8, f"{env}: multi-task {m}, single-task {s}, random {r}"
    assert result["layout"] == {
        "slots": "disjoint",
        "input": 12,
        "padded_obs": 10,
        "actions": 3,
        "order": ["CartPole-v1", "Acrobot-v1"],
    }


def test_cli_multitask_refuses_bad_input_with_one_line(distilled, tmp_path):
    distilled = [r.directory / "dataset.npz" for r in distilled]
    runner = CliRunner()
    res = runner.invoke(app, ["hades", "multitask", str(distilled[0])])
    assert res.exit_code == 2 and "at least two environments" in res.output
    res = runner.invoke(app, ["hades", "multitask", str(distilled[0]), str(distilled[0])])
    assert res.exit_code == 2 and "one dataset per environment" in res.output
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    res = runner.invoke(app, ["hades", "multitask", str(distilled[0]), str(bad)])
    assert res.exit_code == 2 and str(bad) in res.output and "Traceback" not in res.output
    pendulum = save_synthetic(
        tmp_path / "pendulum.npz",
        {"states": np.zeros((2, 3), np.float32), "actions": np.zeros((2, 1), np.float32)},
        np.zeros(3),
        np.ones(3),
        {"env_id": "Pendulum-v1", "config": default_config("Pendulum-v1")},
    )
    res = runner.invoke(app, ["hades", "multitask", str(distilled[0]), str(pendulum)])
    assert res.exit_code == 2 and "continuous actions" in res.output
    res = runner.invoke(app, ["hades", "multitask", *map(str, distilled), "--slots", "diagonal"])
    assert res.exit_code == 2 and "unknown input slots" in res.output


def test_benchmark_run_directories_resume_only_their_own_run(tmp_path):
    """`rewire bench hades --out`: each kind's folder records its config and seed, as `fit`'s do, so a rerun
    resumes it and a run of another config there is refused rather than resumed from the wrong checkpoint."""
    config = default_config("CartPole-v1", generations=2)
    made = run_dir(tmp_path, "hades", config, 0)
    assert made == tmp_path / "hades" and (made / "config.json").exists()
    assert run_dir(tmp_path, "hades", config, 0) == made
    with pytest.raises(ValueError, match="another config or seed"):
        run_dir(tmp_path, "hades", replace(config, generations=3), 0)
    with pytest.raises(ValueError, match="another config or seed"):
        run_dir(tmp_path, "hades", config, 1)
    assert run_dir(None, "hades", config, 0) is None
