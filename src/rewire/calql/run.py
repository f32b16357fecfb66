"""Cal-QL's high-level entry: `fit` a stack of CQL and Cal-QL agents (methods x seeds) on the user's data
and env through the shared run loop, and the trained actors as policy objects."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rewire import store
from rewire.calql import cql
from rewire.calql.trainer import FinetuneConfig, Finetuner, dataset_record, load_run
from rewire.data.episodes import EpisodeDataset, load_dataset, save_dataset
from rewire.envs import EnvSpec, as_spec
from rewire.loop import Loop
from rewire.mesh import Devices, fetch
from rewire.result import Result
from rewire.runs import config_from_json, read_json, record_run, start_run_dir, write_json

POLICY_KIND = "rewire.calql/policy"


@dataclass(frozen=True)
class CalQLPolicy:
    """A trained actor. `act(obs)` is the deterministic action tanh(mean) (with `key`, a sample of the
    tanh-Gaussian), mapped from the unit box to the env's own action bounds."""

    config: cql.CQLConfig
    actor: Any
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]

    def act(self, obs: Any, key: jax.Array | None = None) -> np.ndarray:
        unit = _act(self.config, self.actor, jnp.asarray(obs, jnp.float32), key, key is None)
        low, high = np.asarray(self.action_low), np.asarray(self.action_high)
        return low + (np.asarray(unit, np.float64) + 1.0) * 0.5 * (high - low)

    def save(self, path: str | os.PathLike) -> Path:
        """This policy alone, in rewire's file format (atomic)."""
        meta = {"agent": self.config, "action_low": self.action_low, "action_high": self.action_high}
        return store.write(path, POLICY_KIND, store.flatten(self.actor, "actor"), meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> CalQLPolicy:
        """A policy file written by `save` (every array checked against the network its config describes)."""
        saved = store.read(path, (POLICY_KIND,)).only("actor")
        try:
            config = config_from_json(cql.CQLConfig, saved.meta.get("agent"), f"{path}: agent")
            low, high = (tuple(float(x) for x in saved.meta[k]) for k in ("action_low", "action_high"))
        except (KeyError, TypeError, ValueError) as err:
            raise store.StoreError(f"{path}: not a valid Cal-QL policy ({err})") from None
        if not (config.act_dim == len(low) == len(high) and config.obs_dim > 0):
            raise store.StoreError(f"{path}: not a valid Cal-QL policy (sizes)")
        template = jax.eval_shape(lambda: cql.init(jax.random.key(0), config).params["actor"])
        actor = jax.tree.map(jnp.asarray, store.restore(template, saved.group("actor"), path))
        return cls(config, actor, low, high)


@partial(jax.jit, static_argnums=(0, 4))
def _act(config: cql.CQLConfig, actor: Any, obs: jax.Array, key: jax.Array | None, deterministic: bool):
    return cql.act(config, actor, obs, jax.random.key(0) if key is None else key, deterministic)


class CalQLResult(Result):
    """A Cal-QL run directory: `checkpoint.ckpt`, `results.json` (per agent: final success or return, dip,
    regret, Q - MC at the switch; the curves), config.json with the dataset's record, and the metrics stream
    (per block of updates: each agent's critic and actor losses, Q-values, temperature, CQL weight; per
    evaluation: success and return). `policy(i)` is agent i's actor (agents are methods x seeds)."""

    progress = "step"

    def __init__(self, directory: str | os.PathLike, trainer: Finetuner | None = None):
        super().__init__(directory)
        self.trainer = trainer

    @property
    def summary(self) -> dict[str, Any]:
        return read_json(self.directory / "results.json")

    @property
    def agents(self) -> list[str]:
        """The agents' labels ("calql/seed0", ...), in the order `policy` takes."""
        return self.summary["curves"]["labels"]

    def policy(self, agent: int | str = 0) -> CalQLPolicy:
        """The actor of agent `agent` (an index or a label) at the end of the run."""
        labels = self.agents
        index = labels.index(agent) if isinstance(agent, str) else agent
        if not 0 <= index < len(labels):
            raise ValueError(f"agent {agent!r}: this run has {labels}")
        if self.trainer is None:  # a loaded run on a built-in env: rebuilt from its record and checkpoint
            self.trainer = load_run(self.directory)
        trainer = self.trainer
        actor = jax.tree.map(lambda x: jnp.asarray(x[index]), fetch(trainer.states.params["actor"]))
        return CalQLPolicy(trainer.config.agent, actor, trainer.spec.action_low, trainer.spec.action_high)

    def plot(self, key: str = "return", path: str | os.PathLike | None = None) -> Path:
        """The evaluation curves (`key`: success or return) of every method, as `rewire calql train` draws
        them; returns the online curve's figure."""
        from rewire.report import plot_calql

        methods = sorted({label.split("/")[0] for label in self.agents})
        folder = self.directory if path is None else Path(path).parent
        return plot_calql(self.summary["curves"], methods, folder, metric=key)[0]


def finish(trainer: Finetuner, directory: Path) -> CalQLResult:
    """results.json and the curves of a finished run."""
    from rewire.report import plot_calql

    results = trainer.results() | {"timing": {"updates_per_s": trainer.updates_per_s}}
    write_json(directory / "results.json", results)
    metric = "success" if trainer.spec.sparse else "return"
    plot_calql(results["curves"], list(trainer.config.methods), directory, metric=metric)
    return CalQLResult(directory, trainer)


def fit(
    data: EpisodeDataset | str | os.PathLike,
    env: Any,
    config: FinetuneConfig = FinetuneConfig(),
    out: str | os.PathLike | None = None,
    quiet: bool = True,
    checkpoint_every: float = 30.0,
    horizon: int | None = None,
    tensorboard: bool = False,
    devices: Devices = None,
) -> CalQLResult:
    """Pre-train `config.methods` x `config.seeds` agents offline on `data` (an `EpisodeDataset`, e.g.
    `rewire.data.from_arrays(...)`, or a D4RL/Minari HDF5 or NPZ file), then fine-tune them online in `env`
    (an id, a Gymnasium env with a Box action space, or a gymnax-style JAX env; see `rewire.envs.as_spec`).
    The run directory `out` (temporary if None) is created atomically (data given in memory is saved in
    it; a file is recorded by its path and sha256); training
    checkpoints there, and a `fit` on a directory holding the same run resumes it. The agents are split over
    `devices` (`rewire.mesh`)."""
    spec: EnvSpec = as_spec(env, horizon)
    config = dataclasses.replace(config, env_id=spec.env_id)
    path = None if isinstance(data, EpisodeDataset) else Path(data)
    dataset = data if path is None else load_dataset(path, spec)
    trainer = Finetuner(config, dataset, spec, devices)

    def with_data(staging: Path) -> None:  # a file is recorded with its sha256; data in memory saved beside
        source = path if path is not None else save_dataset(dataset, staging / "dataset.npz")
        record_run(staging, trainer.config, config.seed, dataset=dataset_record(source, staging))

    directory = start_run_dir(out, "calql", trainer.config, config.seed, with_data)
    loop = Loop(trainer, directory, every=checkpoint_every, quiet=quiet, tensorboard=tensorboard)
    loop.description = "calql train"
    loop.run()
    return finish(trainer, directory)


def resume(
    run_dir: str | os.PathLike,
    offline_steps: int | None = None,
    online_steps: int | None = None,
    quiet: bool = True,
    checkpoint_every: float = 30.0,
    tensorboard: bool = False,
    devices: Devices = None,
) -> CalQLResult:
    """Continue the run in `run_dir` on a built-in env from its checkpoint (`load_run`; the budgets extend
    it). A run on an env object resumes through `fit` with the same env, data and config."""
    trainer = load_run(run_dir, False, offline_steps, online_steps, devices)
    loop = Loop(trainer, Path(run_dir), every=checkpoint_every, quiet=quiet, tensorboard=tensorboard)
    loop.description = "calql train"
    loop.run()
    return finish(trainer, Path(run_dir))
