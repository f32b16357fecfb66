"""The unlearning shell: an experiment's setup, a learner state kept in a directory, learning in resumable
chunks, and deletions committed atomically (all of a request or none of it)."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from rewire.checkpoint import load_checkpoint, save_checkpoint
from rewire.progress import progress_bar
from rewire.unlearn.learner import LearnerConfig, LearnerState, StableUCBVI, user_keys
from rewire.unlearn.mdp import TabularMDP, make_mdp, optimal_values

STATE_FILE = "state.ckpt"


@dataclass(frozen=True)
class Setup:
    """Everything that defines a run: the MDP, the learner and the seed (which drives the MDP, the users'
    response tables and the learner's noise through independent streams)."""

    mdp: str = "random"
    states: int = 4
    actions: int | None = None
    horizon: int = 4
    episodes: int = 1000
    rho: float | None = 0.1
    bonus: str = "practical"
    delta: float = 0.05
    seed: int = 0

    def build(self) -> tuple[TabularMDP, StableUCBVI]:
        with jax.enable_x64(True):
            mdp = make_mdp(self.mdp, self.states, self.actions, self.horizon, self.key(0))
            learner = StableUCBVI(mdp, LearnerConfig(self.episodes, self.rho, self.delta, self.bonus))
            learner.calibration()  # validates rho, delta and the bonus now
        return mdp, learner

    def key(self, stream: int) -> jax.Array:
        """Stream 0: the MDP; 1: the users; 2: the learner; 3+: verification trials."""
        return jax.random.fold_in(jax.random.key(self.seed), stream)

    def users(self) -> jax.Array:
        with jax.enable_x64(True):
            return user_keys(self.key(1), self.episodes)


class Session:
    """One learner and its stored state. `Session(setup)` starts empty; `Session.open(dir)` reloads."""

    def __init__(self, setup: Setup, state: LearnerState | None = None, log: list[dict] | None = None):
        self.setup = setup
        self.mdp, self.learner = setup.build()
        self.users = setup.users()
        self._learn = jax.jit(self.learner.learn)
        self._delete = jax.jit(self.learner.delete)
        self._audit = jax.jit(self.learner.audit)
        with jax.enable_x64(True):
            if state is None:
                present = jnp.ones(setup.episodes, bool)
                state = self.learner.init(setup.key(2), self.users, present, self.learner.calibration())
            self.state = state
        self.log = log or []

    # -- persistence ------------------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Atomic: the file holds either the previous state or this one, never a mix (and the previous
        one, with any deleted user's data, is gone once the rename commits)."""
        payload = {"setup": dataclasses.asdict(self.setup), "state": self.state, "log": self.log}
        path = save_checkpoint(Path(directory) / STATE_FILE, payload)
        for stale in Path(directory).glob(f"{STATE_FILE}.*.tmp"):  # left by a process killed mid-save
            stale.unlink(missing_ok=True)
        return path

    @classmethod
    def open(cls, directory: str | os.PathLike) -> Session:
        path = Path(directory) / STATE_FILE
        if not path.exists():
            raise FileNotFoundError(f"{directory}: no learner state ({STATE_FILE}) there")
        saved = load_checkpoint(path)
        with jax.enable_x64(True):
            state = jax.tree.map(jnp.asarray, saved["state"])
        return cls(Setup(**saved["setup"]), state, saved["log"])

    # -- learning ---------------------------------------------------------------------------------------
    @property
    def t_now(self) -> int:
        return int(self.state.t_now)

    def learn(
        self,
        stop: int | None = None,
        directory: str | os.PathLike | None = None,
        chunks: int = 20,
        quiet: bool = True,
    ) -> Session:
        """Play episodes up to `stop` (default: all); with `directory`, save after each chunk so a killed run
        resumes where it stopped."""
        stop = self.setup.episodes if stop is None else stop
        if not self.t_now <= stop <= self.setup.episodes:
            raise ValueError(
                f"can learn up to episode {self.setup.episodes} from {self.t_now}, not to {stop}"
            )
        size = max(1, self.setup.episodes // chunks)
        with progress_bar("episodes", self.setup.episodes, quiet) as bar, jax.enable_x64(True):
            bar.advance(self.t_now)
            while self.t_now < stop:
                before = self.t_now
                self.state = self._learn(self.state, min(stop, before + size))
                if directory is not None:
                    self.save(directory)
                bar.advance(self.t_now - before)
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
        """Unlearn `users` one after the other, then (with `directory`) commit the new state in one atomic
        write. Bad ids raise before anything changes. Returns one report per user."""
        self.check_users(users)
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
        self.state, self.log = state, self.log + reports
        if directory is not None:
            self.save(directory)
        return reports

    def audit(self) -> bool:
        """The replay audit (see `StableUCBVI.audit`)."""
        with jax.enable_x64(True):
            return bool(self._audit(self.state))

    def regret(self) -> np.ndarray:
        """Per-episode regret of the episodes played."""
        with jax.enable_x64(True):
            optimal = optimal_values(self.mdp)
            return np.asarray(self.learner.regret(self.state, optimal, self.users))[: self.t_now]
