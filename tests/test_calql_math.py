"""Cal-QL's calibration floor, CQL entries, MC returns and per-block gradients against hand values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rewire.buffer import Transition
from rewire.calql import cql
from rewire.calql.metrics import cumulative_regret, dip_depth
from rewire.data.episodes import Episode, mc_returns, truncation_tail
from rewire.nets import gaussian_log_density, tanh_gaussian_sample, tanh_log_det

LOG2 = math.log(2.0)
CFG = cql.CQLConfig(obs_dim=2, act_dim=1)

# B = 2 states, n = 2 samples per set
Q_UNIFORM = jnp.array([[1.0, 2.0], [0.0, -1.0]])
Q_NEXT = jnp.array([[-3.0, 0.5], [2.0, -6.0]])
LOGP_NEXT = jnp.array([[0.1, 0.2], [0.3, 0.4]])
Q_CUR = jnp.array([[-4.0, 1.0], [-2.0, 3.0]])
LOGP_CUR = jnp.array([[0.5, 0.6], [0.7, 0.8]])
Q_DATA = jnp.array([0.25, -0.5])
MC = jnp.array([-1.0, 0.0])


def entries(calibrate, mc=MC, config=CFG, q_cur=Q_CUR):
    return cql.cql_logsumexp_entries(
        config, Q_UNIFORM, Q_NEXT, LOGP_NEXT, q_cur, LOGP_CUR, Q_DATA, mc, jnp.asarray(calibrate)
    )


# uniform: Q + |A| log 2; next- and current-policy: max(Q, g) - log pi, floored before subtracting
HAND_FLOORED = np.array(
    [
        [1 + LOG2, 2 + LOG2, -1 - 0.1, 0.5 - 0.2, -1 - 0.5, 1 - 0.6],
        [0 + LOG2, -1 + LOG2, 2 - 0.3, 0 - 0.4, 0 - 0.7, 3 - 0.8],
    ]
)


def test_floor_matches_hand_values():
    np.testing.assert_allclose(entries(True), HAND_FLOORED, rtol=1e-6)


def test_floor_off_differs_exactly_on_floored_entries():
    on, off = np.asarray(entries(True)), np.asarray(entries(False))
    expected_off = np.array(
        [
            [1 + LOG2, 2 + LOG2, -3 - 0.1, 0.5 - 0.2, -4 - 0.5, 1 - 0.6],
            [0 + LOG2, -1 + LOG2, 2 - 0.3, -6 - 0.4, -2 - 0.7, 3 - 0.8],
        ]
    )
    np.testing.assert_allclose(off, expected_off, rtol=1e-6)
    floored = np.array([[0, 0, 1, 0, 1, 0], [0, 0, 0, 1, 1, 0]], bool)
    assert np.all((on != off) == floored)
    np.testing.assert_array_equal(on[:, :2], off[:, :2])  # uniform samples are never floored


def test_cql_gap_by_hand():
    delta = np.log(np.exp(HAND_FLOORED).sum(-1)) - np.array([0.25, -0.5])
    np.testing.assert_allclose(jax.nn.logsumexp(entries(True), -1) - Q_DATA, delta, rtol=1e-6)


def test_floored_entries_have_zero_gradient():
    grad = jax.grad(lambda q: jax.nn.logsumexp(entries(True, mc=jnp.array([10.0, 10.0]), q_cur=q)).sum())(
        Q_CUR
    )
    np.testing.assert_array_equal(grad, 0.0)
    grad_off = jax.grad(
        lambda q: jax.nn.logsumexp(entries(False, mc=jnp.array([10.0, 10.0]), q_cur=q)).sum()
    )(Q_CUR)
    assert np.all(np.asarray(grad_off) > 0)


def test_without_importance_sampling_the_data_action_enters():
    config = cql.CQLConfig(obs_dim=2, act_dim=1, importance_sampling=False)
    z = np.asarray(entries(False, config=config))
    assert z.shape == (2, 7)
    np.testing.assert_allclose(z[:, 2], Q_DATA)
    np.testing.assert_allclose(z[:, :2], Q_UNIFORM)


def test_mc_return_success_episode():
    # rewards [-5, -5, 5], terminal at the end, gamma 0.9, by hand
    g = mc_returns(np.array([-5.0, -5.0, 5.0]), np.array([0, 0, 1]), 0.9, sparse=True, failure_reward=-5.0)
    np.testing.assert_allclose(g, [-5.45, -0.5, 5.0], rtol=1e-6)


def test_mc_return_all_failure_is_value_of_failing_forever():
    g = mc_returns(np.full(4, -5.0), np.zeros(4), 0.99, sparse=True, failure_reward=-5.0)
    np.testing.assert_allclose(g, np.full(4, -500.0), rtol=1e-6)


def test_mc_return_truncated_dense_episode_is_plain_sum():
    g = mc_returns(np.array([1.0, 2.0, 3.0]), np.zeros(3), 0.5, sparse=False, failure_reward=0.0)
    np.testing.assert_allclose(g, [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0])


def test_a_truncated_episode_with_negative_rewards_gets_a_floor_below_its_value():
    """A time limit cut the episode after 3 steps; the data's smallest reward is -2, so the tail after the
    cut is worth at least -2 / (1 - 0.9) = -20. With g_T = 0 the MC return lies above the value of going on
    (the opposite of a floor); with the tail it lies below."""
    rewards, gamma = np.array([-1.0, -2.0, -1.0]), 0.9
    episode = Episode(
        np.zeros((4, 1)), np.zeros((3, 1)), rewards, np.zeros(3, bool), np.array([0, 0, 1], bool)
    )
    tail = truncation_tail([episode], gamma, 1.0, 0.0)
    assert tail == pytest.approx(-20.0)
    g = mc_returns(rewards, np.zeros(3), gamma, sparse=False, failure_reward=0.0, tail=tail)
    np.testing.assert_allclose(g, [-1 + 0.9 * (-2 + 0.9 * -19), -2 + 0.9 * -19, -1 + 0.9 * -20], rtol=1e-6)
    # the behaviour goes on at -1.5 per step: its true value from each step of the episode
    true = [
        sum(r * gamma**k for k, r in enumerate(rewards[t:])) + gamma ** (3 - t) * -1.5 / (1 - gamma)
        for t in range(3)
    ]
    assert np.all(g <= np.array(true) + 1e-6)
    no_tail = mc_returns(rewards, np.zeros(3), gamma, sparse=False, failure_reward=0.0)
    assert np.all(no_tail > np.array(true))  # the old rule: above the value, not a floor
    # a terminal end takes no tail
    ended = mc_returns(rewards, np.array([0, 0, 1]), gamma, sparse=False, failure_reward=0.0, tail=tail)
    np.testing.assert_allclose(ended, no_tail)


def test_a_binding_floor_changes_the_critic_gradient_and_only_it():
    state = cql.init(jax.random.PRNGKey(0), CFG)
    batch = _batch(jax.random.PRNGKey(1))._replace(mc_return=jnp.full(16, 1e3))  # above every Q: binds
    on, off = _grads(state, batch, calibrate=True), _grads(state, batch, calibrate=False)
    assert not np.allclose(jax.tree.leaves(on["critic"])[0], jax.tree.leaves(off["critic"])[0])
    for a, b in zip(jax.tree.leaves(on["actor"]), jax.tree.leaves(off["actor"]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_termination_masks_the_return():
    # a terminal in the middle (only possible after splitting errors) stops the backward sum
    g = mc_returns(np.array([1.0, 1.0, 1.0]), np.array([0, 1, 0]), 0.5, sparse=False, failure_reward=0.0)
    np.testing.assert_allclose(g, [1.5, 1.0, 1.0])


def _batch(key, n=16):
    k = jax.random.split(key, 4)
    return Transition(
        obs=jax.random.normal(k[0], (n, 2)),
        action=jax.random.uniform(k[1], (n, 1), minval=-0.9, maxval=0.9),
        reward=jax.random.normal(k[2], (n,)),
        next_obs=jax.random.normal(k[3], (n, 2)),
        terminal=jnp.zeros(n),
        mc_return=jnp.full(n, -3.0),
    )


def _grads(state, batch, config=CFG, calibrate=True):
    return jax.grad(cql.losses, has_aux=True)(
        state.params, state.target_critic, jnp.asarray(calibrate), batch, jax.random.PRNGKey(5), config
    )[0]


def test_critic_only_terms_leave_the_actor_gradient_alone():
    state = cql.init(jax.random.PRNGKey(0), CFG)
    batch = _batch(jax.random.PRNGKey(1))
    g1 = _grads(state, batch)
    g2 = _grads(state, batch._replace(reward=batch.reward + 7.0, mc_return=batch.mc_return + 100.0))
    for a, b in zip(jax.tree.leaves(g1["actor"]), jax.tree.leaves(g2["actor"]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(jax.tree.leaves(g1["critic"])[0], jax.tree.leaves(g2["critic"])[0])


def test_low_floor_makes_calql_equal_cql():
    state = cql.init(jax.random.PRNGKey(0), CFG)
    batch = _batch(jax.random.PRNGKey(1))._replace(mc_return=jnp.full(16, -1e6))
    for a, b in zip(
        jax.tree.leaves(_grads(state, batch, calibrate=True)),
        jax.tree.leaves(_grads(state, batch, calibrate=False)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("gap, rises", [(-50.0, True), (50.0, False)])
def test_lagrange_multiplier_rises_while_the_gap_exceeds_the_target(gap, rises):
    config = cql.CQLConfig(obs_dim=2, act_dim=1, lagrange=True, target_gap=gap)
    state = cql.init(jax.random.PRNGKey(0), config)
    new_state, _ = cql.update(state, _batch(jax.random.PRNGKey(1)), config)
    moved = float(new_state.params["log_alpha_prime"] - state.params["log_alpha_prime"])
    assert (moved > 0) == rises


def test_dip_depth_and_regret_by_hand():
    steps = np.array([0, 250, 500, 750, 1000, 2000])
    # within the first 20% of 5000 online steps (steps <= 1000) the lowest success is 0.2
    assert dip_depth(steps, [1.0, 0.8, 0.6, 1.0, 0.2, 0.0], 5000) == pytest.approx(0.8)
    assert dip_depth(steps[:3], [0.5, 0.7, 0.9], 5000) == 0.0  # improving at once: no dip
    with pytest.raises(ValueError, match="switch"):
        dip_depth(steps[1:], [1.0, 0.8, 0.6, 1.0, 0.2], 5000)
    # evaluations after the switch: 0.5, 1, 0 -> mean failure (0.5 + 0 + 1) / 3
    assert cumulative_regret(steps[:4], [1.0, 0.5, 1.0, 0.0]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="after the switch"):
        cumulative_regret(steps[:1], [1.0])


def test_calibration_probe_by_hand():
    """A critic that outputs the constant 3 everywhere: Q - MC is 3 minus the mean return, and the bound
    rate is the share of returns above 3."""
    config = cql.CQLConfig(obs_dim=2, act_dim=1, critic_hidden=(4,), actor_hidden=(4,))
    state = cql.init(jax.random.PRNGKey(0), config)

    def constant(path, leaf):
        last_bias = "Dense_1" in jax.tree_util.keystr(path) and "bias" in jax.tree_util.keystr(path)
        return jnp.full_like(leaf, 3.0) if last_bias else jnp.zeros_like(leaf)

    critic = jax.tree_util.tree_map_with_path(constant, state.params["critic"])
    states = jax.tree.map(lambda x: x[None], state.replace(params=state.params | {"critic": critic}))
    mc = jnp.array([2.0, 4.0, 5.0, 0.0])
    probe = Transition(jnp.ones((4, 2)), jnp.zeros((4, 1)), jnp.zeros(4), jnp.ones((4, 2)), jnp.zeros(4), mc)
    out = cql.calibration_probe(states, probe, config)
    assert float(out["q_minus_mc"][0]) == pytest.approx(3.0 - 2.75)
    assert float(out["bound_rate"][0]) == pytest.approx(0.5)


def test_tanh_log_det_is_the_log_derivative_of_tanh_and_stays_finite():
    with jax.enable_x64(True):
        u = jnp.linspace(-5.0, 5.0, 41, dtype=jnp.float64)
        derivative = jax.vmap(jax.grad(jnp.tanh))(u)
        np.testing.assert_allclose(tanh_log_det(u), jnp.log(derivative), rtol=1e-12)
        exact = np.asarray(jnp.log(derivative))
    # in float32 (as training runs) it stays close to the exact value, where log(1 - tanh(u)^2) does not
    u32 = jnp.asarray(u, jnp.float32)
    stable = np.abs(np.asarray(tanh_log_det(u32)) - exact).max()
    naive = np.abs(np.asarray(jnp.log(1 - jnp.tanh(u32) ** 2)) - exact).max()
    assert stable < 1e-5 < naive
    far = tanh_log_det(jnp.array([-30.0, 30.0]))  # 1 - tanh(u)^2 underflows to 0 in float32 here
    assert np.all(np.isfinite(far)) and float(far[0]) == pytest.approx(2 * (LOG2 - 30.0), rel=1e-6)


def test_tanh_gaussian_density_integrates_to_one_and_matches_the_sampler():
    """log pi(a) = log N(u) - log(1 - tanh(u)^2) at u = artanh(a): its density integrates to 1 over (-1, 1),
    and the sampler returns exactly this log-density for the actions it draws."""
    mean, log_std = 0.3, -0.4

    def log_density(a):
        u = jnp.arctanh(a)
        return gaussian_log_density(u, mean, log_std) - tanh_log_det(u)

    with jax.enable_x64(True):
        a = jnp.linspace(-1 + 1e-9, 1 - 1e-9, 400001)
        assert np.trapezoid(np.exp(np.asarray(log_density(a))), np.asarray(a)) == pytest.approx(1.0, abs=1e-4)
        m, s = jnp.full((256, 1), mean), jnp.full((256, 1), log_std)
        actions, logp = tanh_gaussian_sample(m, s, jax.random.key(3))
        np.testing.assert_allclose(logp, log_density(actions[:, 0]), rtol=1e-6, atol=1e-6)
