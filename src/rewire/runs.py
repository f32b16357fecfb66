"""Run directories: every result sits next to the config, seed and package versions that produced it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import platform
import re
import shutil
import tempfile
import time
import types
import typing
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import jax

from rewire.hosts import agree, barrier, is_writer
from rewire.store import input_file, write_bytes

RECORD = "config.json"
T = TypeVar("T")

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
    """{"path" (absolute), "sha256"}: which input file a result came from, and whether it changed since. A
    directory (a Minari dataset) hashes each file's relative path and bytes, in sorted order."""
    path = Path(path).resolve()
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as f:
            for chunk in iter(lambda f=f: f.read(1 << 20), b""):
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
    """Atomic JSON write (temporary file, fsync, rename)."""
    text = json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n"
    return write_bytes(path, text.encode())


def read_json(path: str | os.PathLike) -> Any:
    """A JSON file, or a one-line `ValueError` naming the file."""
    path = input_file(path, "a JSON file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise ValueError(f"{path}: not a JSON file ({err})") from None


def read_jsonl(path: str | os.PathLike) -> list:
    """A JSON Lines file (a metrics stream), or a one-line `ValueError` naming the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except ValueError as err:
            raise ValueError(f"{path}, line {number}: not valid JSON ({err})") from None
    return rows


# ------------------------------------------------------------------------------ configs from their JSON


def _from_json(kind: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if dataclasses.is_dataclass(kind):
        return config_from_json(kind, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _from_json(inner, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if len(args) == 2 and args[1] is Ellipsis else None
        kinds = [inner] * len(value) if inner is not None else list(args)
        return tuple(
            _from_json(k, v, f"{where}[{i}]") for i, (k, v) in enumerate(zip(kinds, value, strict=True))
        )
    if kind is float:
        if value in ("inf", "-inf"):
            return float(value)
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if kind in (int, bool, str):
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"{where}: expected {kind.__name__}, got {value!r}")
        return value
    return value  # dict, list, Any: as JSON gives them


def config_from_json(cls: type[T], data: Any, where: str | None = None) -> T:
    """Rebuild the (frozen, possibly nested) dataclass `cls` from the JSON that `to_jsonable` wrote: tuples,
    optional fields, floats written as "inf"/"-inf", nested configs. Missing fields take their defaults; an
    unknown field or a value of the wrong type raises a `ValueError` that names it."""
    where = where or cls.__name__
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}")
    return cls(**{k: _from_json(hints[k], v, f"{where}.{k}") for k, v in data.items()})


# --------------------------------------------------------------------------------------- run directories

STAGING = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clear_stale_stagings(root: Path) -> None:
    for entry in root.iterdir():
        match = STAGING.match(entry.name)
        if match and entry.is_dir() and not _alive(int(match["pid"])):
            shutil.rmtree(entry, ignore_errors=True)


def _staged(root: Path, name: str, fill: Callable[[Path], None], place: Callable[[Path], Path]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _clear_stale_stagings(root)
    staging = root / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        fill(staging)
        return place(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def create_run_dir(root: str | os.PathLike, prefix: str, fill: Callable[[Path], None]) -> Path:
    """Make `root/<prefix>-<YYYYmmdd-HHMMSS>` (suffixed if it exists) atomically: `fill(staging)` writes
    the run's first files into a hidden staging directory, which is then renamed into place. A refused
    input or a crash leaves no half-made run directory; stagings of dead processes are removed. In a job of
    several processes, process 0 makes it and every process returns its path."""
    root, stamp = Path(root), time.strftime("%Y%m%d-%H%M%S")

    def place(staging: Path) -> Path:
        i, path = 1, root / f"{prefix}-{stamp}"
        while True:
            try:
                os.rename(staging, path)  # fails if `path` exists and is not empty
                return path
            except OSError:
                if not path.exists():
                    raise
                path, i = root / f"{prefix}-{stamp}-{i}", i + 1

    made = _staged(root, f"{prefix}-{stamp}", fill, place) if is_writer() else None
    return Path(agree(str(made)))


def fresh_run_path(root: str | os.PathLike, prefix: str) -> Path:
    """`root/<prefix>-<YYYYmmdd-HHMMSS>`, suffixed until nothing is there: a name for `create_dir`."""
    root, stamp = Path(root), time.strftime("%Y%m%d-%H%M%S")
    path, i = root / f"{prefix}-{stamp}", 1
    while path.exists():
        path, i = root / f"{prefix}-{stamp}-{i}", i + 1
    return Path(agree(str(path)))  # in a job of several processes, process 0's choice


def create_dir(path: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """Make the directory `path` atomically, as `create_run_dir` does, at a name the caller chose; an
    existing non-empty `path` is refused (nothing is overwritten)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"{path}: exists and is not an empty directory")

    def place(staging: Path) -> Path:
        try:
            os.rename(staging, path)
        except OSError:
            raise FileExistsError(f"{path}: exists and is not an empty directory") from None
        return path

    return _staged(path.parent, path.name, fill, place)


def record_run(run_dir: str | os.PathLike, config: Any, seed: int | None, **extra: Any) -> None:
    """Write config.json (config, seed, versions, and any `extra` fields) into the run directory."""
    record = {"config": config, "seed": seed, "versions": versions()} | extra
    write_json(Path(run_dir) / RECORD, record)


def start_run_dir(
    directory: str | os.PathLike | None,
    prefix: str,
    config: Any,
    seed: int | None,
    fill: Callable[[Path], None] | None = None,
    **extra: Any,
) -> Path:
    """The run directory of a library entry (`fit`): a new temporary one for None; else `directory`, made
    atomically with its config.json (and whatever `fill(staging)` writes besides); or, if it already holds
    a run of the same config, seed and `extra`, that run (the run loop then resumes its checkpoint). A
    different run there is refused."""
    if directory is None:
        if jax.process_count() > 1:
            raise ValueError("a job of several processes needs a run directory they share (out=...)")
        directory = tempfile.mkdtemp(prefix=f"rewire-{prefix}-")
    directory = Path(directory)
    barrier("run directory: look")  # every process sees the directory as it was before anyone made it
    exists = (directory / RECORD).exists()
    barrier("run directory: looked")
    if exists:
        record = read_run_record(directory)
        want = to_jsonable({"config": config, "seed": seed} | extra)
        if {k: record.get(k) for k in want} != want:
            raise ValueError(f"{directory}: holds a run of another config or seed; not resumed")
        return directory

    def first_files(staging: Path) -> None:
        if fill is not None:
            fill(staging)
        if not (staging / RECORD).exists():
            record_run(staging, config, seed, **extra)

    if is_writer():
        directory = create_dir(directory, first_files)
    barrier("run directory: made")
    return directory


def read_run_record(run_dir: str | os.PathLike) -> dict:
    """A run directory's config.json, or a one-line error saying the directory is not a run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    record = read_json(run_dir / RECORD)
    if not isinstance(record, dict) or "config" not in record:
        raise ValueError(f"{run_dir / RECORD}: not a rewire run record (no config)")
    return record
