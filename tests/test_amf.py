"""AMF: the Gaussian criterion against hand-computed values, its invariances, selectors, determinism,
resume, bad inputs, the forgetting protection and a small learning run."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

from rewire.amf.core import AMF, AMFConfig
from rewire.amf.gaussian import (
    candidate_gains,
    condition_on,
    data_cholesky,
    greedy_batch,
    posterior_cov,
    predictive_gain,
    rbf,
)
from rewire.amf.models import NNSettings
from rewire.amf.run import AMFRun, NonFiniteKernel, demos_to
from rewire.cli import app
from rewire.envs.multitask import clip_norm, make_multitask, pretraining_demo_tasks
from rewire.loop import Loop

NOISE = 0.1
K1, K2 = math.exp(-0.5), math.exp(-2.0)  # RBF (l = 1, variance 1) at distances 1 and 2


def run(amf_run: AMFRun, directory=None) -> AMFRun:
    """Run to the end through the run loop (checkpoints in `directory`, if given)."""
    Loop(amf_run, directory, every=0, quiet=True).run()
    return amf_run


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def three_point_prior():
    x = jnp.asarray([[0.0], [1.0], [2.0]])
    return x, rbf(x, x, jnp.ones(1), 1.0)


def test_gp_posterior_variance_and_gain_match_hand_computation():
    x, k = three_point_prior()
    # observe x = 0 and x = 2 (mask drops the middle point), look at x = 1
    mask = jnp.asarray([True, False, True])
    chol = data_cholesky(k, mask, NOISE)
    var = posterior_cov(k[1:2, 1:2], k[:, 1:2], chol, mask)[0, 0]
    # by hand: 1 - 2 k1^2 / (1 + sigma^2 + k2)
    assert float(var) == pytest.approx(1 - 2 * K1**2 / (1.1 + K2), abs=1e-12)
    assert float(var) == pytest.approx(0.40441, abs=1e-5)
    assert float(predictive_gain(1.0, var, NOISE)) == pytest.approx(0.5 * math.log(1.1 / 0.50441), abs=1e-4)
    # observing x = 0 only: 1 - k1^2 / 1.1 = 0.66556, gain 1/2 ln(1.1 / 0.76556) = 0.18123
    only0 = posterior_cov(
        k[1:2, 1:2], k[:, 1:2], data_cholesky(k, mask.at[2].set(False), NOISE), mask.at[2].set(False)
    )
    assert float(only0[0, 0]) == pytest.approx(0.66556, abs=1e-5)
    # the same numbers through the criterion: candidates {0}, {1}, {2}, all weight on the target x = 1
    scores = candidate_gains(k, jnp.asarray([[0], [1], [2]]), jnp.asarray([0.0, 1.0, 0.0]), NOISE)
    by_hand_self = 0.5 * math.log(1.1 / (1 - 1 / 1.1 + 0.1))
    np.testing.assert_allclose(scores, [0.18123, by_hand_self, 0.18123], atol=1e-5)
    # sequential hallucinated conditioning equals joint conditioning on both points
    seq = condition_on(condition_on(k, jnp.asarray([0]), NOISE), jnp.asarray([2]), NOISE)
    assert float(seq[1, 1]) == pytest.approx(float(var), abs=1e-12)


def test_batch_conditioning_lowers_the_gain_of_a_repeated_task():
    _, k = three_point_prior()
    tasks, scores = greedy_batch(k, jnp.asarray([[0], [1], [2]]), jnp.full(3, 1 / 3), NOISE, 2)
    first = int(tasks[0])
    assert first == 1  # the middle point informs both others
    assert scores[1, first] < scores[0, first]
    assert int(tasks[1]) != first


def test_independent_symmetric_tasks_are_each_picked_once():
    cov = jnp.kron(jnp.eye(4), jnp.asarray([[1.0, 0.5], [0.5, 1.0]]))  # 4 tasks, 2 proxy points each
    cand = jnp.arange(8).reshape(4, 2)
    tasks, scores = greedy_batch(cov, cand, jnp.full(8, 1 / 8), NOISE, 4)
    assert sorted(tasks.tolist()) == [0, 1, 2, 3]
    assert tasks.tolist()[0] == 0  # ties go to the lowest index
    assert float(scores.min()) >= 0.0


def small_config(**kw):
    return AMFConfig(**({"tasks": 8, "budget": 4, "batch": 2} | kw))


def pretrained_state(amf, setting="mismatch", seed=0):
    key_data = jax.random.key_data(jax.random.key(seed))[None]
    pre = jnp.asarray(pretraining_demo_tasks(amf.env, setting))[None]
    params = amf.model.init_params(amf.param_keys(key_data))
    state = jax.vmap(amf.init)(key_data, pre, params)
    return jax.tree.map(lambda x: x[0], state)


@pytest.mark.parametrize("model", ["gp", "nn"])
def test_criterion_does_not_depend_on_action_labels(model):
    nn = NNSettings(hidden=(32, 32), pretrain_steps=50, finetune_steps=20)
    amf = AMF(small_config(model=model, nn=nn))
    state = pretrained_state(amf)
    state, _ = amf.round(state)  # some collected demos to condition on
    pre, data = amf.pretraining_data(state), amf.collected_data(state)
    z = amf.rollout_proxies(amf.policy(state))[0]
    relabel = lambda d: d._replace(actions=jax.random.normal(jax.random.key(9), d.actions.shape))  # noqa: E731
    cov = amf.model.cov(state.model, amf.model.posterior(state.model, pre, data), z)
    cov2 = amf.model.cov(state.model, amf.model.posterior(state.model, relabel(pre), relabel(data)), z)
    np.testing.assert_array_equal(cov, cov2)
    cand = jnp.arange(z.shape[0]).reshape(amf.env.num_tasks, -1)
    w = jnp.full(z.shape[0], 1.0 / z.shape[0])
    np.testing.assert_array_equal(
        greedy_batch(cov, cand, w, amf.model.noise, 2)[0], greedy_batch(cov2, cand, w, amf.model.noise, 2)[0]
    )


def test_env_expert_solves_every_task_and_settings_split_tasks():
    for env_id in ("reach2d", "arm2d"):
        env = make_multitask(env_id, 24)
        assert float(env.success_per_task(env.expert_mean).mean()) == 1.0
        states, actions = env.demonstrate(jnp.asarray(5), jax.random.key(0))
        assert states.shape == (env.horizon, 2) and actions.shape == (env.horizon, 2)
    env = make_multitask("reach2d", 24)
    mismatch = set(pretraining_demo_tasks(env, "mismatch").tolist())
    assert mismatch == {0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16, 17}
    assert set(pretraining_demo_tasks(env, "full").tolist()) == set(range(24))
    assert len(pretraining_demo_tasks(env, "control")) == 24


def test_uniform_is_round_robin_and_runs_are_deterministic_and_resume_exactly(tmp_path):
    config = small_config(budget=8)
    a = run(AMFRun(config, ["mismatch"], [3], ["amf", "uniform", "random"]), tmp_path / "a")
    b = run(AMFRun(config, ["mismatch"], [3], ["amf", "uniform", "random"]))
    ra, rb = a.results()["mismatch"], b.results()["mismatch"]
    assert ra == rb
    counts = np.bincount(ra["uniform"]["tasks_per_seed"][0], minlength=8)
    assert counts.max() - counts.min() <= 1
    # stop after two rounds, resume from the checkpoint, finish: identical to the uninterrupted run
    c = AMFRun(config, ["mismatch"], [3], ["amf", "uniform", "random"])
    Loop(c, tmp_path / "c", every=0, quiet=True).run(max_steps=2)
    resumed = run(AMFRun(config, ["mismatch"], [3], ["amf", "uniform", "random"]), tmp_path / "c")
    assert resumed.results()["mismatch"] == ra
    assert (tmp_path / "a" / "metrics.jsonl").read_text() == (tmp_path / "c" / "metrics.jsonl").read_text()
    other = run(AMFRun(config, ["mismatch"], [4], ["random"])).results()["mismatch"]
    assert other["random"]["tasks_per_seed"] != ra["random"]["tasks_per_seed"]


def test_amf_beats_uniform_under_mismatch_small_gp():
    config = AMFConfig(budget=8, batch=4)
    res = run(AMFRun(config, ["mismatch"], [0, 1], ["amf", "uniform"])).results()["mismatch"]
    amf, uniform = res["amf"], res["uniform"]
    assert amf["success_median"][0] == uniform["success_median"][0]  # same pretrained policy
    assert amf["success_median"][-1] >= uniform["success_median"][-1] + 0.15  # after 8 demos
    assert amf["unseen_task_fraction"] > uniform["unseen_task_fraction"]


def test_nn_adaptive_prior_keeps_tasks_without_data_at_the_pretrained_policy():
    amf = AMF(
        small_config(model="nn", nn=NNSettings(hidden=(32, 32), pretrain_steps=200, finetune_steps=200))
    )
    state = pretrained_state(amf)
    before = amf.policy(state)
    state, metrics = amf.round(state)
    asked = set(np.asarray(metrics["tasks"]).tolist())
    gates = jax.nn.sigmoid(state.model.gate)
    unasked = [t for t in range(8) if t not in asked]
    assert float(gates[jnp.asarray(unasked)].max()) < 0.02  # pushed down from sigmoid(-4) = 0.018
    after = amf.policy(state)
    s = jnp.asarray([0.1, -0.2])
    for t in unasked:
        delta = after(s, jnp.asarray(t)) - before(s, jnp.asarray(t))
        assert float(jnp.abs(delta).max()) < 0.02 * amf.env.max_step
    model = state.model.replace(gate=jnp.full(8, -jnp.inf))
    pinned = amf.model.policy(model, None)(s, jnp.asarray(unasked[0]))
    base = amf.model._apply(model.theta0, amf.env.inputs(s, jnp.asarray(unasked[0])))[0]
    np.testing.assert_allclose(pinned, clip_norm(base, amf.env.max_step), rtol=1e-6, atol=1e-9)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="below the batch size"):
        AMF(AMFConfig(budget=2, batch=4))
    with pytest.raises(ValueError, match="multiple"):
        AMF(AMFConfig(budget=5, batch=2))
    with pytest.raises(ValueError, match="unknown selector"):
        AMFRun(small_config(), ["mismatch"], [0], ["greedy"])
    with pytest.raises(ValueError, match="unknown setting"):
        AMFRun(small_config(), ["skewed"], [0], ["amf"])
    with pytest.raises(ValueError, match="unknown task id 8"):
        AMF(small_config(targets=(0, 8)))
    with pytest.raises(ValueError, match="unknown multi-task env"):
        AMF(small_config(env="maze"))
    with pytest.raises(ValueError, match="unknown model"):
        AMF(small_config(model="forest"))
    assert demos_to(0.9, [0, 2, 4], [0.5, 0.8, 0.85]) is None


def test_non_finite_kernel_raises_and_leaves_the_state():
    amf_run = AMFRun(small_config(), ["mismatch"], [0], ["amf"])
    amf_run.init()
    amf_run.state = amf_run.state.replace(pre_states=amf_run.state.pre_states.at[:, 0].set(jnp.nan))
    before = jax.tree.map(np.asarray, amf_run.state)
    with pytest.raises(NonFiniteKernel, match="not finite"):
        amf_run.step()
    assert amf_run.round == 0
    jax.tree.map(np.testing.assert_array_equal, before, jax.tree.map(np.asarray, amf_run.state))


def test_cli_run_and_bad_budget(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["amf", "run", "--budget", "1", "--batch", "2", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "below the batch size" in res.output
    res = runner.invoke(app, ["amf", "run", "--selector", "best", "--out", str(tmp_path), "--quiet"])
    assert res.exit_code == 2 and "unknown selector" in res.output
    args = ["amf", "run", "--tasks", "8", "--budget", "4", "--out", str(tmp_path), "--quiet"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert "demos to reach 0.9: " in said and "None" not in said
    (run_dir,) = tmp_path.glob("amf-*")
    assert {"config.json", "results.json", "checkpoint.ckpt", "metrics.jsonl", "success.png"} <= {
        p.name for p in run_dir.iterdir()
    }


def test_importance_weighted_proxies_are_normalised_and_selection_runs():
    amf = AMF(small_config(proxies="is"))
    state = pretrained_state(amf)
    z, weights, cand = amf.proxies(state, amf.policy(state))
    assert bool(jnp.all(jnp.isfinite(z))) and float(weights.sum()) == pytest.approx(1.0, abs=1e-9)
    assert cand.shape[0] == amf.env.num_tasks
    state, metrics = amf.round(state)
    assert bool(metrics["finite"]) and int(state.count) == 2


def test_a_task_family_of_ones_own(tmp_path):
    import rewire.amf as amf

    def family(**change):
        fields = dict(
            tasks=jnp.linspace(-1.0, 1.0, 8)[:, None],
            step=lambda s, a: s + a,
            expert=lambda s, target: 0.5 * (target - s),
            success=lambda final, target: jnp.abs(final - target)[0] < 0.05,
            start=jnp.zeros(1),
            horizon=10,
            max_action=0.3,
            start_noise=0.1,
        )
        return amf.TaskFamily(**(fields | change))

    config = amf.Config(budget=4, batch=2)
    result = amf.fit(family(), config, seed=0, pretrain_tasks=[0, 1, 2, 3], out=tmp_path / "run")
    first = result.summary["tasks_per_seed"][0][:2]
    assert set(first) <= {4, 5, 6, 7}  # information gain first asks for tasks pretraining never saw
    assert [row["demos"] for row in result.metrics] == [2, 4]
    assert result.record["config"]["tasks"] == 8 and result.record["pretrain_tasks"] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="another config or seed"):
        amf.fit(family(), config, seed=1, pretrain_tasks=[0, 1, 2, 3], out=tmp_path / "run")
    with pytest.raises(ValueError, match="unknown task id 9"):
        amf.fit(family(), config, seed=0, pretrain_tasks=[9])
    with pytest.raises(ValueError, match=r"tasks must be \(C >= 2, goal_dim\)"):
        family(tasks=jnp.linspace(-1.0, 1.0, 8))
    with pytest.raises(ValueError, match="action vector"):
        family(expert=lambda s, target: 0.0)


def test_loss_gradient_embeddings_are_the_last_layers_bc_gradient_and_depend_on_labels():
    nn = NNSettings(hidden=(8, 8), pretrain_steps=50, finetune_steps=20, kernel="loss_gradient")
    amf = AMF(small_config(model="nn", nn=nn))
    state = pretrained_state(amf)
    state, _ = jax.jit(amf.round)(state)
    model, x = amf.model, amf.collected_data(state).inputs[:3]
    labels = jax.random.normal(jax.random.key(1), (3, 2))
    m = amf.env.max_step

    def loss(last, row, label):  # the squared BC loss of one row, in units of max_step, as a function of
        params = jax.tree.map(lambda a: a, state.model.theta)  # the fine-tuned net's last layer
        params["params"]["Dense_2"] = last
        out = model.net.apply(params, row.astype(jnp.float32))[0].astype(row.dtype)
        return 0.5 * jnp.sum(((out - label) / m) ** 2)

    last = state.model.theta["params"]["Dense_2"]
    for i in range(3):
        g = jax.grad(loss)(last, x[i], labels[i])
        by_hand = jnp.concatenate([g["kernel"], g["bias"][None]]).T.reshape(-1) * m
        np.testing.assert_allclose(
            model._embed(state.model, x[i : i + 1], labels[i : i + 1])[0], by_hand, rtol=1e-4, atol=1e-7
        )
    # unlike the last-layer kernel, the criterion now sees the labels: residuals are the uncertainty
    pre, data = amf.pretraining_data(state), amf.collected_data(state)
    z = amf.rollout_proxies(amf.policy(state))[0]
    relabel = lambda d: d._replace(actions=d.actions + 0.1)  # noqa: E731
    cov = model.cov(state.model, model.posterior(state.model, pre, data), z)
    cov2 = model.cov(state.model, model.posterior(state.model, relabel(pre), relabel(data)), z)
    assert np.isfinite(cov).all() and not np.allclose(cov, cov2)
    assert np.all(np.diag(cov) > -1e-9)


def test_rollout_targets_end_at_each_rollouts_first_success():
    """A task's target weight is spread evenly over its proxy rollout's (strided) steps up to its first
    success; with no lengths, over every step, as before."""
    amf = AMF(small_config(proxy_stride=2))
    env, c = amf.env, amf.env.num_tasks
    states = jax.random.normal(jax.random.key(0), (c, 10, env.state_dim))
    policy = amf.policy(pretrained_state(amf))
    lengths = jnp.asarray([1, 4, 10] + [5] * (c - 3))
    z, w, cand = amf.rollout_proxies(policy, states, lengths)
    w = np.asarray(w).reshape(c, 5)  # steps 0, 2, 4, 6, 8
    kept = {0: 1, 1: 2, 2: 5}  # length 1 keeps step 0; 4 keeps 0 and 2; 10 keeps all five
    for task, k in kept.items():
        np.testing.assert_allclose(w[task, :k], amf.target_weights[task] / k, rtol=1e-6)
        assert not w[task, k:].any()
    np.testing.assert_allclose(w.sum(1), amf.target_weights, rtol=1e-6)
    assert z.shape == (c * 5, env.input_dim) and cand.shape == (c, 5)  # candidates keep every step
    _, w_all, _ = amf.rollout_proxies(policy, states)
    np.testing.assert_allclose(
        np.asarray(w_all).reshape(c, 5), np.repeat(amf.target_weights[:, None] / 5, 5, 1)
    )
