"""A short CQL and Cal-QL run must learn the open maze offline (success >= 0.8 at the switch) and keep
it through a short online phase."""

import numpy as np
import pytest

from rewire.calql.trainer import FinetuneConfig, Finetuner
from rewire.data.generate import scripted_dataset
from rewire.envs import make_spec, maze_id
from rewire.loop import Loop

THRESHOLD = 0.8


@pytest.mark.slow  # about 5 min on 2 cores, a third of `make test`'s budget
def test_cql_and_calql_learn_the_open_maze():
    spec = make_spec(maze_id("open"))
    config = FinetuneConfig(
        env_id=spec.env_id,
        seeds=1,
        offline_steps=5_000,
        online_steps=500,
        chunk=50,
        eval_every=250,
        offline_eval_every=5_000,
        eval_episodes=20,
    )
    trainer = Finetuner(config, scripted_dataset(spec, 200, seed=0))
    behaviour = np.mean([e.success for e in scripted_dataset(spec, 200, seed=0).episodes])
    Loop(trainer, quiet=True).run()
    results = {a["agent"]: a for a in trainer.results()["agents"]}
    for label in ("cql/seed0", "calql/seed0"):
        assert results[label]["success_at_switch"] >= THRESHOLD > behaviour, results[label]
        assert results[label]["final_success"] >= THRESHOLD, results[label]
