"""MuJoCo maze data: the waypoint-PD generator, Minari's on-disk format both ways, and D4RL maze files."""

import json
import warnings

import gymnasium
import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from rewire.calql.trainer import FinetuneConfig
from rewire.cli import app
from rewire.data.episodes import DatasetError, load_dataset, save_dataset
from rewire.data.mazes import OBS_KEYS, distance_map, next_cell, point_maze_dataset
from rewire.envs import make_spec


def test_the_planner_walks_the_grid_by_hand():
    maze = [
        [1, 1, 1, 1, 1],
        [1, 0, 0, 0, 1],
        [1, 0, 1, 0, 1],
        [1, 1, 1, 1, 1],
    ]
    dist = distance_map(maze, (2, 1))
    assert dist[1].tolist() == [-1, 1, 2, 3, -1] and dist[2].tolist() == [-1, 0, -1, 4, -1]
    assert next_cell(dist, (2, 3)) == (1, 3) and next_cell(dist, (1, 2)) == (1, 1)
    assert next_cell(dist, (2, 1)) == (2, 1)  # at the goal's cell the controller aims at the goal itself


def test_generated_point_maze_data_is_a_minari_dataset(tmp_path, monkeypatch):
    import minari

    spec = make_spec("PointMaze_UMaze-v3")
    clean = point_maze_dataset(spec, 5, seed=0, noise=0.0, detour_fraction=0.0)
    assert all(ep.success for ep in clean.episodes)  # the noise-free controller reaches every goal
    for ep, nxt in zip(clean.episodes, clean.episodes[1:], strict=False):
        assert ep.rewards.tolist() == [0.0] * (len(ep) - 1) + [1.0]  # sparse, success-terminal
        goal = ep.observations[:, 2:4]
        assert np.all(goal == goal[0]) and np.linalg.norm(ep.observations[-1, :2] - goal[0]) <= 0.45
        # a new goal on arrival, without a reset: the next stretch starts where this one ended
        np.testing.assert_array_equal(nxt.observations[0, 4:], ep.observations[-1, 4:])
        assert not np.array_equal(nxt.observations[0, 2:4], goal[0])

    root = tmp_path / "datasets"
    out = root / "rewire" / "pointmaze-umaze-v0"
    args = ["data", "generate", "--env", "PointMaze_UMaze-v3", "--episodes", "6", "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (out / "data").iterdir()) == ["main_data.hdf5", "metadata.json"]
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    theirs = minari.load_dataset("rewire/pointmaze-umaze-v0")
    ours = load_dataset(out, spec)
    assert theirs.total_episodes == len(ours.episodes) == 6
    assert ours.observation_keys == OBS_KEYS and ours.env_id == "PointMaze_UMaze-v3"
    for episode, mine in zip(theirs.iterate_episodes(), ours.episodes, strict=True):
        assert set(episode.observations) == {"achieved_goal", "desired_goal", "observation"}
        flat = [
            gymnasium.spaces.flatten(
                theirs.observation_space, {k: v[t] for k, v in episode.observations.items()}
            )
            for t in range(len(mine.observations))
        ]
        np.testing.assert_array_equal(mine.observations, np.asarray(flat, np.float32))
        np.testing.assert_array_equal(mine.actions, episode.actions)
        assert mine.terminations.tolist() == episode.terminations.tolist()
    again = point_maze_dataset(spec, 6, seed=0)  # one seed, the same bits
    for a, b in zip(again.episodes, ours.episodes, strict=True):
        np.testing.assert_array_equal(a.observations, b.observations)
    res = CliRunner().invoke(app, args)  # an existing dataset is never overwritten
    assert res.exit_code == 2 and "already exists" in res.output
    with pytest.raises(DatasetError, match="named by its id"):
        save_dataset(ours, tmp_path / "no_version", spec)


def _antmaze_episodes(rng, n_episodes=4, steps=30):
    """Random AntMaze-shaped episodes: position (2), goal (2) and the ant's 27 other state features."""
    out = []
    for _ in range(n_episodes):
        obs = {
            "achieved_goal": rng.normal(size=(steps + 1, 2)),
            "desired_goal": np.repeat(rng.normal(size=(1, 2)), steps + 1, 0),
            "observation": rng.normal(size=(steps + 1, 27)),
        }
        out.append((obs, rng.uniform(-1, 1, (steps, 8)).astype(np.float32)))
    return out


def test_users_antmaze_files_minari_and_d4rl_are_read_and_trained_on(tmp_path, monkeypatch):
    import minari
    from minari.data_collector import EpisodeBuffer

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        spec = make_spec("AntMaze_UMaze-v4")  # the version Minari's D4RL/antmaze datasets were recorded in
        env = gymnasium.make("AntMaze_UMaze-v4", continuing_task=False)
    assert (spec.obs_dim, spec.act_dim, spec.sparse) == (31, 8, True)
    rng = np.random.default_rng(0)
    episodes = _antmaze_episodes(rng)
    steps = len(episodes[0][1])
    buffers = [
        EpisodeBuffer(
            observations=obs,
            actions=acts,
            rewards=np.zeros(steps),
            terminations=np.zeros(steps, bool),
            truncations=np.arange(steps) == steps - 1,
        )
        for obs, acts in episodes
    ]
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    with warnings.catch_warnings():  # Minari asks for authorship metadata a test does not have
        warnings.simplefilter("ignore", UserWarning)
        minari.create_dataset_from_buffers(
            "user/antmaze-tiny-v0",
            buffers,
            observation_space=env.observation_space,
            action_space=env.action_space,
        )
    from_minari = load_dataset(tmp_path / "user" / "antmaze-tiny-v0", spec)  # Minari's own writing
    first = episodes[0][0]
    want = np.concatenate([first["achieved_goal"], first["desired_goal"], first["observation"]], 1)
    np.testing.assert_array_equal(from_minari.episodes[0].observations, want.astype(np.float32))

    # D4RL's flat layout: observations hold the position and the 27 features (29), the goal is infos/goal
    path = tmp_path / "antmaze-d4rl.hdf5"
    obs = np.concatenate(
        [np.concatenate([o["achieved_goal"][:-1], o["observation"][:-1]], 1) for o, _ in episodes]
    )
    goal = np.concatenate([o["desired_goal"][:-1] for o, _ in episodes])
    n = len(obs)
    with h5py.File(path, "w") as f:
        f["observations"], f["actions"] = obs, np.concatenate([a for _, a in episodes])
        f["rewards"], f["terminals"] = np.zeros(n), np.zeros(n, bool)
        f["timeouts"] = np.arange(n) % steps == steps - 1
        f["infos/goal"], f["infos/qpos"] = goal, rng.normal(size=(n, 15))
    from_d4rl = load_dataset(path, spec)
    np.testing.assert_array_equal(from_d4rl.episodes[0].observations, want[:-1].astype(np.float32))
    with pytest.raises(DatasetError, match=r"antmaze-d4rl\.hdf5: key 'episode 0/observations' has shape"):
        load_dataset(path, make_spec("PointMaze_UMaze-v3"))  # 29 + 2 + 2 columns do not make PointMaze's 8
    # trained on through the CLI, from the Minari directory, on the raw sparse reward
    minari_dir = tmp_path / "user" / "antmaze-tiny-v0"
    args = ["calql", "train", "--env", "AntMaze_UMaze-v4", "--dataset", str(minari_dir)]
    args += ["--methods", "calql", "--seeds", "1", "--offline-steps", "50", "--online-steps", "25"]
    args += ["--eval-every", "25", "--hidden", "16", "--batch-size", "16", "--n-actions", "2"]
    args += ["--reward-scale", "1", "--reward-bias", "0", "--out", str(tmp_path / "runs"), "--quiet"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = json.loads((run_dir / "config.json").read_text())
    assert (record["config"]["reward_scale"], record["config"]["reward_bias"]) == (1.0, 0.0)
    assert record["dataset"]["path"] == str(minari_dir.resolve())
    assert "final_success" in json.loads((run_dir / "results.json").read_text())["agents"][0]


def test_a_minari_directory_with_bad_parts_is_refused_with_its_file(tmp_path):
    spec = make_spec("PointMaze_UMaze-v3")
    out = save_dataset(point_maze_dataset(spec, 2, seed=1), tmp_path / "pm-v0", spec)
    meta = out / "data" / "metadata.json"
    text = meta.read_text()
    meta.write_text(text.replace('"data_format": "hdf5"', '"data_format": "arrow"'))
    with pytest.raises(DatasetError, match=r"metadata\.json: data_format 'arrow' is not read"):
        load_dataset(out, spec)
    meta.write_text("{not json")
    with pytest.raises(DatasetError, match=r"metadata\.json: cannot be read as JSON"):
        load_dataset(out, spec)
    meta.write_text(text)
    with h5py.File(out / "data" / "main_data.hdf5", "a") as f:
        del f["episode_1/observations/desired_goal"]
    with pytest.raises(DatasetError, match=r"episode_1: observation keys .* do not match"):
        load_dataset(out, spec)


def test_evaluation_waves_and_the_dip_windows_schedule(monkeypatch):
    import jax
    import jax.numpy as jnp

    from rewire import rollout
    from rewire.calql.trainer import online_eval_steps

    config = FinetuneConfig(online_steps=1000, eval_every=250, early_eval_every=100)
    # every 100 steps while inside the first fifth (200 steps), every 250 after it, and the end
    assert online_eval_steps(config) == [0, 100, 200, 450, 700, 950, 1000]
    spec = make_spec("PointMaze_UMaze-v3")
    runner = rollout.GymRunner(spec, lambda p, obs, k, d: jnp.tanh(p @ obs), 2, jax.random.PRNGKey(0))
    policies = jnp.asarray(np.random.default_rng(0).normal(size=(2, 2, 8)), jnp.float32)
    whole = runner.evaluate(policies, jax.random.PRNGKey(1), 3)
    monkeypatch.setattr(rollout, "EVAL_ENVS", 2)  # one episode per agent at a time, the envs reused
    waves = runner.evaluate(policies, jax.random.PRNGKey(1), 3)
    assert len(runner.eval_envs) == 6 and whole["length"].shape == (2, 3)
    for key in ("return", "success", "length"):
        np.testing.assert_array_equal(whole[key], waves[key])
