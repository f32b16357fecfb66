"""Every loader against a generated corpus of bad input: empty files, truncations, random bytes, a
directory, another loader's valid file, wrong dtypes, NaN/inf, absurd declared shapes, missing and extra
keys. Each case must give exit code 2, one line on stderr naming the file, no traceback, and write nothing.

A loader is a command reading one file (a data set, a HaDES dataset, a checkpoint, a model or a policy, a
text data set, a state directory's state file, a user's MDP, a run record); its valid file comes from a
real run. Cases that do not make a file invalid for a format are left out of it: a truncated text file is
still text, and D4RL/Minari data sets may carry keys of their own (`infos/...`)."""

import io
import json
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from rewire import store
from rewire.cli import app
from rewire.data.episodes import save_dataset
from rewire.data.generate import scripted_dataset
from rewire.data.mazes import point_maze_dataset
from rewire.envs import make_spec, maze_id

MAZE = maze_id("umaze")
POINT_MAZE = "PointMaze_UMaze-v3"


def _npz(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _absurd_npz(arrays: dict, name: str) -> bytes:
    """An NPZ whose member `name` declares 10^12 rows in its header but holds a few bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for key, value in arrays.items():
            value = np.asarray(value)
            with z.open(f"{key}.npy", "w") as m:
                if key == name:
                    np.lib.format.write_array_header_1_0(
                        m, {"descr": value.dtype.str, "fortran_order": False, "shape": (10**12,)}
                    )
                    m.write(value.tobytes())
                else:
                    np.lib.format.write_array(m, value)
    return buffer.getvalue()


def _rewire_file(path: Path, change) -> bytes:
    """A valid rewire file with its arrays changed by `change(arrays) -> arrays` (header consistent)."""
    stored = store.read(path)
    out = path.with_name(".changed")
    store.write(out, stored.kind, change(dict(stored.arrays)), stored.meta)
    data = out.read_bytes()
    out.unlink()
    return data


def _first_float(arrays: dict) -> str:
    return next(k for k, v in arrays.items() if v.dtype.kind == "f" and v.size)


def _with_header(path: Path, edit) -> bytes:
    """A valid rewire file whose rewire.json is edited by `edit(header)` (the arrays untouched)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buffer, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "rewire.json":
                header = json.loads(data)
                edit(header)
                data = json.dumps(header).encode()
            dst.writestr(name, data)
    return buffer.getvalue()


# --- what each corpus case does to a valid file of each loader's format: bytes (or None: not applicable)


def binary_cases(valid: Path, other: Path) -> dict:
    data = valid.read_bytes()
    rng = np.random.default_rng(0)
    return {
        "empty": b"",
        "first-byte": data[:1],
        "truncated-10%": data[: len(data) // 10],
        "truncated-50%": data[: len(data) // 2],
        "truncated-90%": data[: 9 * len(data) // 10],
        "minus-one-byte": data[:-1],
        "random-bytes": rng.integers(0, 256, len(data), dtype=np.uint8).tobytes(),
        "other-loader": other.read_bytes(),
    }


def rewire_cases(valid: Path) -> dict:
    def wrong_dtype(a):
        k = _first_float(a)
        return a | {k: a[k].astype(np.float64 if a[k].dtype == np.float32 else np.float32)}

    def nan(a):
        k = _first_float(a)
        return a | {k: np.full_like(a[k], np.nan)}

    def missing(a):
        return {k: v for k, v in list(a.items())[1:]}

    def absurd(header):
        name = next(iter(header["arrays"]))
        header["arrays"][name]["shape"] = [10**12]

    return {
        "wrong-dtype": _rewire_file(valid, wrong_dtype),
        "nan": _nan_file(valid, nan),
        "absurd-shape": _with_header(valid, absurd),
        "missing-key": _rewire_file(valid, missing),
        "extra-key": _rewire_file(valid, lambda a: a | {"junk/extra": np.zeros(3)}),
    }


def _nan_file(valid: Path, nan) -> bytes:
    """store.write refuses NaN, so write the arrays with NaN and a matching header by hand."""
    stored = store.read(valid)
    arrays = nan(dict(stored.arrays))
    buffer = io.BytesIO()
    header = {
        "format": "rewire",
        "version": 1,
        "kind": stored.kind,
        "meta": stored.meta,
        "arrays": {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in arrays.items()},
    }
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("rewire.json", json.dumps(header))
        for k, v in arrays.items():
            with z.open(f"{k}.npy", "w") as m:
                np.lib.format.write_array(m, v)
    return buffer.getvalue()


def flat_dataset() -> dict:
    rows = 60
    terminals = np.zeros(rows)
    terminals[29] = terminals[59] = 1
    return {
        "observations": np.zeros((rows, 2), np.float32),
        "actions": np.zeros((rows, 2), np.float32),
        "rewards": np.zeros(rows, np.float32),
        "terminals": terminals,
    }


def npz_dataset_cases() -> dict:
    flat = flat_dataset()
    return {
        "wrong-dtype": _npz(flat | {"observations": np.full((60, 2), "a")}),
        "nan": _npz(flat | {"rewards": np.full(60, np.nan, np.float32)}),
        "inf": _npz(flat | {"observations": np.full((60, 2), np.inf, np.float32)}),
        "absurd-shape": _absurd_npz(flat, "rewards"),
        "missing-key": _npz({k: v for k, v in flat.items() if k != "terminals"}),
    }


def h5_dataset_cases(tmp: Path) -> dict:
    def h5(fill) -> bytes:
        path = tmp / "made.h5"
        with h5py.File(path, "w") as f:
            fill(f.create_group("episode_0"))
        data = path.read_bytes()
        path.unlink()
        return data

    def episode(group, **override):
        arrays = {
            "observations": np.zeros((11, 2), np.float32),
            "actions": np.zeros((10, 2), np.float32),
            "rewards": np.zeros(10, np.float32),
            "terminations": np.zeros(10, bool),
            "truncations": np.zeros(10, bool),
        } | override
        for key, value in arrays.items():
            if value is not None:
                group.create_dataset(key, data=value)

    def absurd(group):
        episode(group, rewards=None)
        group.create_dataset("rewards", shape=(10**12,), dtype=np.float32, chunks=(1024,))

    return {
        "wrong-dtype": h5(lambda g: episode(g, observations=np.full((11, 2), b"a"))),
        "nan": h5(lambda g: episode(g, rewards=np.full(10, np.nan, np.float32))),
        "absurd-shape": h5(absurd),
        "missing-key": h5(lambda g: episode(g, rewards=None)),
    }


def minari_main_cases(tmp: Path) -> dict:
    """Minari's main_data.hdf5 under a Dict observation space (PointMaze's three keys)."""

    def h5(**override) -> bytes:
        path = tmp / "main.h5"
        with h5py.File(path, "w") as f:
            group = f.create_group("episode_0")
            obs = group.create_group("observations")
            keys = (("achieved_goal", 2), ("desired_goal", 2), ("observation", 4), ("extra", 1))
            for key, width in keys[:3] if "extra" not in override else keys:
                value = override.pop(key, np.zeros((11, width)))
                if value is not None:
                    obs.create_dataset(key, data=value)
            arrays = {
                "actions": np.zeros((10, 2), np.float32),
                "rewards": np.zeros(10),
                "terminations": np.zeros(10, bool),
                "truncations": np.zeros(10, bool),
            } | override
            for key, value in arrays.items():
                if isinstance(value, str):  # "absurd": declares far more rows than the file holds
                    group.create_dataset(key, shape=(10**12,), dtype=np.float64, chunks=(1024,))
                elif value is not None:
                    group.create_dataset(key, data=value)
        data = path.read_bytes()
        path.unlink()
        return data

    return {
        "wrong-dtype": h5(observation=np.full((11, 4), b"a")),
        "nan": h5(rewards=np.full(10, np.nan)),
        "inf": h5(achieved_goal=np.full((11, 2), np.inf)),
        "absurd-shape": h5(rewards="absurd"),
        "missing-key": h5(desired_goal=None),
        "extra-key": h5(extra=np.zeros((11, 1))),  # an observation key the space does not have
    }


def minari_metadata_cases(valid: Path) -> dict:
    meta = json.loads(valid.read_text())
    bad_space = meta | {"observation_space": json.dumps({"type": "Box", "shape": [[8]]})}
    return {
        "wrong-dtype": json.dumps(meta | {"observation_space": 5}).encode(),
        "missing-key": json.dumps({k: v for k, v in meta.items() if k != "observation_space"}).encode(),
        "extra-key": json.dumps(bad_space).encode(),
        "latin-1": valid.read_text().replace("hdf5", "hdf5\u00e9").encode("latin-1")
        + "\xe9".encode("latin-1"),
    }


def hades_dataset_cases(valid: Path) -> dict:
    with np.load(valid, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return {
        "wrong-dtype": _npz(arrays | {"states": arrays["states"].astype(np.int32)}),
        "nan": _npz(arrays | {"states": np.full_like(arrays["states"], np.nan)}),
        "absurd-shape": _absurd_npz(arrays, "states"),
        "missing-key": _npz({k: v for k, v in arrays.items() if k != "states"}),
        "extra-key": _npz(arrays | {"junk": np.zeros(3)}),
    }


def mdp_arrays() -> dict:
    """A valid stationary 2-state, 2-action MDP file's arrays."""
    return {
        "transitions": np.full((2, 2, 2), 0.5),
        "reward_mean": np.full((2, 2), 0.5),
        "initial": np.array([1.0, 0.0]),
        "horizon": np.array(3),
    }


def mdp_cases() -> dict:
    arrays = mdp_arrays()
    return {
        "wrong-dtype": _npz(arrays | {"horizon": np.array(3.0)}),
        "nan": _npz(arrays | {"reward_mean": np.full((2, 2), np.nan)}),
        "inf": _npz(arrays | {"initial": np.array([np.inf, 0.0])}),
        "absurd-shape": _absurd_npz(arrays, "transitions"),
        "missing-key": _npz({k: v for k, v in arrays.items() if k != "initial"}),
        "extra-key": _npz(arrays | {"junk": np.zeros(3)}),
    }


def text_cases(valid: Path, other: Path, suffix: str) -> dict:
    header = ["text,label,group", "the nurse helped her,1,0"]
    good = ["he fixed the server,0,1", "she wrote code,0,0", "he cared for patients,1,1"]
    csv = lambda lines: ("\n".join(lines) + "\n").encode()  # noqa: E731
    jsonl = lambda rows: "".join(json.dumps(r) + "\n" for r in rows).encode()  # noqa: E731
    row = {"text": "the nurse helped her", "label": 1, "group": 0}
    rng = np.random.default_rng(1)
    common = {
        "empty": b"",
        "random-bytes": rng.integers(128, 256, 400, dtype=np.uint8).tobytes(),
        "other-loader": other.read_bytes(),
        "latin-1": "text,label,group\ncaf\u00e9 nurse,1,0\n".encode("latin-1"),
    }
    if suffix == ".csv":
        return common | {
            "wrong-dtype": csv([*header, "he fixed it,yes,1", *good]),
            "nan": csv([*header, "he fixed it,nan,1", *good]),
            "missing-key": csv(["text,group", "the nurse helped her,0"]),
        }
    return common | {
        "wrong-dtype": jsonl([row, row | {"label": "yes"}]),
        "nan": jsonl([row, row | {"label": float("nan")}]),
        "missing-key": jsonl([row, {"text": "he fixed it", "group": 1}]),
    }


def record_cases(valid: Path) -> dict:
    record = json.loads(valid.read_text())
    data = valid.read_bytes()
    return {
        "empty": b"",
        "truncated-50%": data[: len(data) // 2],
        "random-bytes": np.random.default_rng(2).integers(0, 256, len(data), dtype=np.uint8).tobytes(),
        "other-loader": _npz(flat_dataset()),
        "wrong-dtype": json.dumps(record | {"config": record["config"] | {"tasks": "eight"}}).encode(),
        "nan": json.dumps(record | {"config": record["config"] | {"budget": float("nan")}}).encode(),
        "missing-key": json.dumps({k: v for k, v in record.items() if k != "config"}).encode(),
        "extra-key": json.dumps(record | {"config": record["config"] | {"colour": "red"}}).encode(),
    }


@pytest.fixture(scope="module")
def corpus(tiny_runs, tmp_path_factory):
    """(loader, case) -> (the run or file folder to copy, the file to replace, its bad bytes, the argv)."""
    tmp = tmp_path_factory.mktemp("corpus")
    runs = {name: ref.directory for name, ref in tiny_runs.items()}
    valid = tmp / "valid"
    valid.mkdir()
    data = scripted_dataset(make_spec(MAZE), 4, seed=0)
    save_dataset(data, valid / "data.npz")
    save_dataset(data, valid / "data.h5")
    shutil.copy(runs["hades"] / "dataset.npz", valid / "dataset.npz")
    runs["minari"] = save_dataset(
        point_maze_dataset(make_spec(POINT_MAZE), 2, seed=0), valid / "pointmaze-v0", make_spec(POINT_MAZE)
    )
    (valid / "texts.csv").write_text("text,label,group\n")
    (valid / "texts.jsonl").write_text("")
    ckpt = runs["amf"] / "checkpoint.ckpt"
    out = {}

    def add(loader, folder, name, cases, argv):
        for case, content in cases.items():
            out[f"{loader}:{case}"] = (folder, name, content, argv)

    inspect = ["data", "inspect", "{file}", "--env", MAZE]
    add(
        "npz-dataset", None, "data.npz", binary_cases(valid / "data.npz", ckpt) | npz_dataset_cases(), inspect
    )
    add(
        "hdf5-dataset",
        None,
        "data.h5",
        binary_cases(valid / "data.h5", ckpt) | h5_dataset_cases(tmp),
        inspect,
    )
    add(
        "hades-dataset",
        None,
        "dataset.npz",
        binary_cases(valid / "dataset.npz", ckpt) | hades_dataset_cases(valid / "dataset.npz"),
        ["hades", "evaluate", "{file}", "--inits", "1", "--episodes", "1"],
    )
    minari_inspect = ["data", "inspect", "{run}", "--env", POINT_MAZE]
    main, meta = runs["minari"] / "data" / "main_data.hdf5", runs["minari"] / "data" / "metadata.json"
    add(
        "minari-main",
        "minari",
        "data/main_data.hdf5",
        binary_cases(main, ckpt) | minari_main_cases(tmp),
        minari_inspect,
    )
    add(
        "minari-metadata",
        "minari",
        "data/metadata.json",
        binary_cases(meta, ckpt) | minari_metadata_cases(meta),
        minari_inspect,
    )
    other = valid / "data.npz"  # a valid plain NPZ: another loader's file for every rewire-file loader
    for loader, run, name, argv in [
        ("checkpoint", "amf", "checkpoint.ckpt", ["amf", "run", "--resume", "{run}"]),
        ("model-file", "edit", "model.ckpt", ["edit", "apply", "{run}/policy.ckpt", "{run}/model.ckpt"]),
        ("policy-file", "edit", "policy.ckpt", ["edit", "apply", "{run}/policy.ckpt", "{run}/model.ckpt"]),
        ("state-directory", "unlearn", "state.ckpt", ["unlearn", "delete", "{run}", "--user", "1"]),
    ]:
        cases = binary_cases(runs[run] / name, other) | rewire_cases(runs[run] / name)
        add(loader, run, name, cases, argv)
    (valid / "mdp.npz").write_bytes(_npz(mdp_arrays()))
    simulate = ["unlearn", "simulate", "--mdp-file", "{file}", "--episodes", "8", "--out", "{out}", "--quiet"]
    add("mdp-file", None, "mdp.npz", binary_cases(valid / "mdp.npz", ckpt) | mdp_cases(), simulate)
    text_argv = ["edit", "train", "--task", "bias", "--data", "{file}", "--out", "{out}"]
    add("text-csv", None, "texts.csv", text_cases(valid / "texts.csv", ckpt, ".csv"), text_argv)
    add("text-jsonl", None, "texts.jsonl", text_cases(valid / "texts.jsonl", ckpt, ".jsonl"), text_argv)
    add(
        "run-record",
        "amf",
        "config.json",
        record_cases(runs["amf"] / "config.json"),
        ["amf", "run", "--resume", "{run}"],
    )
    return runs, out


LOADERS = ["npz-dataset", "hdf5-dataset", "hades-dataset", "checkpoint", "model-file", "policy-file"]
LOADERS += ["state-directory", "mdp-file", "text-csv", "text-jsonl", "run-record", "minari-main"]
LOADERS += ["minari-metadata"]
CASES = ["empty", "first-byte", "truncated-10%", "truncated-50%", "truncated-90%", "minus-one-byte"]
CASES += ["random-bytes", "directory", "other-loader", "wrong-dtype", "nan", "inf", "absurd-shape"]
CASES += ["missing-key", "extra-key", "latin-1"]


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("loader", LOADERS)
def test_every_loader_refuses_the_whole_corpus_with_one_line(loader, corpus, tmp_path):
    runs, cases = corpus
    mine = {k.split(":", 1)[1]: v for k, v in cases.items() if k.startswith(loader + ":")}
    folder, name, _, argv = next(iter(mine.values()))
    mine["directory"] = (folder, name, None, argv)
    assert set(mine) <= set(CASES) and len(mine) >= 8
    failures = []
    for case, (folder, name, content, argv) in mine.items():
        where = tmp_path / case
        if folder is not None:
            shutil.copytree(runs[folder], where)
        else:
            where.mkdir()
        target = where / name
        target.unlink(missing_ok=True)
        if content is None:
            target.mkdir()
        else:
            target.write_bytes(content)
        before = _snapshot(tmp_path)
        res = CliRunner().invoke(app, [a.format(run=where, file=target, out=tmp_path / "out") for a in argv])
        lines = res.stderr.strip().splitlines()
        ok = (
            res.exit_code == 2
            and len(lines) == 1
            and name in lines[0]
            and "Traceback" not in res.output
            and _snapshot(tmp_path) == before
            and not (tmp_path / "out").exists()
        )
        if not ok:
            failures.append((case, res.exit_code, res.stderr.strip()[-300:], repr(res.exception)[:200]))
        shutil.rmtree(where)
    assert not failures, failures
