"""rewire's one file format: named NumPy arrays plus JSON metadata in a ZIP archive, written atomically.

Every checkpoint, state file, model and policy file rewire writes is one of these (README, "Reliability").
The archive holds `rewire.json` (format name and version, the file's kind, its metadata and the declared
dtype and shape of every array) and one `.npy` member per array. Nothing in it is executable: arrays are
parsed from their NumPy header with pickling off, metadata is JSON, and a file that is not in this format
(a pickle, a truncated archive, a member that disagrees with its declaration) is refused with a one-line
`StoreError` before any array is built. `numpy.load` also opens the file, as an NPZ archive.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import jax
import numpy as np
from flax import serialization

from rewire.hosts import is_writer

FORMAT = "rewire"
VERSION = 1
HEADER = "rewire.json"
ARRAY_KINDS = "biufU"  # bool, integers, floats, unicode text: nothing that needs pickling
NAME = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
MAX_EXPANSION = 1100  # deflate compresses at most about 1032:1; a member claiming more is a zip bomb
TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{16}\.tmp$")


class StoreError(ValueError):
    """A file that is not a valid rewire file of the expected kind; the message names the file."""


@dataclass(frozen=True)
class Stored:
    """What `read` returns: the file's kind, its JSON metadata and its arrays by name."""

    path: Path
    kind: str
    meta: dict
    arrays: dict[str, np.ndarray]

    def group(self, prefix: str) -> dict[str, np.ndarray]:
        """The arrays under `prefix/`, with the prefix removed from their names."""
        start = len(prefix) + 1
        return {k[start:]: v for k, v in self.arrays.items() if k.startswith(prefix + "/")}

    def only(self, *names: str) -> Stored:
        """Itself, if every array is one of `names` or lies under one of them (`name/...`); else a
        `StoreError` naming the unexpected arrays."""
        extra = sorted(k for k in self.arrays if not any(k == n or k.startswith(n + "/") for n in names))
        if extra:
            raise StoreError(f"{self.path}: unexpected arrays {extra[:3]} in a {self.kind!r} file")
        return self


# ----------------------------------------------------------------------------------------- atomic writes


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temporary_path(path: Path) -> Path:
    """A fresh hidden sibling of `path` for an atomic write (`remove_temporaries` matches the pattern)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")


def commit(tmp: Path, path: Path) -> Path:
    """Rename a fully written and fsynced temporary file into place, then fsync the directory, so that after
    a crash `path` holds either its old content or the new one, never a mix."""
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


@contextmanager
def atomic(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write `path` through: a temporary sibling, fsynced and renamed into place when the
    block ends, removed if it raises. In a job of several processes only process 0 writes (`rewire.hosts`):
    the others write into a sink."""
    if not is_writer():
        yield io.BytesIO()
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    commit(tmp, path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomic write of `data` to `path` (temporary file, fsync, rename)."""
    with atomic(path) as f:
        f.write(data)
    return Path(path)


def input_file(path: str | os.PathLike, what: str) -> Path:
    """`path` as a file to read, or a one-line error: a directory is not `what`, a missing file is missing."""
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"{path}: is a directory, not {what}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return path


def remove_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files an atomic write left behind when its process was killed."""
    directory = Path(directory)
    stale = [p for p in directory.iterdir() if TEMPORARY.match(p.name)] if directory.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


# -------------------------------------------------------------------------------------------- the format


def _checked_array(path: Path, name: str, value: Any, allow_nan: bool = False) -> np.ndarray:
    if not NAME.match(name) or ".." in name.split("/"):
        raise ValueError(f"{path}: array name {name!r} is not a plain path of letters, digits and _.-")
    array = np.asarray(value)
    if array.dtype.kind not in ARRAY_KINDS:
        raise ValueError(f"{path}: array {name!r} has dtype {array.dtype}, which rewire does not store")
    if not allow_nan and array.dtype.kind == "f" and np.isnan(array).any():
        raise ValueError(f"{path}: array {name!r} has NaN values, which rewire does not store")
    return array


def _member(name: str, compress: bool) -> zipfile.ZipInfo:
    # A fixed timestamp: the same arrays give the same bytes, whenever they are written.
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    return info


def _write_archive(path: Path, members: dict[str, bytes | np.ndarray], compress: bool) -> Path:
    """An atomic, byte-reproducible ZIP of JSON texts (bytes) and `.npy` arrays (written without pickle)."""
    with atomic(path) as f, zipfile.ZipFile(f, "w") as archive:
        for name, content in members.items():
            if isinstance(content, bytes):
                archive.writestr(_member(name, compress), content)
                continue
            with archive.open(_member(f"{name}.npy", compress), "w", force_zip64=True) as member:
                np.lib.format.write_array(member, content, allow_pickle=False)
    return path


def write(
    path: str | os.PathLike, kind: str, arrays: Mapping[str, Any], meta: Mapping[str, Any] | None = None
) -> Path:
    """Write a rewire file atomically: `arrays` by name, `meta` as JSON (see `runs.to_jsonable`)."""
    from rewire.runs import to_jsonable

    path = Path(path)
    checked = {name: _checked_array(path, name, value) for name, value in arrays.items()}
    header = {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "meta": to_jsonable(dict(meta or {})),
        "arrays": {name: {"dtype": a.dtype.str, "shape": list(a.shape)} for name, a in checked.items()},
    }
    return _write_archive(path, {HEADER: json.dumps(header, allow_nan=False).encode()} | checked, False)


def write_npz(path: str | os.PathLike, arrays: Mapping[str, Any], compress: bool = False) -> Path:
    """A plain NPZ file (what `numpy.load` reads, with `allow_pickle=False`), atomic and byte-reproducible:
    for data sets and exports that other tools read (NaN allowed: an export shows what is there)."""
    path = Path(path)
    checked = {name: _checked_array(path, name, value, allow_nan=True) for name, value in arrays.items()}
    return _write_archive(path, checked, compress)


def _read_member(path: Path, archive: zipfile.ZipFile, name: str, declared: dict | None = None) -> np.ndarray:
    """Parse one `.npy` member from its header (pickling off) and check it before anything is allocated:
    a dtype rewire reads, a byte count that matches the declared shape, and (for rewire files) the
    declaration in `rewire.json`."""
    where = f"{path}: array {name!r}"
    try:
        info = archive.getinfo(f"{name}.npy")
    except KeyError:
        raise StoreError(f"{where} is declared but missing from the archive (truncated?)") from None
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            read_header = HEADER_READERS[version]
            shape, fortran, dtype = read_header(member)
        except (ValueError, KeyError, OSError, EOFError) as err:
            raise StoreError(f"{where} is not a NumPy array ({err})") from None
        if dtype.kind not in ARRAY_KINDS or dtype.hasobject:
            raise StoreError(f"{where} has dtype {dtype}, which rewire does not read")
        if declared is not None and (list(shape) != declared["shape"] or dtype.str != declared.get("dtype")):
            raise StoreError(
                f"{where} is {dtype.str}{list(shape)} but declared {declared.get('dtype')}{declared['shape']}"
            )
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if info.file_size > MAX_EXPANSION * info.compress_size + 2**20:
            raise StoreError(f"{where} would expand {info.compress_size} bytes to {info.file_size}")
        if info.file_size - member.tell() != nbytes:
            raise StoreError(f"{where} holds {info.file_size - member.tell()} bytes, expected {nbytes}")
        try:
            data = member.read(nbytes)
        except (OSError, zipfile.BadZipFile, EOFError) as err:
            raise StoreError(f"{where} cannot be read ({err})") from None
    array = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
    if declared is not None and dtype.kind == "f" and np.isnan(array).any():
        raise StoreError(f"{where} has NaN values (rewire never stores NaN)")  # data sets say which row
    return array.copy()


def read(path: str | os.PathLike, kinds: str | Iterable[str] | None = None) -> Stored:
    """Read a rewire file, refusing anything else (and, with `kinds`, a file of another kind)."""
    path = input_file(path, "a rewire file")
    expected = [kinds] if isinstance(kinds, str) else (list(kinds) if kinds is not None else None)
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                header = json.loads(archive.read(HEADER).decode("utf-8"))
            except KeyError:
                raise StoreError(f"{path}: not a rewire file (no {HEADER} inside)") from None
            except (ValueError, UnicodeDecodeError) as err:
                raise StoreError(f"{path}: not a rewire file ({HEADER} is not JSON: {err})") from None
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise StoreError(f"{path}: not a rewire file ({HEADER} names no rewire format)")
            if header.get("version") != VERSION:
                raise StoreError(
                    f"{path}: rewire file format version {header.get('version')!r}; rewire reads {VERSION}"
                )
            kind, meta, declared = header.get("kind"), header.get("meta"), header.get("arrays")
            if not isinstance(kind, str) or not isinstance(meta, dict) or not isinstance(declared, dict):
                raise StoreError(f"{path}: {HEADER} lacks its kind, meta or arrays")
            if expected is not None and kind not in expected:
                raise StoreError(f"{path}: a {kind!r} file, expected {' or '.join(map(repr, expected))}")
            members = {n[:-4] for n in archive.namelist() if n != HEADER}
            if members - set(declared):
                raise StoreError(f"{path}: undeclared members {sorted(members - set(declared))[:3]}")
            if not all(isinstance(d, dict) and isinstance(d.get("shape"), list) for d in declared.values()):
                raise StoreError(f"{path}: {HEADER} declares an array without a shape")
            arrays = {name: _read_member(path, archive, name, d) for name, d in declared.items()}
    except zipfile.BadZipFile as err:
        raise StoreError(f"{path}: not a rewire file (not a ZIP archive: {err})") from None
    except (OSError, EOFError) as err:
        raise StoreError(f"{path}: cannot be read ({err})") from None
    return Stored(path, kind, meta, arrays)


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """A plain NPZ file's arrays by name, read as safely as a rewire file (no pickles, every header checked
    against its byte count before anything is allocated); anything else raises a `StoreError` naming it."""
    path = input_file(path, "an NPZ file")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not names or any(not n.endswith(".npy") for n in names):
                raise StoreError(f"{path}: not an NPZ file (members must be .npy arrays, found {names[:3]})")
            return {n[:-4]: _read_member(path, archive, n[:-4]) for n in names}
    except zipfile.BadZipFile as err:
        raise StoreError(f"{path}: not an NPZ file (not a ZIP archive: {err})") from None
    except (OSError, EOFError) as err:
        raise StoreError(f"{path}: cannot be read ({err})") from None


# ------------------------------------------------------------------------------------------------ pytrees


def is_key(x: Any) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _leaf_spec(node: Any) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype an array stored for template leaf `node` must have."""
    if is_key(node):
        spec = jax.eval_shape(jax.random.key_data, node)
        return tuple(spec.shape), np.dtype(spec.dtype)
    if hasattr(node, "shape") and hasattr(node, "dtype"):
        return tuple(node.shape), np.dtype(node.dtype)
    value = np.asarray(node)
    return value.shape, value.dtype


def named_leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A pytree's leaves (dicts, NamedTuples, flax structs, lists) by their path, `prefix/a/b/0`, as they are
    (jittable: nothing is converted)."""
    out: dict[str, Any] = {}

    def walk(node: Any, name: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{name}/{k}" if name else str(k))
        elif node is not None:
            out[name] = node

    walk(serialization.to_state_dict(tree), prefix)
    return out


def flatten(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """`named_leaves` as NumPy arrays, typed PRNG keys stored as their key data: what `write` takes."""
    return {
        name: np.asarray(jax.random.key_data(leaf) if is_key(leaf) else leaf)
        for name, leaf in named_leaves(tree, prefix).items()
    }


def restore(template: Any, arrays: Mapping[str, np.ndarray], source: str | os.PathLike) -> Any:
    """The pytree of `template`'s structure (arrays or `jax.ShapeDtypeStruct`s) with the leaves from
    `arrays`, named as `flatten` names them; a missing, extra, or differently shaped or typed array raises
    `StoreError` naming `source`."""
    used: set[str] = set()

    def fill(node: Any, name: str) -> Any:
        if isinstance(node, dict):
            return {k: fill(v, f"{name}/{k}" if name else str(k)) for k, v in node.items()}
        if node is None:
            return None
        if name not in arrays:
            raise StoreError(f"{source}: array {name!r} is missing")
        used.add(name)
        value, (shape, dtype) = arrays[name], _leaf_spec(node)
        if tuple(value.shape) != shape or value.dtype != dtype:
            raise StoreError(
                f"{source}: array {name!r} is {value.dtype}{list(value.shape)}, expected {dtype}{list(shape)}"
            )
        return jax.random.wrap_key_data(value) if is_key(node) else value

    filled = fill(serialization.to_state_dict(template), "")
    extra = set(arrays) - used
    if extra:
        raise StoreError(f"{source}: unexpected arrays {sorted(extra)[:3]}")
    return serialization.from_state_dict(template, filled)


def nested(arrays: Mapping[str, np.ndarray]) -> dict:
    """Arrays named `a/b/c` as nested dicts {"a": {"b": {"c": ...}}} (flax parameter trees)."""
    out: dict = {}
    for name, value in arrays.items():
        *parents, leaf = name.split("/")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out
