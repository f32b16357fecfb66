"""Any Gymnasium Box-action env trains through the same trainer (Python-stepped runner)."""

import jax
import numpy as np

from rewire.calql import cql
from rewire.calql.trainer import FinetuneConfig, Finetuner
from rewire.data.generate import scripted_dataset
from rewire.envs import make_spec
from rewire.loop import CHECKPOINT, Loop, read_checkpoint

CONFIG = FinetuneConfig(
    env_id="Pendulum-v1",
    seeds=1,
    methods=("calql",),
    offline_steps=100,
    offline_block=50,
    online_steps=250,
    chunk=125,
    eval_every=250,
    offline_eval_every=1000,
    eval_episodes=1,
    probe_size=32,
    agent=cql.CQLConfig(actor_hidden=(16,), critic_hidden=(16,), batch_size=16, cql_n_actions=2),
)


def test_pendulum_offline_to_online_runs_and_resumes_exactly(tmp_path):
    spec = make_spec("Pendulum-v1")
    assert not spec.sparse and spec.action_high == (2.0,)
    data = scripted_dataset(spec, 3, seed=0)
    full = Finetuner(CONFIG, data)
    Loop(full, quiet=True).run()
    # stops inside the first online episode: the environment is rebuilt from its id, episode seed and the
    # actions since its reset, never unpickled
    Loop(Finetuner(CONFIG, data), tmp_path, every=0, quiet=True).run(max_steps=3)
    saved = read_checkpoint(tmp_path / CHECKPOINT, Finetuner.kind)[0].group("runner")
    assert set(saved) == {"seed", "episodes", "steps", "actions", "obs"} and int(saved["steps"][0]) == 125
    resumed = Finetuner(CONFIG, data)
    Loop(resumed, tmp_path, quiet=True).run()
    for a, b in zip(jax.tree.leaves(full.states), jax.tree.leaves(resumed.states), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert full.history == resumed.history
    assert int(full.online.size[0]) == 200  # one finished 200-step episode; the unfinished one waits
    row = full.results()["agents"][0]
    assert np.isfinite(row["final_return"]) and "cumulative_regret" not in row  # no success on dense tasks


def test_cli_on_a_dense_reward_env_reports_returns_and_records_its_dataset(tmp_path, monkeypatch):
    import hashlib
    import json

    from typer.testing import CliRunner

    from rewire.cli import app

    runner = CliRunner()
    data = tmp_path / "pendulum.npz"
    assert (
        runner.invoke(
            app, ["data", "generate", "--env", "Pendulum-v1", "--episodes", "2", "--out", str(data)]
        ).exit_code
        == 0
    )
    plotted = []
    monkeypatch.setattr(
        "rewire.bench.calql.plot_curves",
        lambda path, x, curves, xlabel, ylabel, *a, **k: plotted.append(ylabel),
    )
    args = [
        "calql",
        "train",
        "--env",
        "Pendulum-v1",
        "--dataset",
        str(data),
        "--methods",
        "calql",
        "--seeds",
        "1",
    ]
    args += [
        "--offline-steps",
        "100",
        "--online-steps",
        "200",
        "--eval-every",
        "200",
        "--offline-eval-every",
        "50",
    ]
    args += [
        "--hidden",
        "16",
        "--batch-size",
        "16",
        "--n-actions",
        "2",
        "--out",
        str(tmp_path / "runs"),
        "--quiet",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    row = results["agents"][0]
    assert {"final_return", "return_at_switch", "dip_depth"} <= set(row)
    assert not any("success" in key for key in row) and "success" not in res.output
    assert plotted == ["return", "return"]  # online and offline curves, as returns
    assert results["curves"]["offline"]["steps"] == [0, 50]
    record = json.loads((run_dir / "config.json").read_text())
    assert record["dataset"] == {
        "path": str(data.resolve()),
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
    }
    assert (record["config"]["agent"]["obs_dim"], record["config"]["agent"]["act_dim"]) == (3, 1)
