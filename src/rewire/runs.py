"""Run directories: every result sits next to the config, seed and package versions that produced it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("rewire", "jax", "jaxlib", "flax", "optax", "chex", "evosax", "gymnax", "gymnasium", "numpy")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def file_record(path: str | os.PathLike) -> dict[str, str]:
    """{"path" (absolute), "sha256"}: which input file a result came from, and whether it changed since."""
    path = Path(path).resolve()
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return {"path": str(path), "sha256": digest.hexdigest()}


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        # JSON has no inf/nan: infinities become the strings "inf"/"-inf", an undefined value null.
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Atomic JSON write (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def new_run_dir(root: str | os.PathLike, prefix: str) -> Path:
    """`root/<prefix>-<YYYYmmdd-HHMMSS>` (suffixed if it exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{prefix}-{stamp}"
    i = 1
    while path.exists():
        path = Path(root) / f"{prefix}-{stamp}-{i}"
        i += 1
    path.mkdir(parents=True)
    return path


def record_run(run_dir: str | os.PathLike, config: Any, seed: int) -> None:
    """Write config.json (config, seed, versions) into the run directory."""
    write_json(Path(run_dir) / "config.json", {"config": config, "seed": seed, "versions": versions()})
