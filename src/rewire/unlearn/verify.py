"""Distributional verification of exact unlearning.

For one fixed data set (MDP and users), N independent learner seeds learn and then delete (the procedure
under test), and N other seeds retrain with the deleted slots empty from the start. Fixed functions of the
final stored state are compared with two-sample tests, Holm-corrected: the next greedy policy, the policy
after the deleted slot, noisy totals and fixed projections of the released statistics, the replay audit,
and a fixed random projection of *every* array of the learner state the state file stores
(`Session.snapshot`: handles, presence, episodes, policies, nodes, the key chain, constants) and of the
regret curve the reports are rebuilt from, so that nothing persisted can tell the two arms apart (the
file's MDP is the fixed data set, the same in both arms).
Two deliberately wrong deletions must be rejected by the same tests: `no_op` (erase the raw data, keep the
tree) and `drop_without_coupling` (subtract the user's statistic from the nodes holding it, replay nothing).
"""

from __future__ import annotations

import dataclasses
import zlib

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from rewire.mesh import Devices, batch_mesh, fetch, place
from rewire.progress import progress_bar
from rewire.store import named_leaves
from rewire.unlearn.learner import LearnerState, StableUCBVI
from rewire.unlearn.mdp import optimal_values
from rewire.unlearn.session import Setup, seed_key
from rewire.unlearn.tree import episode_stat, nodes_holding, stat_blocks

CATEGORICAL = ("final_policy", "next_policy")
CONTINUOUS = ("visit_total", "reward_total", "prefix_projection", "node_projection")
INDICATOR = ("replay_consistent",)


def scenarios(episodes: int) -> dict[str, tuple[list[int], int | None]]:
    """name -> (users deleted in this order, episode after which they are deleted; None: at the end)."""
    if episodes < 8:
        raise ValueError(f"verification needs at least 8 episodes, got {episodes}")
    half = episodes // 2
    return {
        "oldest": ([1], None),
        "middle": ([half + 1], None),
        "newest": ([episodes], None),
        "sequential": ([2, half + 1], None),
        "many": (list(range(1, episodes + 1, 4)), None),
        "mid_stream": ([3], half),
    }


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values (family-wise error control)."""
    names = sorted(p_values, key=p_values.get)
    m, running, out = len(names), 0.0, {}
    for rank, name in enumerate(names):
        running = max(running, min(1.0, (m - rank) * p_values[name]))
        out[name] = running
    return out


def categorical_p(a: np.ndarray, b: np.ndarray) -> float:
    """χ² test of homogeneity; categories seen fewer than 10 times in both samples together are pooled."""
    values, counts = np.unique(np.concatenate([a, b]), return_counts=True)
    rare = set(values[counts < 10].tolist())
    label = lambda v: -1 if v in rare else v  # noqa: E731
    cats = sorted({label(v) for v in values.tolist()})
    if len(cats) < 2:
        return 1.0
    table = np.array([[sum(label(v) == c for v in s.tolist()) for c in cats] for s in (a, b)])
    return float(stats.chi2_contingency(table).pvalue)


def indicator_p(a: np.ndarray, b: np.ndarray) -> float:
    """Fisher's exact test on two proportions."""
    table = [[int(a.sum()), int((~a).sum())], [int(b.sum()), int((~b).sum())]]
    if table[0][1] == table[1][1] == 0 or table[0][0] == table[1][0] == 0:
        return 1.0
    return float(stats.fisher_exact(table).pvalue)


def projection(name: str, value: jax.Array) -> jax.Array:
    """A fixed random projection of one stored array (the direction depends only on the array's name), as
    float64: any difference in law between the arms that this direction sees shows in a KS test."""
    flat = value.reshape(-1).astype(jnp.float64)
    direction = jax.random.normal(jax.random.key(zlib.crc32(name.encode())), flat.shape, jnp.float64)
    return flat @ direction


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, float]:
    """p-value per statistic present in both samples."""
    out = {}
    for name in a:
        if name in CATEGORICAL:
            out[name] = categorical_p(a[name], b[name])
        elif name in CONTINUOUS or name.startswith("stored/"):
            out[name] = float(stats.ks_2samp(a[name], b[name]).pvalue)
        else:
            out[name] = indicator_p(a[name], b[name])
    return out


class Verifier:
    """Learners for every arm, vmapped over trials; `run()` returns the JSON-ready result."""

    def __init__(
        self, setup: Setup, trials: int, alpha: float = 0.01, seed: int = 0, devices: Devices = None
    ):
        """The trials of each arm are split over `devices` (`rewire.mesh`)."""
        if trials < 20:
            raise ValueError(f"need at least 20 trials per arm, got {trials}")
        if not 0 < alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        self.setup, self.trials, self.alpha, self.seed = setup, trials, alpha, seed
        self.mesh = batch_mesh(devices, trials, "the verification trials")
        self.mdp, self.learner = setup.build(seed)
        self.users = setup.users(seed)
        self.scenarios = scenarios(setup.episodes)
        with jax.enable_x64(True):
            self.calib = self.learner.calibration()
            self.direction = jax.random.normal(jax.random.key(12345), (self.learner.d,))
            self.optimal = optimal_values(self.mdp)
        learner = self.learner
        self._init = jax.jit(jax.vmap(learner.init, (0, None, None, None)))
        self._learn = jax.jit(jax.vmap(learner.learn, (0, None)))
        self._delete = jax.jit(jax.vmap(lambda s, u: learner.delete(s, u)[0], (0, None)))
        self._no_op = jax.jit(jax.vmap(learner.erase, (0, None)))
        self._drop = jax.jit(jax.vmap(lambda s, u: drop_without_coupling(learner, s, u), (0, None)))
        self._outcome = jax.jit(jax.vmap(self.outcome, (0, None)))

    def outcome(self, state: LearnerState, first: jax.Array) -> dict[str, jax.Array]:
        """Fixed functions of a final state; `first` is the first deleted slot (fixed by the scenario)."""
        learner, A = self.learner, self.learner.actions
        code = lambda pi: (pi.ravel() * A ** jnp.arange(pi.size)).sum()  # noqa: E731
        prefix = learner.prefix(state, state.t_now)
        visits, _, rewards = stat_blocks(prefix, learner.states, learner.actions, learner.horizon)
        stored = named_leaves(state, "learner") | {"regret_curve": learner.stored_regret(state, self.optimal)}
        return {
            "final_policy": code(learner.plan(prefix, state.calib)),
            "next_policy": code(state.policy[jnp.minimum(first, learner.episodes - 1)]),
            "visit_total": visits.sum(),
            "reward_total": rewards.sum(),
            "prefix_projection": prefix @ self.direction,
            "node_projection": state.released[first - 1] @ self.direction,
            "replay_consistent": learner.audit(state),
        } | {f"stored/{name}": projection(name, value) for name, value in stored.items()}

    def _arm(self, arm: str, users: list[int], pause: int | None, stream: int) -> dict[str, np.ndarray]:
        T = self.setup.episodes
        with jax.enable_x64(True):
            keys = place(jax.random.split(seed_key(self.seed, stream), self.trials), self.mesh)
            present = jnp.ones(T, bool)
            if arm == "retrain":
                present = present.at[jnp.asarray(users) - 1].set(False)
            state = self._init(keys, self.users, present, self.calib)
            if arm != "retrain":
                state = self._learn(state, T if pause is None else pause)
                step = {"unlearn": self._delete, "no_op": self._no_op, "drop_without_coupling": self._drop}[
                    arm
                ]
                for u in users:
                    state = step(state, jnp.asarray(u, jnp.int32))
            state = self._learn(state, T)
            out = self._outcome(state, jnp.asarray(users[0], jnp.int32))
            out = fetch(out)
        if users[0] == T:
            out.pop("next_policy")  # no user after the newest
        return out

    def run(self, quiet: bool = True) -> dict:
        arms = ("unlearn", "retrain", "no_op", "drop_without_coupling")
        p: dict[str, dict[str, float]] = {arm: {} for arm in arms if arm != "retrain"}
        with progress_bar("verification arms", len(self.scenarios) * len(arms), quiet) as bar:
            for index, (name, (users, pause)) in enumerate(self.scenarios.items()):
                stream = 3 + 10 * index
                ret = self._arm("retrain", users, pause, stream)
                bar.advance(1, note=name)
                for offset, arm in enumerate(arms[:1] + arms[2:], start=1):
                    if arm != "unlearn" and pause is not None:
                        bar.advance(1)
                        continue  # the controls are defined for deletions at the end
                    got = compare(self._arm(arm, users, pause, stream + offset), ret)
                    p[arm] |= {f"{name}/{stat}": v for stat, v in got.items()}
                    bar.advance(1, note=name)
        adjusted = {arm: holm(values) for arm, values in p.items()}
        min_adj = {arm: min(values.values()) for arm, values in adjusted.items()}
        return {
            "config": dataclasses.asdict(self.setup)
            | {"seed": self.seed, "trials": self.trials, "alpha": self.alpha, "correction": "holm"}
            | {"scenarios": self.scenarios},
            "exact": {
                "p_values": p["unlearn"],
                "holm_adjusted": adjusted["unlearn"],
                "min_p": min(p["unlearn"].values()),
                "min_adjusted_p": min_adj["unlearn"],
                "passed": min_adj["unlearn"] >= self.alpha,
            },
            "controls": {
                arm: {
                    "p_values": p[arm],
                    "min_p": min(p[arm].values()),
                    "min_adjusted_p": min_adj[arm],
                    "rejected": min_adj[arm] < self.alpha,
                }
                for arm in ("no_op", "drop_without_coupling")
            },
        }


def drop_without_coupling(learner: StableUCBVI, state: LearnerState, user: jax.Array) -> LearnerState:
    """Negative control: subtract the user's statistic from every released node holding it (each node then
    has the right marginal law) but replay nothing, so later policies and episodes are stale."""
    x = episode_stat(state.traj[user - 1], state.present[user - 1], learner.states, learner.actions)
    nodes = nodes_holding(user, learner.n_levels)
    live = nodes <= state.t_now
    rows = jnp.minimum(nodes, learner.episodes) - 1
    released = state.released.at[rows].add(jnp.where(live[:, None], -x, 0.0))
    return learner.erase(state.replace(released=released), user)
