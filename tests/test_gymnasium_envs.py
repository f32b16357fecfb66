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
        "rewire.report.plot_curves",
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


class Slide(__import__("gymnasium").Env):
    """A user's env: x' = x + 0.1 a, reward -|x - 1|, 20 steps; actions in [-2, 2] (not the unit box)."""

    def __init__(self):
        import gymnasium as gym

        self.observation_space = gym.spaces.Box(-3.0, 3.0, (1,))
        self.action_space = gym.spaces.Box(-2.0, 2.0, (1,))

    def reset(self, seed=None, options=None):
        self.x, self.t = -1.0 + 0.1 * np.random.default_rng(seed).standard_normal(), 0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x, self.t = float(np.clip(self.x + 0.1 * action[0], -3, 3)), self.t + 1
        return np.array([self.x], np.float32), -abs(self.x - 1.0), False, self.t >= 20, {}


def _slide_arrays():
    env, rows, rng = Slide(), [], np.random.default_rng(0)
    for episode in range(4):
        obs, _ = env.reset(seed=episode)
        for _ in range(20):
            action = np.clip([2.0 * (1.0 - obs[0]) + rng.normal()], -2, 2).astype(np.float32)
            next_obs, reward, _, truncated, _ = env.step(action)
            rows.append((obs, action, reward, truncated))
            obs = next_obs
    return [np.array(column) for column in zip(*rows, strict=True)]


def test_from_arrays_splits_at_timeouts_and_refuses_bad_arrays():
    import pytest

    from rewire.data import DatasetError, from_arrays

    obs, actions, rewards, timeouts = _slide_arrays()
    data = from_arrays(obs, actions, rewards, np.zeros(len(obs)), timeouts)
    # a timeout without next_observations drops its last transition (D4RL's qlearning semantics)
    assert [len(ep) for ep in data.episodes] == [19] * 4
    with pytest.raises(DatasetError, match="<arrays>: key 'rewards' has 80 NaN/inf"):
        from_arrays(obs, actions, rewards * np.nan, np.zeros(len(obs)), timeouts)
    with pytest.raises(DatasetError, match="'actions' has 79 rows but 'rewards' has 80"):
        from_arrays(obs, actions[1:], rewards, np.zeros(len(obs)), timeouts)


def test_fit_on_a_gymnasium_env_instance_of_ones_own(tmp_path):
    import rewire

    obs, actions, rewards, timeouts = _slide_arrays()
    data = rewire.data.from_arrays(obs, actions, rewards, np.zeros(len(obs)), timeouts)
    config = __import__("dataclasses").replace(CONFIG, online_steps=40, chunk=20, eval_every=20)
    result = rewire.calql.fit(data, Slide(), config, out=tmp_path / "run")
    assert result.record["config"]["env_id"] == "Slide" and result.record["config"]["agent"]["act_dim"] == 1
    assert {"critic_loss", "q_data"} <= set(next(r for r in result.metrics if r["kind"] == "train"))
    policy = result.policy("calql/seed0")
    action = policy.act(np.array([0.0], np.float32))
    assert action.shape == (1,) and -2.0 <= action[0] <= 2.0
    sample = policy.act(np.array([0.0], np.float32), jax.random.key(1))
    assert not np.array_equal(action, sample)
    loaded = rewire.calql.CalQLPolicy.load(policy.save(tmp_path / "policy.ckpt"))
    np.testing.assert_array_equal(
        loaded.act(np.array([0.5], np.float32)), policy.act(np.array([0.5], np.float32))
    )
    scores = rewire.evaluate(policy, Slide(), episodes=3)
    assert (
        scores["return"].shape == (3,) and (scores["length"] == 20).all() and not scores["terminated"].any()
    )
    again = rewire.calql.fit(data, Slide(), config, out=tmp_path / "run")  # the same run: resumed, finished
    assert again.summary["agents"] == result.summary["agents"]


def test_fit_on_a_jax_env_object():
    import rewire
    from rewire.envs import as_spec
    from rewire.envs.pointmaze import MazeParams, PointMaze

    env = (PointMaze("open"), MazeParams())
    spec = as_spec(env)
    assert (spec.is_jax, spec.given, spec.obs_dim, spec.act_dim, spec.horizon) == (True, True, 2, 2, 100)
    data = scripted_dataset(make_spec("PointMaze-open-v0"), 3, seed=0)
    config = __import__("dataclasses").replace(CONFIG, online_steps=50, chunk=25, eval_every=25)
    result = rewire.calql.fit(data, env, config)
    assert len(result.summary["curves"]["online"]["steps"]) == 3
    assert rewire.evaluate(result.policy(0), env, episodes=2)["length"].max() <= 100


def test_a_mujoco_maze_trains_by_id_with_its_dict_observations_flattened(tmp_path):
    import dataclasses

    import gymnasium
    import pytest

    import rewire
    from rewire.envs import make_gym

    spec = make_spec("PointMaze_UMaze-v3")
    # achieved_goal (2), desired_goal (2), observation (4): the Dict's sorted keys, as spaces.flatten orders
    assert (spec.obs_dim, spec.act_dim, spec.horizon, spec.sparse, spec.is_jax) == (8, 2, 300, True, False)
    obs, _ = make_gym("PointMaze_UMaze-v3").reset(seed=0)
    raw_env = gymnasium.make("PointMaze_UMaze-v3", continuing_task=False)
    raw, _ = raw_env.reset(seed=0)
    want = np.concatenate([raw["achieved_goal"], raw["desired_goal"], raw["observation"]])
    np.testing.assert_array_equal(obs, want)
    assert np.array_equal(gymnasium.spaces.flatten(raw_env.observation_space, raw), want)
    rng = np.random.default_rng(0)  # 4 random-action episodes of 30 steps, cut by a timeout
    n = 120
    obs_rows = np.concatenate([rng.normal(size=(n, 4)), rng.normal(size=(n, 4))], 1).astype(np.float32)
    timeouts = np.arange(n) % 30 == 29
    data = rewire.data.from_arrays(obs_rows, rng.uniform(-1, 1, (n, 2)), np.zeros(n), np.zeros(n), timeouts)
    config = dataclasses.replace(CONFIG, online_steps=50, chunk=25, eval_every=50, offline_steps=50)
    result = rewire.calql.fit(data, "PointMaze_UMaze-v3", config, out=tmp_path / "run")
    assert result.record["config"]["env_id"] == "PointMaze_UMaze-v3"
    assert [r["step"] for r in result.metrics if r["kind"] == "eval" and r["phase"] == "online"] == [0, 50]
    assert "final_success" in result.summary["agents"][0]  # a sparse task reports success
    with pytest.raises(ValueError, match="unknown environment id 'PointMaze_Nowhere-v3'"):
        make_spec("PointMaze_Nowhere-v3")
