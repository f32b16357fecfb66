"""The AMF shell: (setting, seed, selector) combinations of one configuration run side by side (one vmapped,
jitted round for all of them) as a `rewire.loop.Resumable`, so the run loop checkpoints it after rounds and
an interrupted run resumes exactly where it stopped. Everything runs in float64 (Gaussian conditioning)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rewire import store
from rewire.amf.core import AMF, AMFConfig, AMFState, selector_id
from rewire.envs.metaworld import WAVE, MetaWorldFamily
from rewire.envs.multitask import TaskFamily, pretraining_demo_tasks
from rewire.loop import Loop
from rewire.mesh import Devices, batch_mesh, fetch, place
from rewire.result import Result
from rewire.runs import config_from_json, read_json, read_run_record, start_run_dir, write_json

THRESHOLD = 0.9
GIVEN = "given"  # the setting of a task family of your own: its pretraining tasks are given
HISTORY = ("success", "tasks", "scores")
SKIPPED = -1.0  # the success of a round a host family did not evaluate (successes lie in [0, 1])


class NonFiniteKernel(ValueError):
    """The posterior covariance over the proxy inputs was not finite (diverged states or bad settings)."""


def _mean_or_none(values: np.ndarray) -> float | None:
    """The mean success of a round's row in the metrics stream; None for a round that was not evaluated."""
    return None if (values == SKIPPED).any() else float(values.mean())


def demos_to(threshold: float, demos: list[int], success: list[float]) -> int | None:
    """The first number of demonstrations at which `success` reaches `threshold` (None: never)."""
    return next((d for d, s in zip(demos, success, strict=True) if s >= threshold - 1e-9), None)


class AMFRun:
    """Runs every (setting, seed, selector) of `config` together: `rewire.loop.Loop(run).run()`, then
    `results()`."""

    kind = "rewire.amf/run"
    unit = "rounds"

    def __init__(
        self,
        config: AMFConfig,
        settings: list[str],
        seeds: list[int],
        selectors: list[str],
        family: TaskFamily | None = None,
        pretrain_tasks: list[int] | None = None,
        devices: Devices = None,
    ):
        """`settings` name built-in pretraining sets (`pretraining_demo_tasks`); with a `family` of your own,
        the one setting is GIVEN and `pretrain_tasks` lists the task of each pretraining demonstration. The
        runs are split over `devices` (`rewire.mesh`)."""
        ids = [selector_id(name) for name in selectors]
        if not (settings and seeds and selectors):
            raise ValueError("need at least one setting, seed and selector")
        self.amf = AMF(config, family)
        self.host = self.amf.host
        if family is not None and not self.host:
            if settings != [GIVEN] or not pretrain_tasks:
                raise ValueError("a task family of your own takes pretrain_tasks (one setting, 'given')")
            self._given = [self.amf.env.check_task(t) for t in pretrain_tasks]
        config = self.amf.config
        self.config, self.settings, self.seeds, self.selectors = config, settings, seeds, selectors
        self.labels = [(t, s, m) for t in settings for s in seeds for m in selectors]
        self.mesh = batch_mesh(devices, len(self.labels), "AMF's runs (settings x seeds x selectors)")
        self._ids = ids
        if self.host:
            self._choose = jax.jit(jax.vmap(self.amf.choose))
            self._add = jax.jit(jax.vmap(self.amf.add))
            self._act_rows = jax.jit(self._rows_policy)
        else:
            self._round = jax.jit(jax.vmap(self.amf.round))
            self._evaluate = jax.jit(jax.vmap(self.amf.evaluate))
        with jax.enable_x64(True):
            pairs = [(t, s) for t in settings for s in seeds]
            self._key_data = jnp.stack([jax.random.key_data(jax.random.key(s)) for _, s in pairs])
            self._pre = jnp.stack([jnp.asarray(self.pretrain_tasks(t)) for t, _ in pairs])
        self.state: AMFState | None = None
        self.history: dict[str, list] = {name: [] for name in HISTORY}
        # where a host family's time goes: simulated episodes, BC, selection (this process, since start; not
        # checkpointed, since wall-clock times would break resume's same bits)
        self.seconds = {"rollouts": 0.0, "training": 0.0, "selection": 0.0}

    def pretrain_tasks(self, setting: str) -> np.ndarray:
        """The task of each pretraining demonstration in `setting`."""
        if setting == GIVEN:
            return np.asarray(self._given)
        if self.host:
            return self.amf.env.pretraining_demo_tasks(setting)
        return pretraining_demo_tasks(self.amf.env, setting)

    def _initial_state(self, pre_demos: tuple[np.ndarray, np.ndarray] | None = None) -> AMFState:
        params = self.amf.model.init_params(self.amf.param_keys(self._key_data))
        state = jax.jit(jax.vmap(self.amf.init))(self._key_data, self._pre, params, pre_demos)
        state = jax.tree.map(lambda x: jnp.repeat(x, len(self.selectors), axis=0), state)
        return state.replace(selector=jnp.tile(jnp.asarray(self._ids, jnp.int32), len(self._pre)))

    def init(self) -> None:
        """Pretrain every run and evaluate it (round 0)."""
        with jax.enable_x64(True):
            pre_demos = self._timed("rollouts", self._host_pretraining) if self.host else None
            self.state = self._timed("training", lambda: place(self._initial_state(pre_demos), self.mesh))
            if self.host:
                success = self._timed("rollouts", self._host_success, self.state)
            else:
                success = fetch(self._evaluate(self.state))
        self.history = {"success": [success], "tasks": [], "scores": []}

    # -- a host family's episodes (Meta-World): simulated outside jit, every run's policy in one call ----
    def _timed(self, part: str, fn, *args):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        self.seconds[part] += time.perf_counter() - start
        return out

    def _rows_policy(self, model: Any, runs: jax.Array, obs: jax.Array, tasks: jax.Array) -> jax.Array:
        """Actions of run runs[i]'s policy at obs[i] in task tasks[i]."""

        def one(run, o, task):
            return self.amf.model.policy(jax.tree.map(lambda x: x[run], model), None)(o, task)

        return jax.vmap(one)(runs, obs, tasks)

    def _policy_episodes(
        self, state: AMFState, runs: list[int], tasks: list[int], starts: list, until_success: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Noise-free episodes of run runs[i]'s policy in task tasks[i] from starts[i]: their states and
        each one's first successful step (the horizon if none; `MetaWorldFamily.episodes`)."""
        run_of, task_of = np.asarray(runs), np.asarray(tasks)

        def act(obs: np.ndarray, episodes: np.ndarray) -> np.ndarray:
            m, pad = len(episodes), WAVE - len(episodes)  # one shape: one compilation
            rows = np.pad(episodes, (0, pad))
            out = self._act_rows(state.model, run_of[rows], np.pad(obs, ((0, pad), (0, 0))), task_of[rows])
            return fetch(out)[:m]

        states, _, first_success = self.amf.env.episodes(act, tasks, starts, until_success=until_success)
        return states, first_success

    def _host_success(self, state: AMFState) -> np.ndarray:
        """Success per run and task (R, C): the share of the task's evaluation starts that succeed."""
        env, ids = self.amf.env, self.amf.env.eval_start_ids()
        runs = [r for r in range(len(self.labels)) for _ in ids]
        tasks = [t for _ in self.labels for t, _ in ids]
        starts = [env.start(t, "eval", i) for _ in self.labels for t, i in ids]
        _, first_success = self._policy_episodes(state, runs, tasks, starts, until_success=True)
        success = first_success < env.horizon
        return success.reshape(len(self.labels), env.num_tasks, env.num_eval_starts).mean(-1)

    def _host_pretraining(self) -> tuple[np.ndarray, np.ndarray]:
        """Every (setting, seed)'s pretraining demonstrations, seeded by its seed."""
        pairs = [(t, s) for t in self.settings for s in self.seeds]
        demos = [
            self.amf.env.demonstrations(
                self.pretrain_tasks(t).tolist(),
                "pretrain",
                list(range(len(self._pre[0]))),
                [s] * len(self._pre[0]),
            )
            for t, s in pairs
        ]
        return np.stack([d[0] for d in demos]), np.stack([d[1] for d in demos])

    def _host_round(self, state: AMFState) -> tuple[AMFState, dict]:
        """`AMF.round` with the episodes on the host: proxy rollouts of every run's policy, the selection,
        the chosen demonstrations (a demonstration is fixed by (seed, slot, task), so selectors of a seed
        that ask for the same task in the same slot get the same one), the refit, and an evaluation
        every `eval_every` rounds and after the last (`SKIPPED` otherwise)."""
        env, batch, runs = self.amf.env, self.config.batch, range(len(self.labels))
        proxy_tasks = [t for _ in runs for t in range(env.num_tasks)]
        starts = [env.start(t, "proxy", 0) for t in proxy_tasks]
        proxy_runs = [r for r in runs for _ in range(env.num_tasks)]
        proxy_states, first_success = self._timed(
            "rollouts", self._policy_episodes, state, proxy_runs, proxy_tasks, starts
        )
        proxy_states = proxy_states.reshape(len(runs), env.num_tasks, *proxy_states.shape[1:])
        # a task's targets end where its rollout first succeeds (AMF.rollout_proxies)
        lengths = np.minimum(first_success + 1, env.horizon).reshape(len(runs), env.num_tasks)
        proxies = (place(jnp.asarray(proxy_states), self.mesh), place(jnp.asarray(lengths), self.mesh))
        choice = self._timed("selection", self._choose, state, *proxies)
        tasks = fetch(choice["tasks"])
        slots = [
            (self.labels[r][1], self.round * batch + b, int(tasks[r, b])) for r in runs for b in range(batch)
        ]
        unique = sorted(set(slots))
        states, actions = self._timed(
            "rollouts",
            env.demonstrations,
            [t for *_, t in unique],
            "demo",
            [i for _, i, _ in unique],
            [s for s, _, _ in unique],
        )
        position = {k: i for i, k in enumerate(unique)}
        which = np.asarray([position[k] for k in slots]).reshape(len(runs), batch)
        demos = (place(jnp.asarray(states[which]), self.mesh), place(jnp.asarray(actions[which]), self.mesh))
        state = self._timed("training", self._add, state, choice["tasks"], *demos)
        done = self.round + 1
        evaluated = done % self.config.eval_every == 0 or done == self.config.rounds
        skipped = np.full((len(runs), env.num_tasks), SKIPPED)
        success = self._timed("rollouts", self._host_success, state) if evaluated else skipped
        metrics = {k: choice[k] for k in ("tasks", "scores", "finite")}
        return state, metrics | {"success": success}

    @property
    def round(self) -> int:
        return len(self.history["tasks"])

    @property
    def total(self) -> int:
        return self.config.rounds

    @property
    def done(self) -> int:
        return self.round

    @property
    def finished(self) -> bool:
        return self.round >= self.config.rounds

    def step(self) -> list[dict]:
        """One round for every run; raises NonFiniteKernel (state unchanged) if a covariance is not finite."""
        with jax.enable_x64(True):
            state, metrics = (self._host_round if self.host else self._round)(self.state)
            metrics = fetch(metrics)
        if not metrics["finite"].all():
            bad = [self.labels[i] for i in np.flatnonzero(~metrics["finite"])]
            raise NonFiniteKernel(
                f"round {self.round + 1}: the posterior covariance is not finite for runs {bad} "
                "(setting, seed, selector); check the kernel settings and that the policy's states stay "
                "finite"
            )
        self.state = state
        for name in HISTORY:
            self.history[name].append(metrics[name])
        targets = np.asarray(self.amf.targets)
        return [
            {
                "round": self.round,
                "demos": self.round * self.config.batch,
                "setting": setting,
                "seed": seed,
                "selector": selector,
                "success": _mean_or_none(metrics["success"][i][targets]),
                "tasks": metrics["tasks"][i].tolist(),
            }
            for i, (setting, seed, selector) in enumerate(self.labels)
        ]

    def note(self) -> str:
        latest = [x for x in self.history["success"] if (np.asarray(x) != SKIPPED).all()][-1]
        mean = np.asarray(latest)[:, np.asarray(self.amf.targets)].mean(-1)
        by = {
            m: np.median([v for v, (_, _, n) in zip(mean, self.labels, strict=True) if n == m])
            for m in self.selectors
        }
        return " ".join(f"{m} {v:.2f}" for m, v in by.items())

    # -- persistence ------------------------------------------------------------------------------------
    def snapshot(self) -> tuple[dict[str, np.ndarray], dict]:
        history = {f"history/{k}": np.stack(v) for k, v in self.history.items() if v}
        with jax.enable_x64(True):  # the gather keeps the state's float64
            state = fetch(self.state)
        return store.flatten(state, "state") | history, {"rounds": self.round}

    def restore(self, stored: store.Stored) -> None:
        """The state and history of a checkpoint (bit-identical to a run that never stopped)."""
        stored.only("state", "history")
        rounds = stored.meta.get("rounds")
        if not isinstance(rounds, int) or rounds < 0:
            raise store.StoreError(f"{stored.path}: no round count")
        with jax.enable_x64(True):
            template = jax.eval_shape(self._initial_state, *self._pretraining_shapes())
            state = store.restore(template, stored.group("state"), stored.path)
            self.state = place(state, self.mesh)
        history = {}
        for name in HISTORY:
            arrays = stored.arrays.get(f"history/{name}")
            want = rounds + 1 if name == "success" else rounds
            if (arrays is None and want) or (arrays is not None and len(arrays) != want):
                raise store.StoreError(f"{stored.path}: the {name} history does not cover {rounds} rounds")
            history[name] = [] if arrays is None else list(arrays)
        self.history = history

    def _pretraining_shapes(self) -> tuple:
        """The arguments of `_initial_state` as shapes only (a host family's demos are not remade)."""
        if not self.host:
            return ()
        env, (pairs, count) = self.amf.env, self._pre.shape
        shape = (pairs, count, env.horizon)
        return (
            (
                jax.ShapeDtypeStruct((*shape, env.state_dim), jnp.float64),
                jax.ShapeDtypeStruct((*shape, env.action_dim), jnp.float64),
            ),
        )

    # -- results ----------------------------------------------------------------------------------------
    def results(self) -> dict:
        """Per setting and selector: demos spent, median (over seeds) mean success, per-seed curves, the
        tasks each seed asked for, the share of demos spent on tasks pretraining never saw, demos to 0.9."""
        success = np.stack(self.history["success"])  # (rounds + 1, runs, C)
        evaluated = np.flatnonzero((success != SKIPPED).all(axis=(1, 2)))
        demos = [int(r) * self.config.batch for r in evaluated]
        success = success[evaluated]
        tasks = (
            np.concatenate(self.history["tasks"], axis=1) if self.round else np.zeros((len(self.labels), 0))
        )
        out: dict = {}
        for setting in self.settings:
            seen = set(self.pretrain_tasks(setting).tolist())
            out[setting] = {}
            for selector in self.selectors:
                idx = [i for i, (t, _, m) in enumerate(self.labels) if t == setting and m == selector]
                per_seed = success[:, idx][..., np.asarray(self.amf.targets)].mean(-1).T  # (seeds, rounds+1)
                median = np.median(per_seed, 0).tolist()
                asked = tasks[idx]
                out[setting][selector] = {
                    "demos": demos,
                    "success_median": median,
                    f"demos_to_{THRESHOLD}": demos_to(THRESHOLD, demos, median),
                    "success_per_seed": per_seed.tolist(),
                    "tasks_per_seed": asked.tolist(),
                    "unseen_task_fraction": float(np.mean([t not in seen for t in asked.ravel()]))
                    if asked.size
                    else None,
                    "success_per_task_final": success[-1, idx].mean(0).tolist(),
                }
        return out


# ------------------------------------------------------------------------------------- the high-level entry


class AMFResult(Result):
    """An AMF run directory: results.json (success per round, the tasks asked, demos to 0.9), success.png,
    config.json and the metrics stream (a row per round: demos spent, mean target success, tasks asked)."""

    progress = "demos"

    @property
    def summary(self) -> dict[str, Any]:
        """results.json's result: demos, success_median, success_per_seed, tasks_per_seed, ..."""
        return read_json(self.directory / "results.json")["result"]

    def plot(self, key: str = "success", path: str | os.PathLike | None = None) -> Path:
        return super().plot(key, path)


def _finish(run: AMFRun, directory: Path) -> AMFResult:
    from rewire.report import plot_curves

    (setting,), (selector,) = run.settings, run.selectors
    result = run.results()[setting][selector]
    write_json(directory / "results.json", {"config": run.config, "result": result})
    plot_curves(
        directory / "success.png",
        result["demos"],
        {selector: result["success_per_seed"]},
        "demonstrations requested",
        "mean success over tasks",
        f"{selector}, {setting}",
    )
    return AMFResult(directory)


def fit(
    family: TaskFamily | MetaWorldFamily | None = None,
    config: AMFConfig = AMFConfig(),
    seed: int = 0,
    selector: str = "amf",
    setting: str = "mismatch",
    pretrain_tasks: list[int] | None = None,
    out: str | os.PathLike | None = None,
    quiet: bool = True,
    checkpoint_every: float = 30.0,
    tensorboard: bool = False,
    devices: Devices = None,
) -> AMFResult:
    """Pretrain a multi-task policy on expert demonstrations, then spend `config.budget` demonstrations
    in rounds of `config.batch`, choosing tasks with `selector` (amf: greedy information gain; uniform;
    random). `family`: a `TaskFamily` of your own, pretrained on `pretrain_tasks`; a `MetaWorldFamily` or
    None (the config's built-in env), pretrained on `setting`. The run directory `out` (temporary if None)
    is created atomically; the run checkpoints after rounds, and a `fit` on a directory holding the same
    run resumes it."""
    own = family is not None and not getattr(family, "host", False)
    settings = [GIVEN] if own else [setting]
    run = AMFRun(config, settings, [seed], [selector], family, pretrain_tasks, devices)
    extra = {"setting": settings[0], "selector": selector}
    if own:
        extra["pretrain_tasks"] = run.pretrain_tasks(GIVEN).tolist()
    directory = start_run_dir(out, "amf", run.config, seed, **extra)
    Loop(
        run, directory, every=checkpoint_every, quiet=quiet, description="AMF rounds", tensorboard=tensorboard
    ).run()
    return _finish(run, directory)


def resume(
    run_dir: str | os.PathLike,
    quiet: bool = True,
    checkpoint_every: float = 30.0,
    tensorboard: bool = False,
    devices: Devices = None,
) -> AMFResult:
    """Continue the built-in-family run in `run_dir` from its checkpoint."""
    record = read_run_record(run_dir)
    config = config_from_json(AMFConfig, record["config"], f"{run_dir}/config.json: config")
    setting, seed, selector = record.get("setting"), record.get("seed"), record.get("selector")
    if not (isinstance(setting, str) and isinstance(seed, int) and isinstance(selector, str)):
        raise ValueError(f"{run_dir}/config.json: no setting, seed and selector of an AMF run")
    if setting == GIVEN:
        raise ValueError(f"{run_dir}: a run on a task family of your own resumes from Python only")
    run = AMFRun(config, [setting], [seed], [selector], devices=devices)
    Loop(
        run,
        Path(run_dir),
        every=checkpoint_every,
        quiet=quiet,
        description="AMF rounds",
        tensorboard=tensorboard,
    ).run()
    return _finish(run, Path(run_dir))
