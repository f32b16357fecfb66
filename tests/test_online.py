"""The online phase's data path (`rewire.calql.online`): MC labels against hand values and against
`mc_returns`, whole episodes into the buffer, and the device loop equal to the host loop bit for bit."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from test_finetune_invariants import TINY, leaves_equal

from rewire.buffer import buffer_init
from rewire.calql.online import LabelRule, absorb, episode_returns, pending_init
from rewire.calql.trainer import Finetuner
from rewire.data.episodes import mc_returns
from rewire.loop import Loop

DENSE = LabelRule(gamma=0.5, scale=1.0, bias=0.0, tail=-4.0, sparse=False, failure=0.0, horizon=5)
SPARSE = dataclasses.replace(DENSE, sparse=True, failure=-5.0, tail=-10.0)


def returns(rule, rewards, terminal):
    padded = np.zeros(rule.horizon, np.float32)
    padded[: len(rewards)] = rewards
    out = episode_returns(jnp.asarray(padded), jnp.int32(len(rewards)), jnp.asarray(terminal), rule)
    return np.asarray(out)[: len(rewards)]


def test_terminal_and_truncated_returns_by_hand():
    # terminal: g = [1 + 0.5 * (2 + 0.5 * 4), 2 + 0.5 * 4, 4]
    np.testing.assert_allclose(returns(DENSE, [1.0, 2.0, 4.0], True), [3.0, 4.0, 4.0])
    # truncated: the tail -4 follows the last step, so g_2 = 4 + 0.5 * -4 = 2
    np.testing.assert_allclose(returns(DENSE, [1.0, 2.0, 4.0], False), [2.5, 3.0, 2.0])
    # sparse, never succeeded: the value of failing forever, -5 / (1 - 0.5), whatever the tail
    np.testing.assert_allclose(returns(SPARSE, [-5.0, -5.0], False), [-10.0, -10.0])
    np.testing.assert_allclose(returns(SPARSE, [-5.0, 5.0], True), [-2.5, 5.0])


@pytest.mark.parametrize("terminal", [True, False])
def test_returns_agree_with_mc_returns(terminal):
    rule = LabelRule(gamma=0.99, scale=1.0, bias=0.0, tail=-30.0, sparse=False, failure=0.0, horizon=100)
    rewards = np.random.default_rng(0).normal(size=73).astype(np.float32)
    terms = np.zeros(73, bool)
    terms[-1] = terminal
    host = mc_returns(rewards, terms, 0.99, False, 0.0, tail=-30.0)
    np.testing.assert_allclose(returns(rule, rewards, terminal), host, rtol=1e-5, atol=1e-4)


def test_only_whole_episodes_enter_the_buffer_and_a_long_one_is_cut_at_the_horizon():
    rule = dataclasses.replace(DENSE, scale=2.0, bias=1.0)
    steps = 9  # an episode ending at step 2 (terminated), one running 5 steps (cut), 2 steps pending
    traj = {
        "obs": jnp.arange(steps, dtype=jnp.float32)[:, None],
        "action": jnp.full((steps, 1), 2.0),
        "reward": jnp.ones(steps),
        "next_obs": jnp.arange(1, steps + 1, dtype=jnp.float32)[:, None],
        "terminated": jnp.arange(steps) == 2,
        "truncated": jnp.zeros(steps, bool),
    }
    pending, buf = absorb(pending_init(1, 1, 5), buffer_init(1, 1, 16), traj, rule)
    assert int(buf.size) == 8 and int(pending.length) == 1
    np.testing.assert_array_equal(buf.data.obs[:8, 0], np.arange(8))
    np.testing.assert_array_equal(buf.data.terminal[:8], [0, 0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(buf.data.reward[:8], np.full(8, 3.0))  # 1 * scale + bias
    assert float(buf.data.action.max()) < 1.0  # unit actions are clipped inside the tanh's range
    np.testing.assert_allclose(buf.data.mc_return[:3], [5.25, 4.5, 3.0])  # terminal: 3 + 0.5 g
    cut = mc_returns(np.full(5, 3.0), np.zeros(5, bool), 0.5, False, 0.0, tail=-4.0)
    np.testing.assert_allclose(buf.data.mc_return[3:8], cut, rtol=1e-6)
    assert float(pending.obs[0, 0]) == 8.0


@pytest.mark.fusion_emitters  # bit-identity across two programs (tests/conftest.py)
def test_the_device_loop_equals_the_host_loop_bit_for_bit(umaze_dataset):
    runs = {}
    for loop in ("host", "device"):
        runs[loop] = Finetuner(dataclasses.replace(TINY, online_loop=loop), umaze_dataset)
        Loop(runs[loop], quiet=True).run()
    host, device = runs["host"], runs["device"]
    assert device.on_device and not host.on_device
    leaves_equal((host.states, host.online, host.pending), (device.states, device.online, device.pending))
    assert host.history == device.history
    assert int(jnp.min(device.online.size)) > 0
    # the Q curve: the calibration probe at every online evaluation, the first one at the switch
    online = host.results()["curves"]["online"]
    assert np.asarray(online["q_pi_minus_mc"]).shape == np.asarray(online["success"]).shape
    assert [q[0] for q in online["q_pi_minus_mc"]] == host.switch_probe["q_pi_minus_mc"]


def test_the_device_loop_needs_a_jax_env():
    from rewire.data.episodes import Episode, EpisodeDataset
    from rewire.envs import make_spec

    spec = make_spec("Pendulum-v1")
    ends = np.array([False, True])
    episode = Episode(
        np.zeros((3, 3), np.float32), np.zeros((2, 1), np.float32), np.zeros(2), ends & False, ends
    )
    data = EpisodeDataset([episode], spec.env_id)
    config = dataclasses.replace(TINY, env_id=spec.env_id, online_loop="device")
    with pytest.raises(ValueError, match="needs a JAX env; Pendulum-v1 is a Gymnasium env"):
        Finetuner(config, data)
    with pytest.raises(ValueError, match="online_loop must be one of"):
        Finetuner(dataclasses.replace(TINY, online_loop="gpu"), data)


def test_the_benchmark_times_both_loops_on_the_same_agents(umaze_dataset):
    from rewire.bench.calql import online_loops

    timing = online_loops(TINY, umaze_dataset, chunks=2)
    assert timing["chunks"] == 2 and timing["host_steps_per_s"] > 0 and timing["device_steps_per_s"] > 0
    assert timing["device_over_host"] == timing["device_steps_per_s"] / timing["host_steps_per_s"]
    assert 0.0 < timing["host_update_share"] < 1.0


def test_the_dip_window_is_evaluated_on_its_own_number_of_episodes(umaze_dataset, monkeypatch):
    from rewire.rollout import JaxRunner

    asked, evaluate = [], JaxRunner.evaluate

    def spy(runner, params, key, episodes):
        asked.append(episodes)
        return evaluate(runner, params, key, episodes)

    monkeypatch.setattr(JaxRunner, "evaluate", spy)
    trainer = Finetuner(dataclasses.replace(TINY, early_eval_episodes=3), umaze_dataset)
    Loop(trainer, quiet=True).run()
    phases = [(r["phase"], r["step"]) for r in trainer.history]
    # offline at 0 and 100; online at the switch (inside the first fifth of 100 steps), 50 and 100
    assert phases == [("offline", 0), ("offline", 100), ("online", 0), ("online", 50), ("online", 100)]
    assert asked == [2, 2, 3, 2, 2]
