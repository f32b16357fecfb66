"""No file a user passes can run code: for every command that reads a file or a directory, each file it
reads is replaced by a pickle whose unpickling would create a marker file. The marker never appears, the
exit code is 2, stderr is one line naming the file (no traceback), and nothing is written."""

import pickle
import shutil

import pytest
from typer.testing import CliRunner

from rewire.cli import app


class Marker:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def each(run, names, args):
    return [(run, name, args) for name in names]


CALQL = ("config.json", "dataset.npz", "checkpoint.ckpt")
# (run whose directory the command reads, or None; the file replaced; the command, with {run}, {file}
# and {out} filled in)
CASES = [
    (None, "data.npz", ["data", "inspect", "{file}"]),
    (None, "data.h5", ["data", "inspect", "{file}"]),
    (None, "data.npz", ["calql", "train", "--dataset", "{file}", "--out", "{out}"]),
    (None, "data.hdf5", ["calql", "train", "--dataset", "{file}", "--out", "{out}"]),
    (None, "dataset.npz", ["hades", "evaluate", "{file}"]),
    (None, "model.ckpt", ["edit", "train", "--model", "{file}", "--out", "{out}"]),
    (None, "texts.csv", ["edit", "train", "--task", "bias", "--data", "{file}", "--out", "{out}"]),
    (None, "texts.jsonl", ["edit", "train", "--task", "bias", "--data", "{file}", "--out", "{out}"]),
    (None, "texts.csv", ["bench", "edit", "--task", "bias", "--data", "{file}", "--json", "{out}/b.json"]),
    *each("calql", CALQL, ["data", "generate", "--policy", "{run}", "--out", "{out}/g.npz"]),
    *each("calql", CALQL, ["calql", "train", "--resume", "{run}"]),
    *each("hades", ("config.json", "checkpoint.ckpt"), ["hades", "distill", "--resume", "{run}"]),
    ("hades", "dataset.npz", ["hades", "evaluate", "{run}/dataset.npz"]),
    *each("amf", ("config.json", "checkpoint.ckpt"), ["amf", "run", "--resume", "{run}"]),
    *each("unlearn", ("config.json", "state.ckpt"), ["unlearn", "simulate", "--resume", "{run}"]),
    *each(
        "unlearn",
        ("config.json", "state.ckpt", "deletions.json"),
        ["unlearn", "delete", "{run}", "--user", "1"],
    ),
    *each(
        "unlearn",
        ("state.ckpt", "metrics.jsonl", "results.json", "deletions.json"),
        ["unlearn", "export", "{run}", "--out", "{out}/e.npz"],
    ),
    *each("edit", ("config.json", "model.ckpt", "checkpoint.ckpt"), ["edit", "train", "--resume", "{run}"]),
    *each("edit", ("policy.ckpt", "model.ckpt"), ["edit", "apply", "{run}/policy.ckpt", "{run}/model.ckpt"]),
]


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("run, name, args", CASES, ids=[f"{' '.join(a[:2])}:{n}" for _, n, a in CASES])
def test_a_pickle_in_place_of_any_file_read_is_refused_and_never_run(run, name, args, tiny_runs, tmp_path):
    marker = tmp_path / "marker"
    case = tmp_path / "case"
    if run is not None:
        shutil.copytree(tiny_runs[run].directory, case)
    else:
        case.mkdir()
    poisoned = case / name
    poisoned.write_bytes(pickle.dumps(Marker(marker)))
    before = _snapshot(tmp_path)
    out = tmp_path / "out"
    argv = [a.format(run=case, file=poisoned, out=out) for a in args]
    res = CliRunner().invoke(app, argv)
    assert not marker.exists(), "the file was unpickled"
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.output, res.stderr
    assert name in lines[0], lines[0]
    assert _snapshot(tmp_path) == before, "a refused input left output behind"
