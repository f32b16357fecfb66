"""Episode dataset type, Monte-Carlo returns-to-go, validation and file formats.

In memory an episode follows Minari: observations (T+1), actions (T), rewards (T), terminations (T),
truncations (T). On disk rewire reads and writes
- NPZ and HDF5 in the flat D4RL layout: observations, actions, rewards, terminals, timeouts and
  (optionally) next_observations, one row per transition;
- HDF5 in the Minari layout: one group `episode_<i>` per episode holding the five Minari arrays.
Every file is validated before anything is trained on it: a missing key, mismatched lengths, non-finite
values, a shape that does not fit the environment or actions outside its bounds raise `DatasetError`
naming the file, the key and the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import h5py
import numpy as np

from rewire.buffer import Transition
from rewire.data.minari_format import (
    MAIN,
    METADATA,
    MinariFormatError,
    flatten_observations,
    is_minari_dir,
    main_file,
    observation_layout,
    read_metadata,
    write_minari,
)
from rewire.envs import EnvSpec
from rewire.store import MAX_EXPANSION, StoreError, atomic, read_npz, write_npz

ACTION_CLIP = 0.99999  # keeps tanh-space quantities of data actions finite (Cal-QL reference code)
FLAT_REQUIRED = ("observations", "actions", "rewards", "terminals")
MINARI_KEYS = ("observations", "actions", "rewards", "terminations", "truncations")


class DatasetError(ValueError):
    """A dataset file that cannot be trained on; the message names the file, the key and the problem."""


@dataclass
class Episode:
    """One episode in the Minari layout: T + 1 observations, T actions (env units), rewards and end flags."""

    observations: np.ndarray  # (T+1, obs_dim)
    actions: np.ndarray  # (T, act_dim), environment units
    rewards: np.ndarray  # (T,)
    terminations: np.ndarray  # (T,) bool
    truncations: np.ndarray  # (T,) bool

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def success(self) -> bool:
        return bool(self.terminations[-1]) if len(self) else False


@dataclass
class EpisodeDataset:
    """Episodes of one env, with the metadata a file carried."""

    episodes: list[Episode]
    env_id: str
    metadata: dict = field(default_factory=dict)
    # Dict observations flattened into one vector: (key, width) in order (`minari_format`); () if flat
    observation_keys: tuple[tuple[str, int], ...] = ()

    @property
    def num_transitions(self) -> int:
        return sum(len(e) for e in self.episodes)

    def summary(self) -> dict:
        lengths = np.array([len(e) for e in self.episodes])
        returns = np.array([e.rewards.sum() for e in self.episodes])
        return {
            "env_id": self.env_id,
            "episodes": len(self.episodes),
            "transitions": int(lengths.sum()),
            "episode_length": {
                "mean": float(lengths.mean()),
                "min": int(lengths.min()),
                "max": int(lengths.max()),
            },
            "return": {
                "mean": float(returns.mean()),
                "min": float(returns.min()),
                "max": float(returns.max()),
            },
            "terminated_fraction": float(np.mean([e.success for e in self.episodes])),
            "obs_dim": int(self.episodes[0].observations.shape[1]),
            "act_dim": int(self.episodes[0].actions.shape[1]),
            **({"observation_keys": dict(self.observation_keys)} if self.observation_keys else {}),
            "metadata": self.metadata,
        }


def mc_returns(
    rewards: np.ndarray,
    terminations: np.ndarray,
    gamma: float,
    sparse: bool,
    failure_reward: float,
    tail: float = 0.0,
) -> np.ndarray:
    """Discounted return-to-go of one episode, in the units of `rewards` (already scaled), to be a floor on
    the value of the behaviour policy (Cal-QL's reference value).

    g_t = r_t + gamma (1 - term_t) g_{t+1}. After a terminal g_T = 0. After a truncated end (a time limit)
    the episode would have gone on, so g_T = `tail`, a lower bound on the omitted tail's value: the caller
    gives r_min / (1 - gamma) with the data's smallest reward (`truncation_tail`), which keeps g_t below
    the true value even when rewards are negative (Pendulum), where g_T = 0 would lie above it. On sparse
    tasks an episode whose every reward equals the scaled failure reward never succeeded: every g_t is the
    value of failing forever, failure_reward / (1 - gamma) (Nakamoto et al. 2023, Appendix: the rule for
    sparse tasks)."""
    rewards = np.asarray(rewards, np.float64)
    if sparse and np.all(rewards == failure_reward):
        return np.full(rewards.shape, failure_reward / (1.0 - gamma), np.float32)
    out = np.zeros_like(rewards)
    g = 0.0 if len(rewards) == 0 or terminations[-1] else float(tail)
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * (1.0 - float(terminations[t])) * g
        out[t] = g
    return out.astype(np.float32)


def label_rewards(
    rewards: np.ndarray,
    terminations: np.ndarray,
    spec: EnvSpec,
    gamma: float,
    reward_scale: float,
    reward_bias: float,
    tail: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """One episode's rewards in the critic's units (r * scale + bias) and their MC returns-to-go (`tail`
    after a truncated end, see `mc_returns`)."""
    scaled = np.asarray(rewards, np.float32) * reward_scale + reward_bias
    failure = spec.failure_reward * reward_scale + reward_bias
    return scaled, mc_returns(scaled, terminations, gamma, spec.sparse, failure, tail)


def truncation_tail(episodes: list[Episode], gamma: float, reward_scale: float, reward_bias: float) -> float:
    """r_min / (1 - gamma) with r_min the data's smallest scaled reward: what a truncated episode's omitted
    tail is worth at least, if the rewards it would have seen are no smaller than the data's."""
    r_min = min(float(np.min(ep.rewards)) for ep in episodes) * reward_scale + reward_bias
    return r_min / (1.0 - gamma)


def episodes_to_transitions(
    episodes: list[Episode],
    spec: EnvSpec,
    gamma: float,
    reward_scale: float,
    reward_bias: float,
    tail: float = 0.0,
) -> Transition:
    """Flatten episodes into transitions with scaled rewards, unit-box actions and MC labels (`tail` after
    a truncated end, see `mc_returns`)."""
    parts = []
    for ep in episodes:
        rewards, returns = label_rewards(
            ep.rewards, ep.terminations, spec, gamma, reward_scale, reward_bias, tail
        )
        parts.append(
            Transition(
                obs=ep.observations[:-1],
                action=np.clip(spec.to_unit_action(ep.actions), -ACTION_CLIP, ACTION_CLIP),
                reward=rewards,
                next_obs=ep.observations[1:],
                terminal=ep.terminations.astype(np.float32),
                mc_return=returns,
            )
        )
    return Transition(*(np.concatenate(xs).astype(np.float32) for xs in zip(*parts, strict=True)))


# ---------------------------------------------------------------------------------------------- validation


def _check_finite(path: Path, key: str, x: np.ndarray) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DatasetError(f"{path}: key '{key}' has {int(bad.sum())} NaN/inf values (first at row {row})")


def _check_width(path: Path, key: str, x: np.ndarray, width: int, spec: EnvSpec | None) -> None:
    if x.ndim != 2:
        raise DatasetError(f"{path}: key '{key}' must be 2-D (rows, features), got shape {x.shape}")
    if spec is not None and x.shape[1] != width:
        raise DatasetError(
            f"{path}: key '{key}' has shape {x.shape}, but {spec.env_id} needs {width} features per row"
        )


def validate_episodes(path: Path, episodes: list[Episode], spec: EnvSpec | None) -> None:
    """Raise `DatasetError` for anything a learner must not see; `spec` checks shapes and action bounds."""
    if not episodes:
        raise DatasetError(f"{path}: holds no episodes")
    for i, ep in enumerate(episodes):
        where = f"episode {i}"
        for key in MINARI_KEYS:
            _check_finite(path, f"{where}/{key}", np.asarray(getattr(ep, key), np.float64))
        t = len(ep.rewards)
        if t == 0:
            raise DatasetError(f"{path}: {where} has no transitions")
        for key, expect in (("observations", t + 1), ("actions", t), ("terminations", t), ("truncations", t)):
            n = len(getattr(ep, key))
            if n != expect:
                raise DatasetError(
                    f"{path}: key '{where}/{key}' has {n} rows, expected {expect} ({t} rewards)"
                )
        _check_width(path, f"{where}/observations", ep.observations, spec.obs_dim if spec else 0, spec)
        _check_width(path, f"{where}/actions", ep.actions, spec.act_dim if spec else 0, spec)
        if spec is not None:
            low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)
            tol = 1e-6 * (1.0 + np.abs(high - low))
            if np.any(ep.actions < low - tol) or np.any(ep.actions > high + tol):
                raise DatasetError(
                    f"{path}: key '{where}/actions' has values outside {spec.env_id}'s action bounds "
                    f"[{list(spec.action_low)}, {list(spec.action_high)}]"
                )


# -------------------------------------------------------------------------------------------------- reading


def _split_flat(path: Path, arrays: dict[str, np.ndarray]) -> list[Episode]:
    """Split D4RL-style flat arrays into episodes at terminals and timeouts."""
    for key in FLAT_REQUIRED:
        if key not in arrays:
            raise DatasetError(f"{path}: missing key '{key}' (a flat dataset needs {list(FLAT_REQUIRED)})")
    n = len(arrays["rewards"])
    keys = [*FLAT_REQUIRED, *(k for k in ("timeouts", "next_observations") if k in arrays)]
    for key in keys:
        x = np.asarray(arrays[key])
        if len(x) != n:
            raise DatasetError(f"{path}: key '{key}' has {len(x)} rows but 'rewards' has {n}")
        if x.dtype.kind in "fc":
            _check_finite(path, key, x)
    obs = np.asarray(arrays["observations"], np.float32)
    acts = np.asarray(arrays["actions"], np.float32)
    for key, x in (("observations", obs), ("actions", acts)):
        if x.ndim != 2:
            raise DatasetError(f"{path}: key '{key}' must be 2-D (rows, features), got shape {x.shape}")
    rewards = np.asarray(arrays["rewards"], np.float32).reshape(n)
    terms = np.asarray(arrays["terminals"]).astype(bool).reshape(n)
    timeouts = np.asarray(arrays.get("timeouts", np.zeros(n))).astype(bool).reshape(n)
    if n > 1 and not terms.any() and not timeouts.any():
        raise DatasetError(
            f"{path}: no episode ends: 'terminals' and 'timeouts' are all 0, so the {n} rows would be one "
            "episode; mark where episodes end (a terminal, or a timeout at a time limit)"
        )
    next_obs = arrays.get("next_observations")
    episodes, start = [], 0
    for t in range(n):
        last = t == n - 1
        if not (terms[t] or timeouts[t] or last):
            continue
        sl = slice(start, t + 1)
        if next_obs is not None:
            observations = np.concatenate([obs[sl], np.asarray(next_obs[t : t + 1], np.float32)])
            ep_act, ep_rew, ep_term = acts[sl], rewards[sl], terms[sl]
        elif terms[t]:  # terminal: the next observation is never used (masked), repeat the last one
            observations = np.concatenate([obs[sl], obs[t : t + 1]])
            ep_act, ep_rew, ep_term = acts[sl], rewards[sl], terms[sl]
        else:  # timeout without next_observations: drop the last transition (D4RL qlearning semantics)
            observations = obs[sl]
            ep_act, ep_rew, ep_term = acts[start:t], rewards[start:t], terms[start:t]
        trunc = np.zeros(len(ep_rew), bool)
        if len(ep_rew):
            trunc[-1] = not ep_term[-1]
            episodes.append(Episode(observations, ep_act, ep_rew, ep_term, trunc))
        start = t + 1
    return episodes


def _h5_array(path: Path, node: object, key: str) -> np.ndarray:
    """An HDF5 dataset's values, refused before reading if it is a group, or if it declares far more data
    than the file could hold (a chunked dataset can declare any shape without storing it)."""
    if not isinstance(node, h5py.Dataset):
        raise DatasetError(f"{path}: key '{key}' is a group, not an array")
    declared = node.size * node.dtype.itemsize
    if declared > MAX_EXPANSION * max(path.stat().st_size, 1) + 2**20:
        raise DatasetError(f"{path}: key '{key}' declares shape {node.shape}, more than the file can hold")
    return np.asarray(node)


def _h5_child(path: Path, episode: str, node: object, key: str) -> np.ndarray:
    return _h5_array(path, node, f"{episode}/{key}")


def _episode_index(path: Path, name: str) -> int:
    try:
        return int(name.split("_", 1)[1])
    except ValueError:
        raise DatasetError(f"{path}: group '{name}' is not named episode_<number>") from None


def _read_minari(
    path: Path, f: h5py.File, layout: tuple[tuple[str, int], ...] = ()
) -> tuple[list[Episode], tuple[tuple[str, int], ...]]:
    """Episode groups of a Minari hdf5 file, and the observation layout used: Dict observations flattened in
    `layout` order, or, without one (a bare hdf5 file), in the first episode's sorted keys and widths, which
    every later episode must then match."""
    names = sorted((k for k in f.keys() if k.startswith("episode_")), key=lambda k: _episode_index(path, k))
    episodes = []
    for name in names:
        group = f[name]
        for key in MINARI_KEYS:
            if key not in group:
                raise DatasetError(f"{path}: missing key '{name}/{key}'")
        arrays = {key: _h5_array(path, group[key], f"{name}/{key}") for key in MINARI_KEYS[1:]}
        obs = group["observations"]
        if not layout and not episodes and isinstance(obs, h5py.Group):
            layout = tuple((k, int(obs[k].shape[-1]) if obs[k].ndim > 1 else 1) for k in sorted(obs))
        try:
            arrays["observations"] = flatten_observations(
                f"{path}: {name}",
                obs,
                layout,
                partial(_h5_child, path, name),
            )
        except MinariFormatError as err:
            raise DatasetError(str(err)) from None
        episodes.append(
            Episode(
                arrays["observations"].astype(np.float32),
                arrays["actions"].astype(np.float32),
                arrays["rewards"].astype(np.float32).reshape(-1),
                arrays["terminations"].astype(bool).reshape(-1),
                arrays["truncations"].astype(bool).reshape(-1),
            )
        )
    return episodes, layout


def from_arrays(
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    terminals: np.ndarray,
    timeouts: np.ndarray | None = None,
    next_observations: np.ndarray | None = None,
    env_id: str = "arrays",
) -> EpisodeDataset:
    """A dataset from flat D4RL-style arrays in memory (rows are transitions; episodes end at terminals and
    timeouts, as in a flat file), validated as a file would be."""
    arrays = {"observations": observations, "actions": actions, "rewards": rewards, "terminals": terminals}
    extra = {"timeouts": timeouts, "next_observations": next_observations}
    arrays |= {k: v for k, v in extra.items() if v is not None}
    where = Path("<arrays>")
    episodes = _split_flat(where, {k: np.asarray(v) for k, v in arrays.items()})
    validate_episodes(where, episodes, None)
    return EpisodeDataset(episodes, env_id, {})


def _stitch_goals(path: Path, arrays: dict[str, np.ndarray], goal: np.ndarray, spec: EnvSpec) -> None:
    """D4RL's maze files (maze2d, antmaze) keep the goal in infos/goal and the position in the first two
    observation columns; gymnasium-robotics' flattened observation is (achieved_goal, desired_goal,
    observation), where PointMaze's observation keeps the position and AntMaze's drops it. Rebuild it in
    place. Positions stay in the file's frame."""
    obs = np.asarray(arrays["observations"])
    if obs.ndim != 2 or goal.shape != (len(obs), 2):
        raise DatasetError(f"{path}: key 'infos/goal' has shape {goal.shape}, expected ({len(obs)}, 2)")
    extra = spec.obs_dim - obs.shape[1]
    if extra not in (2, 4):
        return  # the widths say nothing is missing; validation reports a mismatch
    for key in ("observations", "next_observations"):
        if key in arrays:
            x = np.asarray(arrays[key])
            arrays[key] = np.concatenate([x[:, :2], goal, x if extra == 4 else x[:, 2:]], axis=1)


def _read_h5(path: Path, spec: EnvSpec | None) -> tuple[list[Episode], str | None, dict, tuple]:
    layout: tuple[tuple[str, int], ...] = ()
    with h5py.File(path, "r") as f:
        stored_id = f.attrs.get("env_id")
        metadata = json.loads(f.attrs.get("metadata", "{}"))
        if any(k.startswith("episode_") for k in f.keys()):
            episodes, layout = _read_minari(path, f)
        else:
            arrays = {k: _h5_array(path, f[k], k) for k in f.keys() if k not in ("infos", "metadata")}
            infos = f.get("infos")
            if (
                spec is not None
                and isinstance(infos, h5py.Group)
                and "goal" in infos
                and "observations" in arrays
            ):
                _stitch_goals(path, arrays, _h5_array(path, infos["goal"], "infos/goal"), spec)
            episodes = _split_flat(path, arrays)
    return episodes, stored_id, metadata, layout


def _read_minari_dir(path: Path) -> tuple[list[Episode], str | None, dict, tuple]:
    data, metadata = read_metadata(path)
    layout = observation_layout(data / METADATA, metadata)
    main = data / MAIN
    try:
        with h5py.File(main, "r") as f:
            episodes, _ = _read_minari(main, f, layout)
    except (OSError, ValueError, KeyError, TypeError) as err:
        if isinstance(err, DatasetError):
            raise
        raise DatasetError(f"{main}: cannot be read ({err})") from None
    env_id = None
    try:
        env_id = json.loads(metadata["env_spec"])["id"] if metadata.get("env_spec") else None
    except (TypeError, KeyError, json.JSONDecodeError):
        raise DatasetError(f"{data / METADATA}: key 'env_spec' is not a Gymnasium EnvSpec's JSON") from None
    info = {k: metadata[k] for k in ("dataset_id", "minari_version", "rewire") if k in metadata}
    return episodes, env_id, info, layout


def load_dataset(path: str | Path, spec: EnvSpec | None = None, env_id: str | None = None) -> EpisodeDataset:
    """Read a dataset and validate it (against `spec` when given): an NPZ or HDF5 file in the flat D4RL
    layout (D4RL maze files' infos/goal stitched in as gymnasium-robotics' desired_goal), an HDF5 file of
    Minari episode groups, or a Minari dataset directory (Dict observations flattened in sorted key order,
    see `rewire.data.minari_format`)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such file")
    suffix = path.suffix.lower()
    metadata: dict = {}
    layout: tuple[tuple[str, int], ...] = ()
    where = path  # what validation errors name
    try:
        if is_minari_dir(path):
            where = main_file(path)
            episodes, stored_id, metadata, layout = _read_minari_dir(path)
        elif path.is_dir():
            raise DatasetError(f"{path}: a directory without {METADATA}, not a Minari dataset")
        elif suffix == ".npz":
            arrays = read_npz(path)
            stored_id = str(arrays.pop("env_id")) if "env_id" in arrays else None
            if "metadata" in arrays:
                metadata = json.loads(str(arrays.pop("metadata")))
            episodes = _split_flat(path, arrays)
        elif suffix in (".h5", ".hdf5"):
            episodes, stored_id, metadata, layout = _read_h5(path, spec)
        else:
            raise DatasetError(
                f"{path}: unknown format {suffix!r}; use .npz, .h5, .hdf5 or a Minari directory"
            )
    except (StoreError, MinariFormatError) as err:
        raise DatasetError(str(err)) from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        if isinstance(err, DatasetError):
            raise
        raise DatasetError(f"{path}: cannot be read ({err})") from None
    env_id = (
        env_id or (str(stored_id) if stored_id is not None else None) or (spec.env_id if spec else "unknown")
    )
    if spec is not None and stored_id is not None and str(stored_id) != spec.env_id:
        raise DatasetError(f"{path}: key 'env_id' is {stored_id!r}, but training is on {spec.env_id!r}")
    validate_episodes(where, episodes, spec)
    return EpisodeDataset(episodes, env_id, metadata, layout)


def save_dataset(dataset: EpisodeDataset, path: str | Path, spec: EnvSpec | None = None) -> Path:
    """Write NPZ (flat D4RL layout) or HDF5 (Minari episode groups) by suffix, or, for a path without a
    suffix named like a Minari id (`pointmaze-medium-v0`), a Minari dataset directory (`spec`, the env's,
    gives its spaces); atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if not suffix:
        return _save_minari(dataset, path, spec)
    if suffix == ".npz":
        eps = dataset.episodes
        arrays = {
            "observations": np.concatenate([e.observations[:-1] for e in eps]),
            "next_observations": np.concatenate([e.observations[1:] for e in eps]),
            "actions": np.concatenate([e.actions for e in eps]),
            "rewards": np.concatenate([e.rewards for e in eps]),
            "terminals": np.concatenate([e.terminations for e in eps]),
            "timeouts": np.concatenate(
                [e.truncations | (np.arange(len(e)) == len(e) - 1) & ~e.terminations for e in eps]
            ),
            "env_id": np.asarray(dataset.env_id),
            "metadata": np.asarray(json.dumps(dataset.metadata)),
        }
        return write_npz(path, arrays, compress=True)
    if suffix not in (".h5", ".hdf5"):
        raise DatasetError(f"{path}: unknown format {suffix!r}; use .npz, .h5, .hdf5 or a Minari directory")
    with atomic(path) as out, h5py.File(out, "w") as f:
        f.attrs["env_id"] = dataset.env_id
        f.attrs["metadata"] = json.dumps(dataset.metadata)
        for i, ep in enumerate(dataset.episodes):
            group = f.create_group(f"episode_{i}")
            for key in MINARI_KEYS:
                group.create_dataset(key, data=getattr(ep, key))
    return path


def _save_minari(dataset: EpisodeDataset, path: Path, spec: EnvSpec | None) -> Path:
    import gymnasium

    from rewire.envs import make_spec

    spec = spec or make_spec(dataset.env_id)
    try:
        env_spec = gymnasium.spec(spec.env_id).to_json()
    except (gymnasium.error.Error, TypeError, ValueError):
        env_spec = None  # not a registered id (or not serialisable): Minari then reads the stored spaces
    extra = {"rewire": {"env_id": dataset.env_id, "generator": dataset.metadata}}
    try:
        return write_minari(path, dataset.episodes, spec, dataset.observation_keys, env_spec, extra)
    except MinariFormatError as err:
        raise DatasetError(str(err)) from None
