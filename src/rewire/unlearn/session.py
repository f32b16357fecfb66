"""The unlearning shell: an experiment's setup, a learner whose whole state lives in a directory, learning in
resumable chunks through the run loop, deletions committed atomically (all of a request or none of it), and
the export of everything the directory keeps.

What a state directory holds, and why each file is safe after a deletion (README, "Reliability"):
- `state.ckpt`: the learner state (users' handles, episodes, policies, released nodes, the newest link of
  the key chain, constants) and the MDP. After a deletion it has exactly the law of a state that never had
  the user; the checkpoint's metadata holds only the loop's counters, which are functions of the state.
- `config.json`: the setup without the seed (the seed regenerates every draw, so it is a secret kept apart).
- `metrics.jsonl`, `results.json`, `regret.png` (and `tensorboard/`, if the run wrote events): rebuilt from
  the state at every save, so they are functions of it and carry nothing of a deleted user.
- `deletions.json`: the documented deletion log, ids and times only, kept apart from the learner state.
"""

from __future__ import annotations

import calendar
import math
import os
import secrets
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rewire import store
from rewire.loop import (
    METRICS,
    TENSORBOARD,
    Loop,
    jsonl,
    read_checkpoint,
    tensorboard_scalars,
    tensorboard_writer,
    write_checkpoint,
)
from rewire.runs import (
    RECORD,
    config_from_json,
    create_dir,
    read_json,
    read_jsonl,
    read_run_record,
    record_run,
    write_json,
)
from rewire.unlearn.learner import LearnerConfig, LearnerState, StableUCBVI, user_keys
from rewire.unlearn.mdp import GIVEN, TabularMDP, make_mdp, optimal_values, read_mdp

STATE_FILE = "state.ckpt"
LOG_FILE = "deletions.json"
REPORTS = (METRICS, "results.json", "regret.png")
CHUNKS = 20  # learning saves after every 1/20 of the episodes
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
SEED_NOTE = "not stored: a seed regenerates every draw of the learner (README, Exact unlearning)"


@dataclass(frozen=True)
class Setup:
    """Everything public that defines a run: the MDP family and size, and the learner. The seed is not part
    of it: it drives the MDP, the users' response tables and the learner's key chain (`seed_key`), and is a
    secret once users can be deleted."""

    mdp: str = "random"
    states: int = 4
    actions: int | None = None
    horizon: int = 4
    episodes: int = 1000
    rho: float | None = 0.1
    bonus: str = "practical"
    delta: float = 0.05

    def learner(self, mdp: TabularMDP) -> StableUCBVI:
        with jax.enable_x64(True):
            learner = StableUCBVI(mdp, LearnerConfig(self.episodes, self.rho, self.delta, self.bonus))
            learner.calibration()  # validates rho, delta and the bonus now
        return learner

    def given(self, mdp: TabularMDP) -> Setup:
        """This setup for a user's own MDP: its size from the arrays, `mdp` marked as given."""
        mdp.validate()
        states, actions, horizon = mdp.shape
        return replace(self, mdp=GIVEN, states=states, actions=actions, horizon=horizon)

    def build(self, seed: int) -> tuple[TabularMDP, StableUCBVI]:
        with jax.enable_x64(True):
            mdp = make_mdp(self.mdp, self.states, self.actions, self.horizon, seed_key(seed, 0))
        return mdp, self.learner(mdp)

    def users(self, seed: int) -> jax.Array:
        with jax.enable_x64(True):
            return user_keys(seed_key(seed, 1), self.episodes)


def seed_key(seed: int, stream: int) -> jax.Array:
    """Stream 0: the MDP; 1: the users; 2: the learner's key chain; 3+: verification and benchmarks."""
    return jax.random.fold_in(jax.random.key(seed), stream)


def fresh_seed() -> int:
    """A seed from the operating system's entropy, for runs that need no reproducibility."""
    return secrets.randbits(63)


def mdp_arrays(mdp: TabularMDP) -> dict[str, np.ndarray]:
    return {f"mdp/{k}": np.asarray(v) for k, v in mdp._asdict().items()}


class Session:
    """One learner and its stored state, a `rewire.loop.Resumable`: `Session.create(setup, seed)` starts
    one, `Session.open(directory)` reloads it."""

    kind = "rewire.unlearn/learner"
    unit = "episodes"

    def __init__(self, setup: Setup, mdp: TabularMDP, state: LearnerState, directory: Path | None = None):
        self.setup, self.mdp, self.directory = setup, mdp, directory
        self.learner = setup.learner(mdp)
        self.state = state
        self._learn = jax.jit(self.learner.learn)
        self._delete = jax.jit(self.learner.delete)
        self._audit = jax.jit(self.learner.audit)
        self._regret = jax.jit(self.learner.stored_regret)
        with jax.enable_x64(True):
            self._optimal = optimal_values(mdp)
        self._chunk = max(1, setup.episodes // CHUNKS)

    @classmethod
    def create(
        cls,
        setup: Setup,
        seed: int | None = None,
        absent: tuple[int, ...] = (),
        mdp: TabularMDP | None = None,
    ) -> Session:
        """An empty learner, in memory; `seed` None draws one from the OS (and nothing keeps it). `absent`
        users' slots are empty from the start (the run in which they never came). `mdp`: the user's own
        (validated; the setup's size then comes from it), instead of the setup's built-in family."""
        seed = fresh_seed() if seed is None else seed
        if mdp is None:
            mdp, learner = setup.build(seed)
        else:
            setup = setup.given(mdp)
            with jax.enable_x64(True):
                mdp = TabularMDP(*(jnp.asarray(x, jnp.float64) for x in mdp))
            learner = setup.learner(mdp)
        with jax.enable_x64(True):
            present = jnp.ones(setup.episodes, bool)
            if absent:
                present = present.at[jnp.asarray(absent) - 1].set(False)
            state = learner.init(seed_key(seed, 2), setup.users(seed), present, learner.calibration())
        return cls(setup, mdp, state)

    # -- the run loop's interface -----------------------------------------------------------------------
    @property
    def t_now(self) -> int:
        return int(self.state.t_now)

    @property
    def total(self) -> int:
        return self.setup.episodes

    @property
    def done(self) -> int:
        return self.t_now

    @property
    def finished(self) -> bool:
        return self.t_now >= self.setup.episodes

    def init(self) -> None:
        """A session holds its state from the start (`create`, or `open`); a state directory always has a
        checkpoint, written when it is created."""

    def step(self) -> list[dict]:
        """Learn one chunk (1/20 of the episodes); its row is the cumulative regret so far."""
        with jax.enable_x64(True):
            self.state = self._learn(self.state, min(self.setup.episodes, self.t_now + self._chunk))
        return [self._row(self.t_now, self.cumulative_regret())]

    def note(self) -> str:
        return ""

    def snapshot(self) -> tuple[dict[str, np.ndarray], dict]:
        """The learner state and the MDP; the metadata is empty (nothing but arrays describes a learner)."""
        with jax.enable_x64(True):
            return store.flatten(self.state, "learner") | mdp_arrays(self.mdp), {}

    def restore(self, stored: store.Stored) -> None:
        stored.only("learner", "mdp")
        with jax.enable_x64(True):
            self.state = jax.tree.map(
                jnp.asarray, store.restore(self.state, stored.group("learner"), stored.path)
            )

    def rebuild_metrics(self) -> list[dict]:
        """The metrics stream, recomputed from the state (it is a function of it): a row per chunk's end."""
        cumulative, size, total = self.cumulative_regret(), self._chunk, self.setup.episodes
        ends = sorted({min(t, total) for t in range(size, self.t_now + size, size)})
        return [self._row(t, cumulative) for t in ends if t <= self.t_now]

    @staticmethod
    def _row(t: int, cumulative: np.ndarray) -> dict:
        return {"episodes": t, "cumulative_regret": float(cumulative[t - 1])}

    # -- persistence ------------------------------------------------------------------------------------
    def loop(
        self, directory: str | os.PathLike, quiet: bool = True, every: float = 0.0, tensorboard: bool = False
    ) -> Loop:
        return Loop(self, Path(directory), STATE_FILE, every, quiet, "episodes", tensorboard)

    def save(self, directory: str | os.PathLike) -> Path:
        """Commit the state atomically (and the setup's config.json, once), then rebuild the reports from
        it. The reports are removed first, so a crash at any moment leaves no report of an earlier state (a
        deleted user's) beside a newer one; the next save or `rewire unlearn simulate --resume` rebuilds
        them."""
        directory = Path(directory)
        events = directory / TENSORBOARD
        rebuild_events = events.exists()
        shutil.rmtree(events, ignore_errors=True)  # a report too: events of a deleted user's episode go
        for name in REPORTS:
            (directory / name).unlink(missing_ok=True)
        if not (directory / RECORD).exists():
            record_run(directory, self.setup, None, seed_note=SEED_NOTE)
        metrics = jsonl(self.rebuild_metrics())
        path = write_checkpoint(directory / STATE_FILE, self, len(metrics))
        store.remove_temporaries(directory)
        store.write_bytes(directory / REPORTS[0], metrics)
        self.write_reports(directory)
        if rebuild_events:
            writer = tensorboard_writer(events)
            for row in self.rebuild_metrics():
                for name, value in tensorboard_scalars(row):
                    writer.add_scalar(name, value, row["episodes"])
            writer.close()
        return path

    def write_reports(self, directory: Path) -> None:
        """results.json and regret.png, from the state alone."""
        cumulative = self.cumulative_regret()
        write_json(
            directory / "results.json",
            {"setup": self.setup, "episodes": self.t_now, "cumulative_regret": cumulative},
        )
        if len(cumulative):
            self.plot(directory / "regret.png")

    @classmethod
    def open(cls, directory: str | os.PathLike) -> Session:
        directory = Path(directory)
        if not (directory / STATE_FILE).exists():
            raise FileNotFoundError(f"{directory}: no learner state ({STATE_FILE}) there")
        setup = config_from_json(Setup, read_run_record(directory)["config"], f"{directory}/config.json")
        stored, _ = read_checkpoint(directory / STATE_FILE, cls.kind)
        stored.only("learner", "mdp")
        shapes = {"transitions": 4, "reward_mean": 3, "initial": 1}
        mdp_parts = stored.group("mdp")
        if set(mdp_parts) != set(shapes) or any(mdp_parts[k].ndim != n for k, n in shapes.items()):
            raise store.StoreError(f"{stored.path}: no valid MDP (transitions, reward_mean, initial) inside")
        with jax.enable_x64(True):
            mdp = TabularMDP(**{k: jnp.asarray(v) for k, v in mdp_parts.items()})
            if mdp.shape != (setup.states, mdp.shape[1], setup.horizon):
                raise store.StoreError(f"{stored.path}: its MDP does not fit the setup in config.json")
            learner = setup.learner(mdp)
            template = jax.eval_shape(
                learner.init,
                jax.random.key(0),
                jnp.zeros((setup.episodes, 2), jnp.uint32),
                jnp.ones(setup.episodes, bool),
                learner.calibration(),
            )
            state = store.restore(template, stored.group("learner"), stored.path)
            state = jax.tree.map(jnp.asarray, state)
        return cls(setup, mdp, state, directory)

    # -- learning ---------------------------------------------------------------------------------------
    def learn(self, stop: int | None = None) -> Session:
        """Play episodes up to `stop` (default: all), in memory; `loop(directory).run()` does the same with
        checkpoints."""
        stop = self.setup.episodes if stop is None else stop
        if not self.t_now <= stop <= self.setup.episodes:
            raise ValueError(
                f"can learn up to episode {self.setup.episodes} from {self.t_now}, not to {stop}"
            )
        with jax.enable_x64(True):
            self.state = self._learn(self.state, stop)
        return self

    # -- unlearning -------------------------------------------------------------------------------------
    def check_users(self, users: list[int]) -> None:
        """Raise ValueError, changing nothing, unless every user has played and is still present."""
        if len(set(users)) != len(users):
            raise ValueError(f"users {users} name someone twice")
        present = np.asarray(self.state.present)
        for u in users:
            if not 1 <= u <= self.setup.episodes:
                raise ValueError(f"unknown user {u}: users are numbered 1..{self.setup.episodes}")
            if u > self.t_now:
                raise ValueError(f"unknown user {u}: only {self.t_now} users have played so far")
            if not present[u - 1]:
                raise ValueError(f"user {u} was already deleted")

    def delete(self, users: list[int], directory: str | os.PathLike | None = None) -> list[dict]:
        """Unlearn `users` one after the other, then commit the new state in one atomic write to `directory`
        (default: the session's own, if it was opened from or written to one; none: in memory only) and add
        the ids, with the time, to the deletion log. Bad ids raise before anything changes.
        Returns one report per user (what it cost; it is printed, never stored: whether a node was kept
        depends on the deleted user's data)."""
        self.check_users(users)
        directory = self.directory if directory is None else directory
        state, reports = self.state, []
        with jax.enable_x64(True):
            for u in users:
                start = time.perf_counter()
                state, report = self._delete(state, jnp.asarray(u, jnp.int32))
                report = {k: v.item() for k, v in report.items()}
                t_now = int(state.t_now)
                reports.append(
                    {"user": u, "episodes_played": t_now}
                    | report
                    | {
                        "recomputed_fraction": report["recomputed"] / t_now,
                        "wall_s": time.perf_counter() - start,
                    }
                )
        if directory is not None:
            log = read_log(directory)  # a bad log is refused before anything is committed
            self.state = state
            self.save(directory)
            write_log(directory, log, users, np.flatnonzero(~np.asarray(state.present)) + 1)
        self.state = state
        return reports

    def audit(self) -> bool:
        """The replay audit (see `StableUCBVI.audit`)."""
        with jax.enable_x64(True):
            return bool(self._audit(self.state))

    def regret(self) -> np.ndarray:
        """Per-episode regret of the episodes played (zero for empty slots)."""
        with jax.enable_x64(True):
            return np.asarray(self._regret(self.state, self._optimal))[: self.t_now]

    def cumulative_regret(self) -> np.ndarray:
        return self.regret().cumsum()

    @property
    def metrics(self) -> list[dict]:
        """The metrics stream (cumulative regret at the end of each chunk), as `metrics.jsonl` holds it."""
        return self.rebuild_metrics()

    def plot(self, path: str | os.PathLike) -> Path:
        """The cumulative regret of the episodes played so far."""
        from rewire.report import plot_curves

        cumulative = self.cumulative_regret()
        return plot_curves(
            path,
            range(1, len(cumulative) + 1),
            {f"rho {self.setup.rho}": cumulative},
            "episodes",
            "cumulative regret",
            f"{self.setup.mdp}, {self.setup.bonus} bonus",
        )


def fit(
    mdp: TabularMDP | str | os.PathLike | None = None,
    config: Setup = Setup(),
    seed: int | None = None,
    out: str | os.PathLike | None = None,
    quiet: bool = True,
    tensorboard: bool = False,
) -> Session:
    """Learn `config.episodes` users on `mdp` (a `TabularMDP`, an NPZ file for `read_mdp`, or None for
    the config's built-in family) with the rho-TV-stable learner. With `out`, the state directory is
    created there (atomically), learning checkpoints into it, and later deletions commit to it; without,
    everything stays in memory. 64-bit mode is set where it is needed; nothing global changes."""
    if isinstance(mdp, str | os.PathLike):
        mdp = read_mdp(mdp)
    session = Session.create(config, seed, mdp=mdp)
    if out is None:
        return session.learn()
    session.directory = create_dir(out, session.save)
    session.loop(session.directory, quiet, tensorboard=tensorboard).run()
    session.write_reports(session.directory)
    return session


def read_log(directory: str | os.PathLike) -> list[dict]:
    """The deletion log: a list of {user, time} (empty if there is none yet)."""
    path = Path(directory) / LOG_FILE
    log = read_json(path) if path.exists() else []
    if not isinstance(log, list) or not all(isinstance(e, dict) and set(e) == {"user", "time"} for e in log):
        raise ValueError(f"{path}: not a deletion log (a list of {{user, time}})")
    return log


def write_log(
    directory: str | os.PathLike, log: list[dict], users: list[int], absent: np.ndarray
) -> list[dict]:
    """Append `users` with the current UTC time to the deletion log. Absent slots the log lacks (a process
    killed between committing a deletion and logging it) are added with time null."""
    logged = {e["user"] for e in log}
    now = time.strftime(TIME_FORMAT, time.gmtime())
    missing = [int(u) for u in absent if int(u) not in logged and int(u) not in users]
    log = log + [{"user": u, "time": None} for u in missing] + [{"user": u, "time": now} for u in users]
    write_json(Path(directory) / LOG_FILE, log)
    return log


def column(path: Path, rows: list, key: str) -> np.ndarray:
    """rows[i][key] for every row, as float64 (a missing or non-numeric value names the file)."""
    try:
        return np.asarray([row[key] for row in rows], np.float64)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: no numeric {key!r} in every row") from None


def export_arrays(directory: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array a state directory holds, by name: the state file's (`state/...`), the metrics stream's
    and the results' columns, and the deletion log's ids and times (POSIX seconds, NaN if unknown)."""
    directory = Path(directory)
    stored, loop = read_checkpoint(directory / STATE_FILE, Session.kind)
    out = {f"state/{k}": v for k, v in stored.arrays.items()}
    out |= {f"state/loop/{k}": np.asarray(v) for k, v in loop.items()}
    metrics = directory / REPORTS[0]
    if metrics.exists():
        rows = read_jsonl(metrics)
        for key in ("episodes", "cumulative_regret"):
            out[f"metrics/{key}"] = column(metrics, rows, key)
    results = directory / "results.json"
    if results.exists():
        data = read_json(results)
        if not isinstance(data, dict):
            raise ValueError(f"{results}: not the results of an unlearning run")
        for key in ("episodes", "cumulative_regret"):
            out[f"results/{key}"] = column(results, [data], key)[0]
    if (directory / LOG_FILE).exists():
        entries = read_log(directory)
        out["deletions/user"] = np.asarray([e["user"] for e in entries], np.int64)
        out["deletions/time"] = np.asarray(
            [
                math.nan if e["time"] is None else calendar.timegm(time.strptime(e["time"], TIME_FORMAT))
                for e in entries
            ],
            np.float64,
        )
    return out
