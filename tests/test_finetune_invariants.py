"""jit == no-jit, same seed == same run, checkpoint -> resume == uninterrupted run."""

import jax
import numpy as np
import pytest

from rewire.calql import cql
from rewire.calql.trainer import FinetuneConfig, Finetuner
from rewire.loop import CHECKPOINT, Loop, read_checkpoint

TINY = FinetuneConfig(
    env_id="PointMaze-umaze-v0",
    seeds=1,
    offline_steps=200,
    offline_block=100,
    online_steps=100,
    chunk=25,
    eval_every=50,
    offline_eval_every=100,
    eval_episodes=2,
    probe_size=64,
    agent=cql.CQLConfig(actor_hidden=(16, 16), critic_hidden=(16, 16), batch_size=32, cql_n_actions=2),
)


def leaves_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def full_run(umaze_dataset):
    trainer = Finetuner(TINY, umaze_dataset)
    Loop(trainer, quiet=True).run()
    return trainer


def test_jit_equals_no_jit(umaze_dataset):
    trainer = Finetuner(TINY, umaze_dataset)
    config = trainer.config.agent
    state = jax.tree.map(lambda x: x[0], trainer.states)
    batch = jax.tree.map(lambda x: x[:32], trainer.offline.data)
    with jax.disable_jit():
        eager, m_eager = cql.update(state, batch, config)
    jitted, m_jit = jax.jit(cql.update, static_argnames="config")(state, batch, config)
    for x, y in zip(jax.tree.leaves((eager, m_eager)), jax.tree.leaves((jitted, m_jit)), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-5, atol=2e-6)


def test_same_seed_same_run(full_run, umaze_dataset):
    again = Finetuner(TINY, umaze_dataset)
    Loop(again, quiet=True).run()
    leaves_equal(full_run.states, again.states)
    assert full_run.history == again.history


def test_other_seed_other_run(full_run, umaze_dataset):
    other = Finetuner(TINY.__class__(**{**TINY.__dict__, "seed": 1}), umaze_dataset)
    assert not np.array_equal(
        np.asarray(jax.tree.leaves(other.states.params)[0]),
        np.asarray(jax.tree.leaves(full_run.states.params)[0]),
    )


@pytest.mark.parametrize("stop_after", [1, 4])  # mid-offline, and mid-online with a pending episode
def test_checkpoint_resume_equals_uninterrupted(full_run, umaze_dataset, tmp_path, stop_after):
    Loop(Finetuner(TINY, umaze_dataset), tmp_path, every=0, quiet=True).run(max_steps=stop_after)
    online_done = read_checkpoint(tmp_path / CHECKPOINT, Finetuner.kind)[0].meta["online_done"]
    assert online_done == 0 or stop_after > 2
    resumed = Finetuner(TINY, umaze_dataset)
    Loop(resumed, tmp_path, quiet=True).run()
    leaves_equal(full_run.states, resumed.states)
    leaves_equal(full_run.online, resumed.online)
    assert full_run.history == resumed.history


def test_calql_and_cql_start_paired(umaze_dataset):
    trainer = Finetuner(TINY, umaze_dataset)
    cql_state, calql_state = (jax.tree.map(lambda x, i=i: x[i], trainer.states) for i in (0, 1))
    leaves_equal(cql_state.params, calql_state.params)
    assert not bool(cql_state.calibrate) and bool(calql_state.calibrate)


def test_a_diverging_critic_stops_the_run_with_a_message(umaze_dataset):
    from rewire.calql.trainer import DivergedCritic

    config = FinetuneConfig(
        **{
            **TINY.__dict__,
            "agent": TINY.agent.__class__(**{**TINY.agent.__dict__, "critic_lr": 100.0, "tau": 1.0}),
        }
    )
    trainer = Finetuner(config, umaze_dataset)
    before = jax.tree.leaves(trainer.states)
    with pytest.raises(DivergedCritic, match=r"the critic diverged after offline step 0: cql/seed0 \(mean Q"):
        Loop(trainer, quiet=True).run()
    leaves_equal(before, jax.tree.leaves(trainer.states))  # the diverged update is not kept
