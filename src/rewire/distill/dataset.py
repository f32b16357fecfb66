"""Synthetic datasets on disk: named arrays, the normalisation constants they live in, and their config."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rewire.runs import to_jsonable
from rewire.store import write_npz

ARRAYS = ("states", "actions", "logits", "log_lr")


def save_synthetic(
    path: str | os.PathLike, dataset: dict[str, Any], obs_mean: np.ndarray, obs_std: np.ndarray, meta: dict
) -> Path:
    """Write an NPZ with the dataset's named arrays, `obs_mean`/`obs_std`, and `meta` (env id, config,
    seed, generation, versions) as a JSON string, atomically (`store.write_npz`)."""
    arrays = {k: np.asarray(v) for k, v in dataset.items() if k in ARRAYS}
    meta = np.array(json.dumps(to_jsonable(meta)))
    return write_npz(path, {"obs_mean": obs_mean, "obs_std": obs_std, "meta": meta} | arrays)


def load_synthetic(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict]:
    """Read a dataset written by `save_synthetic`: (arrays, obs_mean, obs_std, meta)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such dataset")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable NPZ file ({err})") from err
    missing = {"states", "obs_mean", "obs_std", "meta"} - set(data)
    if missing:
        raise ValueError(f"{path}: not a rewire synthetic dataset (missing {sorted(missing)})")
    meta = json.loads(str(data.pop("meta")))
    obs_mean, obs_std = data.pop("obs_mean"), data.pop("obs_std")
    if obs_mean.shape != obs_std.shape or obs_mean.shape != data["states"].shape[1:]:
        raise ValueError(
            f"{path}: normalisation constants {obs_mean.shape} do not fit states {data['states'].shape}"
        )
    return {k: v for k, v in data.items() if k in ARRAYS}, obs_mean, obs_std, meta
