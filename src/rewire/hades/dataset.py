"""Synthetic datasets on disk: named arrays, the normalisation constants they live in, and their config.

An NPZ file (any NumPy reads it): the dataset's arrays (`states`, and `actions`, `logits` or `log_lr` when
evolved), `obs_mean`/`obs_std`, and `meta`, a JSON string with the format's name and version, the env id,
the full config, the seed, the generation and the package versions."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rewire.runs import to_jsonable
from rewire.store import read_npz, write_npz

ARRAYS = ("states", "actions", "logits", "log_lr")
FORMAT, VERSION = "rewire.hades/dataset", 1


def save_synthetic(
    path: str | os.PathLike, dataset: dict[str, Any], obs_mean: np.ndarray, obs_std: np.ndarray, meta: dict
) -> Path:
    """Write an NPZ with the dataset's named arrays, `obs_mean`/`obs_std`, and `meta` (env id, config,
    seed, generation, versions) as a JSON string, atomically (`store.write_npz`)."""
    arrays = {k: np.asarray(v) for k, v in dataset.items() if k in ARRAYS}
    header = {"format": FORMAT, "version": VERSION} | meta
    meta_array = np.array(json.dumps(to_jsonable(header)))
    return write_npz(path, {"obs_mean": obs_mean, "obs_std": obs_std, "meta": meta_array} | arrays)


def load_synthetic(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, dict]:
    """Read a dataset written by `save_synthetic`: (arrays, obs_mean, obs_std, meta). Anything else (a
    missing or unexpected array, a wrong dtype or shape, NaN/inf, a meta that is not this format's JSON)
    raises a `ValueError` naming the file."""
    path = Path(path)
    data = read_npz(path)
    missing = {"states", "obs_mean", "obs_std", "meta"} - set(data)
    if missing:
        raise ValueError(f"{path}: not a rewire synthetic dataset (missing {sorted(missing)})")
    extra = set(data) - {"obs_mean", "obs_std", "meta", *ARRAYS}
    if extra:
        raise ValueError(f"{path}: unexpected arrays {sorted(extra)} in a synthetic dataset")
    text = data.pop("meta")
    try:
        if text.dtype.kind != "U" or text.shape != ():
            raise ValueError("not a JSON string")
        meta = json.loads(str(text))
    except ValueError as err:
        raise ValueError(f"{path}: its 'meta' is not a JSON object ({err})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a rewire synthetic dataset (meta names no {FORMAT!r} format)")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path}: synthetic dataset version {meta.get('version')!r}; rewire reads {VERSION}")
    for name, value in data.items():
        if value.dtype.kind != "f":
            raise ValueError(f"{path}: array {name!r} has dtype {value.dtype}; a float array is needed")
        if not np.isfinite(value).all():
            raise ValueError(f"{path}: array {name!r} has NaN or infinite values")
    obs_mean, obs_std = data.pop("obs_mean"), data.pop("obs_std")
    if (
        data["states"].ndim != 2
        or obs_mean.shape != obs_std.shape
        or obs_mean.shape != data["states"].shape[1:]
    ):
        raise ValueError(
            f"{path}: normalisation constants {obs_mean.shape} do not fit states {data['states'].shape}"
        )
    if (obs_std <= 0).any():
        raise ValueError(f"{path}: 'obs_std' must be positive")
    return data, obs_mean, obs_std, meta
