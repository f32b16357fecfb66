"""Cal-QL's calibration floor, CQL entries, MC returns and per-block gradients against hand values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rewire.buffer import Transition
from rewire.data.episodes import mc_returns
from rewire.finetune import cql

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
    # rewards [-5, -5, 5], terminal at the end, gamma 0.9 (method note, 5(a))
    g = mc_returns(np.array([-5.0, -5.0, 5.0]), np.array([0, 0, 1]), 0.9, sparse=True, failure_reward=-5.0)
    np.testing.assert_allclose(g, [-5.45, -0.5, 5.0], rtol=1e-6)


def test_mc_return_all_failure_is_value_of_failing_forever():
    g = mc_returns(np.full(4, -5.0), np.zeros(4), 0.99, sparse=True, failure_reward=-5.0)
    np.testing.assert_allclose(g, np.full(4, -500.0), rtol=1e-6)


def test_mc_return_truncated_dense_episode_is_plain_sum():
    g = mc_returns(np.array([1.0, 2.0, 3.0]), np.zeros(3), 0.5, sparse=False, failure_reward=0.0)
    np.testing.assert_allclose(g, [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0])


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
