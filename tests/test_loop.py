"""The run loop on a toy task: exact resume, the metrics stream, checkpoint cadence, compile-excluded timing,
plain progress lines off a terminal."""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import read_events

from rewire import store
from rewire.loop import CHECKPOINT, METRICS, Loop, Stopwatch, read_checkpoint


class Walk:
    """A random walk: one jitted step per unit, its key folded from the step number."""

    kind = "test/walk"
    unit = "steps"

    def __init__(self, total: int = 8, rebuildable: bool = False):
        self.total = total
        self._step = jax.jit(
            lambda x, t: x + jax.random.normal(jax.random.fold_in(jax.random.key(0), t), x.shape)
        )
        if rebuildable:
            self.rebuild_metrics = lambda: [{"t": t} for t in range(1, self.done + 1)]
        self.init()

    def init(self):
        self.x, self.t = jnp.zeros(3), 0

    @property
    def done(self):
        return self.t

    @property
    def finished(self):
        return self.t >= self.total

    def step(self):
        self.x, self.t = self._step(self.x, self.t), self.t + 1
        return [{"t": self.t}] if hasattr(self, "rebuild_metrics") else [{"t": self.t, "x": self.x.tolist()}]

    def note(self):
        return f"t {self.t}"

    def snapshot(self):
        return {"x": np.asarray(self.x)}, {"t": self.t}

    def restore(self, stored):
        self.x, self.t = jnp.asarray(stored.arrays["x"]), stored.meta["t"]


def test_stopped_and_resumed_equals_uninterrupted(tmp_path):
    full = Walk()
    Loop(full, tmp_path / "full", every=0, quiet=True).run()
    Loop(Walk(), tmp_path / "part", every=0, quiet=True).run(max_steps=3)
    stored, loop = read_checkpoint(tmp_path / "part" / CHECKPOINT, Walk.kind)
    assert stored.meta == {"t": 3} and loop["done"] == 3 and not loop["finished"]
    resumed = Walk()
    Loop(resumed, tmp_path / "part", every=0, quiet=True).run()
    np.testing.assert_array_equal(np.asarray(resumed.x), np.asarray(full.x))
    full_rows = (tmp_path / "full" / METRICS).read_bytes()
    assert (tmp_path / "part" / METRICS).read_bytes() == full_rows and len(full_rows.splitlines()) == 8


def test_rows_after_the_last_checkpoint_are_cut_on_resume(tmp_path):
    Loop(Walk(), tmp_path, every=0, quiet=True).run(max_steps=4)
    with open(tmp_path / METRICS, "a") as f:  # a killed process wrote a row and half of another
        f.write('{"t": 5, "x": [1.0]}\n{"t": 6, "x"')
    resumed = Walk()
    Loop(resumed, tmp_path, every=0, quiet=True).run()
    rows = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    assert [r["t"] for r in rows] == list(range(1, 9))


def test_a_lost_stream_is_refused_or_rebuilt_from_the_state(tmp_path):
    Loop(Walk(), tmp_path / "a", every=0, quiet=True).run(max_steps=4)
    (tmp_path / "a" / METRICS).write_text("")
    with pytest.raises(store.StoreError, match="fewer than the"):
        Loop(Walk(), tmp_path / "a", quiet=True).run()
    Loop(Walk(rebuildable=True), tmp_path / "b", every=0, quiet=True).run(max_steps=4)
    (tmp_path / "b" / METRICS).unlink()
    Loop(Walk(rebuildable=True), tmp_path / "b", quiet=True).run()
    assert [json.loads(line)["t"] for line in (tmp_path / "b" / METRICS).read_text().splitlines()] == list(
        range(1, 9)
    )


def test_a_run_killed_before_its_first_checkpoint_starts_over(tmp_path):
    (tmp_path / METRICS).write_text('{"t": 1, "x": [0.0]}\n')  # rows of a run that never checkpointed
    (tmp_path / ".checkpoint.ckpt.0123456789abcdef.tmp").write_bytes(b"half a checkpoint")
    walk = Walk()
    Loop(walk, tmp_path, every=3600, quiet=True).run()
    assert walk.t == 8 and len((tmp_path / METRICS).read_text().splitlines()) == 8
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT, METRICS]


def test_checkpoints_follow_the_cadence(tmp_path, monkeypatch):
    saves = []
    monkeypatch.setattr(Loop, "save", lambda self: saves.append(self.task.done))
    Loop(Walk(), tmp_path / "every", every=0, quiet=True).run()
    assert saves == list(range(1, 9)) + [8]
    saves.clear()
    Loop(Walk(), tmp_path / "rarely", every=3600, quiet=True).run()
    assert saves == [8]  # only the final checkpoint


def test_timing_leaves_compilation_out():
    watch = Stopwatch()
    f = jax.jit(lambda x: jnp.sin(x) @ x.T)
    with watch.time(1):
        f(jnp.ones((64, 64))).block_until_ready()
    assert watch.compile_seconds > 0 and watch.units == 1
    with watch.time(1):
        f(jnp.ones((64, 64))).block_until_ready()
    summary = watch.summary("steps")
    assert summary["steps_timed"] == 2 and summary["seconds"] >= 0 and summary["steps_per_s"] > 0


def test_progress_off_a_terminal_is_plain_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("rewire.progress.PLAIN_INTERVAL_S", 0.0)
    Loop(Walk(total=3), description="walk").run()
    lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"walk: 1/3 steps \(33%\), [\d.,]+ steps/s, \d+ s left; t 1", lines[0]), lines
    assert re.fullmatch(r"walk: 3/3 steps \(100%\), [\d.,]+ steps/s; t 3", lines[-1]), lines


def test_a_cli_run_off_a_terminal_prints_plain_lines_in_its_own_unit(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from rewire.cli import app

    monkeypatch.setattr("rewire.progress.PLAIN_INTERVAL_S", 0.0)
    args = ["hades", "distill", "--generations", "2", "--popsize", "8", "--out", str(tmp_path)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stderr.splitlines() if line.startswith("hades CartPole-v1: ")]
    assert lines and all(" generations/s" in line for line in lines)
    assert lines[-1].startswith("hades CartPole-v1: 2/2 generations (100%)")


def test_tensorboard_events_carry_the_metrics_stream(tmp_path):
    from rewire.loop import tensorboard_scalars

    row = {"kind": "train", "phase": "online", "step": 5, "loss": [0.5, 1.5], "ok": True, "note": "x"}
    assert tensorboard_scalars(row) == [
        ("train/online/step", 5.0),
        ("train/online/loss/0", 0.5),
        ("train/online/loss/1", 1.5),
    ]
    walk = Walk(total=4)
    Loop(walk, tmp_path, every=0, quiet=True, tensorboard=True).run()
    events = read_events(tmp_path / "tensorboard")
    rows = [json.loads(line) for line in (tmp_path / METRICS).read_text().splitlines()]
    assert events["t"] == [(t, float(t)) for t in range(1, 5)]
    assert [v for _, v in events["x/2"]] == pytest.approx([r["x"][2] for r in rows])
