"""Dataset files: round trips, episode splitting, and every bad input refused with file, key and problem."""

import h5py
import numpy as np
import pytest

from rewire.calql.trainer import FinetuneConfig, Finetuner
from rewire.data.episodes import DatasetError, Episode, EpisodeDataset, load_dataset, save_dataset
from rewire.envs import make_spec, maze_id

SPEC = make_spec(maze_id("open"))


def tiny_dataset():
    rng = np.random.default_rng(0)
    eps = []
    for length, success in ((3, True), (4, False)):
        eps.append(
            Episode(
                observations=rng.normal(size=(length + 1, 2)).astype(np.float32),
                actions=rng.uniform(-1, 1, size=(length, 2)).astype(np.float32),
                rewards=np.array([0.0] * (length - 1) + [float(success)], np.float32),
                terminations=np.array([False] * (length - 1) + [success]),
                truncations=np.array([False] * (length - 1) + [not success]),
            )
        )
    return EpisodeDataset(eps, SPEC.env_id, {"source": "test"})


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_round_trip(tmp_path, suffix):
    ds = tiny_dataset()
    loaded = load_dataset(save_dataset(ds, tmp_path / f"d{suffix}"), SPEC)
    assert loaded.env_id == SPEC.env_id and loaded.metadata == {"source": "test"}
    assert len(loaded.episodes) == 2
    for a, b in zip(ds.episodes, loaded.episodes, strict=True):
        for key in ("observations", "actions", "rewards", "terminations", "truncations"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


def flat(n=6):
    rng = np.random.default_rng(1)
    return {
        "observations": rng.normal(size=(n, 2)).astype(np.float32),
        "actions": rng.uniform(-1, 1, size=(n, 2)).astype(np.float32),
        "rewards": np.zeros(n, np.float32),
        "terminals": np.array([0, 1, 0, 0, 0, 0], bool)[:n],
        "timeouts": np.array([0, 0, 0, 1, 0, 0], bool)[:n],
    }


def test_flat_file_splits_at_terminals_and_timeouts_and_drops_timeout_step(tmp_path):
    path = tmp_path / "flat.npz"
    np.savez(path, **flat())
    eps = load_dataset(path, SPEC).episodes
    # [0,1] terminal; [2,3] timeout without next_observations -> last step dropped; [4,5] end of file
    assert [len(e) for e in eps] == [2, 1, 1]
    assert eps[0].terminations[-1] and eps[1].truncations[-1]


def test_flat_hdf5_is_read(tmp_path):
    path = tmp_path / "flat.hdf5"
    with h5py.File(path, "w") as f:
        for k, v in flat().items():
            f.create_dataset(k, data=v)
    assert len(load_dataset(path, SPEC).episodes) == 3


def write_npz(tmp_path, **overrides):
    arrays = {**flat(), **overrides}
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "overrides, key, problem",
    [
        ({"rewards": None}, "rewards", "missing key"),
        ({"actions": np.zeros((5, 2), np.float32)}, "actions", "5 rows"),
        ({"rewards": np.array([0, 0, np.nan, 0, 0, 0], np.float32)}, "rewards", "NaN/inf"),
        ({"observations": np.full((6, 2), np.inf, np.float32)}, "observations", "NaN/inf"),
        ({"observations": np.zeros((6, 3), np.float32)}, "observations", "needs 2 features"),
        ({"actions": np.full((6, 2), 1.5, np.float32)}, "actions", "action bounds"),
        ({"env_id": np.asarray("Pendulum-v1")}, "env_id", "training is on"),
    ],
)
def test_bad_files_are_refused_with_file_key_and_problem(tmp_path, overrides, key, problem):
    path = write_npz(tmp_path, **overrides)
    with pytest.raises(DatasetError) as err:
        load_dataset(path, SPEC)
    message = str(err.value)
    assert str(path) in message and key in message and problem in message


def test_missing_key_in_minari_group(tmp_path):
    path = save_dataset(tiny_dataset(), tmp_path / "m.h5")
    with h5py.File(path, "a") as f:
        del f["episode_1/truncations"]
    with pytest.raises(DatasetError, match=r"m\.h5: missing key 'episode_1/truncations'"):
        load_dataset(path, SPEC)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "nothing.npz")
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(DatasetError, match="unknown format"):
        load_dataset(tmp_path / "x.csv")


def test_nothing_is_trained_on_bad_data():
    ds = tiny_dataset()
    ds.episodes[1].rewards[0] = np.nan
    with pytest.raises(DatasetError, match="NaN/inf"):
        Finetuner(FinetuneConfig(env_id=SPEC.env_id, seeds=1), ds)


def test_a_flat_file_with_no_episode_ends_is_refused(tmp_path):
    path = tmp_path / "flat.npz"
    n = 400
    np.savez(
        path,
        observations=np.zeros((n, 2)),
        actions=np.zeros((n, 2)),
        rewards=np.zeros(n),
        terminals=np.zeros(n),
    )
    with pytest.raises(
        DatasetError, match="no episode ends: 'terminals' and 'timeouts' are all 0, so the 400 rows"
    ):
        load_dataset(path)
