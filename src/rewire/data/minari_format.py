"""Minari's on-disk dataset format, read and written with h5py and JSON (Minari itself is not needed).

A Minari dataset is a directory `<root>/<dataset_id>` whose `data/` holds `metadata.json` (the dataset's id,
counts, format "hdf5", the serialised observation and action spaces, the env's spec) and `main_data.hdf5`:
one group `episode_<i>` per episode with observations (T+1), actions, rewards, terminations and
truncations (T). Under a Dict observation space, observations are a group of arrays, one per key. rewire
flattens them in `gymnasium.spaces.flatten`'s order, the Dict space's sorted keys (for the mazes:
achieved_goal, desired_goal, observation), which is also how `rewire.envs.flat` flattens the env's
observations; writing splits them back by `EpisodeDataset.observation_keys`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rewire.envs import EnvSpec

MINARI_VERSION = "0.5.4"  # the Minari release whose layout this writes (minari.supported_dataset_versions)
DATA_DIR, METADATA, MAIN = "data", "metadata.json", "main_data.hdf5"
DATASET_ID = re.compile(r"^([\w.-]+/)*[\w.-]+-v\d+$")  # Minari's ids: (namespace/)name-v<version>


class MinariFormatError(ValueError):
    """A Minari directory that cannot be read; the message names the file and the problem."""


def is_minari_dir(path: Path) -> bool:
    """`path` is a Minari dataset directory (`<id>` or its `data/`)."""
    return path.is_dir() and ((path / METADATA).exists() or (path / DATA_DIR / METADATA).exists())


def _data_dir(path: Path) -> Path:
    return path if (path / METADATA).exists() else path / DATA_DIR


def main_file(path: Path) -> Path:
    """The episodes' file of the Minari dataset directory `path`: what errors about episodes name."""
    return _data_dir(path) / MAIN


def _box(space: Any, where: str) -> int:
    shape = space.get("shape") if isinstance(space, dict) else None
    if not (
        isinstance(shape, list)
        and len(shape) == 1
        and isinstance(shape[0], int)
        and space.get("type") == "Box"
    ):
        raise MinariFormatError(f"{where}: rewire reads 1-D Box spaces (or a Dict of them), got {space}")
    return int(shape[0])


def observation_layout(metadata_path: Path, metadata: dict) -> tuple[tuple[str, int], ...]:
    """The Dict observation space's (key, width) in flatten order; () for a Box space."""
    try:
        space = json.loads(metadata["observation_space"])
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise MinariFormatError(
            f"{metadata_path}: key 'observation_space' missing or not JSON ({err})"
        ) from None
    if isinstance(space, dict) and space.get("type") == "Dict":
        subspaces = space.get("subspaces")
        if not isinstance(subspaces, dict) or not subspaces:
            raise MinariFormatError(f"{metadata_path}: 'observation_space' is a Dict without subspaces")
        return tuple(
            (key, _box(subspaces[key], f"{metadata_path}: observation '{key}'")) for key in sorted(subspaces)
        )
    _box(space, f"{metadata_path}: observation_space")
    return ()


def read_metadata(path: Path) -> tuple[Path, dict]:
    """The data directory and its `metadata.json`, checked for what reading needs."""
    data = _data_dir(path)
    meta_path = data / METADATA
    try:
        metadata = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MinariFormatError(f"{meta_path}: cannot be read as JSON ({err})") from None
    if not isinstance(metadata, dict):
        raise MinariFormatError(f"{meta_path}: must hold a JSON object")
    fmt = metadata.get("data_format", "hdf5")
    if fmt != "hdf5":
        raise MinariFormatError(
            f"{meta_path}: data_format {fmt!r} is not read by rewire; convert it to 'hdf5' (minari's "
            "`combine_datasets`/`create_dataset_from_buffers` with data_format='hdf5')"
        )
    if not (data / MAIN).exists():
        raise MinariFormatError(
            f"{data / MAIN}: no such file (a Minari hdf5 dataset keeps its episodes there)"
        )
    return data, metadata


def flatten_observations(where: str, node: Any, layout: tuple[tuple[str, int], ...], read: Any) -> np.ndarray:
    """An episode's observations as (T+1, width): a plain array, or a Dict group concatenated in `layout`
    order (its keys sorted when `layout` is empty). `read(node, key)` reads one array safely."""
    if isinstance(node, h5py.Dataset):
        if layout:
            raise MinariFormatError(
                f"{where}: the observation space is a Dict, but the observations are one array"
            )
        return read(node, "observations")
    keys = layout or tuple((k, -1) for k in sorted(node.keys()))
    missing = [k for k, _ in keys if k not in node]
    if missing or set(node.keys()) != {k for k, _ in keys}:
        raise MinariFormatError(
            f"{where}: observation keys {sorted(node.keys())} do not match the space's {[k for k, _ in keys]}"
        )
    parts = []
    for key, width in keys:
        x = read(node[key], f"observations/{key}")
        x = x.reshape(len(x), -1) if x.ndim == 1 else x
        if x.ndim != 2 or (width >= 0 and x.shape[1] != width):
            raise MinariFormatError(
                f"{where}: observations/{key} has shape {x.shape}, the space says width {width}"
            )
        parts.append(x)
    if len({len(p) for p in parts}) != 1:
        raise MinariFormatError(
            f"{where}: the observation keys have different lengths {[len(p) for p in parts]}"
        )
    return np.concatenate(parts, axis=1)


def _box_json(low: np.ndarray, high: np.ndarray, dtype: str) -> dict:
    return {"type": "Box", "dtype": dtype, "shape": [len(low)], "low": low.tolist(), "high": high.tolist()}


def write_minari(
    directory: str | os.PathLike,
    episodes: list,
    spec: EnvSpec,
    observation_keys: tuple[tuple[str, int], ...],
    env_spec_json: str | None,
    extra: dict,
) -> Path:
    """Write `episodes` (flat observations, env-unit actions) as the Minari dataset `directory`, whose name is
    its id (`pointmaze-medium-v0`, so that `minari.load_dataset` finds it under MINARI_DATASETS_PATH).
    Atomic: built in a temporary sibling and renamed into place; an existing dataset is not overwritten."""
    directory = Path(directory)
    if not DATASET_ID.match(directory.name):
        raise MinariFormatError(
            f"{directory}: a Minari dataset directory is named by its id, name-v<version> (e.g. "
            "pointmaze-medium-v0)"
        )
    if directory.exists():
        raise MinariFormatError(f"{directory}: already exists; remove it or choose another name")
    unbounded = np.full(spec.obs_dim, np.inf)
    if observation_keys:
        obs_space = {
            "type": "Dict",
            "subspaces": {
                k: _box_json(-np.full(w, np.inf), np.full(w, np.inf), "float64") for k, w in observation_keys
            },
        }
    else:
        obs_space = _box_json(-unbounded, unbounded, "float64")
    act_space = _box_json(np.asarray(spec.action_low), np.asarray(spec.action_high), "float32")
    metadata = {
        "dataset_id": directory.name,
        "total_episodes": len(episodes),
        "total_steps": int(sum(len(e) for e in episodes)),
        "data_format": "hdf5",
        "jpeg_encoding": False,
        "observation_space": json.dumps(obs_space),
        "action_space": json.dumps(act_space),
        "minari_version": MINARI_VERSION,
        **({"env_spec": env_spec_json} if env_spec_json else {}),
        **extra,
    }
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        data = staging / DATA_DIR
        data.mkdir()
        with h5py.File(data / MAIN, "w", track_order=True) as f:
            for i, ep in enumerate(episodes):
                group = f.create_group(f"episode_{i}")
                group.attrs["id"] = i
                group.attrs["total_steps"] = len(ep)
                if observation_keys:
                    obs, start = group.create_group("observations"), 0
                    for key, width in observation_keys:
                        obs.create_dataset(
                            key, data=ep.observations[:, start : start + width].astype(np.float64)
                        )
                        start += width
                else:
                    group.create_dataset("observations", data=ep.observations.astype(np.float64))
                group.create_dataset("actions", data=ep.actions.astype(np.float32))
                group.create_dataset("rewards", data=ep.rewards.astype(np.float64))
                group.create_dataset("terminations", data=ep.terminations.astype(bool))
                group.create_dataset("truncations", data=ep.truncations.astype(bool))
        metadata["dataset_size"] = round((data / MAIN).stat().st_size / 1e6, 1)
        (data / METADATA).write_text(json.dumps(metadata))
        for name in (MAIN, METADATA):
            with open(data / name, "rb") as fh:
                os.fsync(fh.fileno())
        os.rename(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory
