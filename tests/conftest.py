import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

# The suite's runs are tiny, so compiling dominates them: LLVM's cheapest code generation, and XLA:CPU's
# older loop emitters instead of its MLIR fusion emitters (a third less compile time on Cal-QL's jit test),
# set before JAX starts its backend and inherited by every process a test starts. Every invariant compares
# runs made under the same flags. The older emitters do not compile a computation to the same bits in two
# different programs, so the tests marked `fusion_emitters` (one program against another, bit for bit) run
# in a pytest process of their own that keeps XLA's fusion emitters.
FUSION_EMITTERS = "REWIRE_TEST_FUSION_EMITTERS"
OLDER_EMITTERS = "--xla_cpu_use_fusion_emitters=false"
FAST_COMPILE = "--xla_backend_optimization_level=0"
if not os.environ.get(FUSION_EMITTERS):
    FAST_COMPILE += " " + OLDER_EMITTERS
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + FAST_COMPILE).strip()

# One compilation cache for the whole session, shared by both pytest-xdist workers and by every process their
# tests start (most tests run the same tiny programs in-process and in CLI subprocesses). JAX writes cache
# entries atomically only when the cache has a size limit: it then holds a file lock (the `filelock` package)
# around every read and write. The limit is set in the environment so that subprocesses inherit it.
os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(16 << 30)

from rewire.bench.faults import SYSTEMS, Reference, fingerprint, reference  # noqa: E402
from rewire.jaxcache import enable_compilation_cache  # noqa: E402

enable_compilation_cache(os.environ.get("REWIRE_JAX_CACHE"))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """A `fusion_emitters` test runs again in its own pytest process, under XLA's fusion emitters."""
    if pyfuncitem.get_closest_marker("fusion_emitters") is None or os.environ.get(FUSION_EMITTERS):
        return None
    import subprocess
    import sys

    flags = os.environ["XLA_FLAGS"].replace(OLDER_EMITTERS, "").strip()
    env = os.environ | {FUSION_EMITTERS: "1", "XLA_FLAGS": flags}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider"]
    proc = subprocess.run(
        [*command, "-m", "fusion_emitters", pyfuncitem.nodeid],
        capture_output=True,
        text=True,
        env=env,
        cwd=pyfuncitem.config.rootpath,
    )
    if proc.returncode != 0:
        pytest.fail(f"under the fusion emitters:\n{proc.stdout[-4000:]}{proc.stderr[-2000:]}", pytrace=False)
    return True


@pytest.fixture(scope="session")
def umaze_dataset():
    from rewire.data.generate import scripted_dataset
    from rewire.envs import make_spec, maze_id

    return scripted_dataset(make_spec(maze_id("umaze")), 60, seed=0)


class TinyRuns(Mapping):
    """An uninterrupted tiny run of each long-running command, as a subprocess (`rewire.bench.faults`), made
    once per session when a test first asks for it: under pytest-xdist the first worker to ask for a system
    makes its run while a worker asking for the same system waits on that system's lock, so the two workers
    make different systems' runs at once (tests copy a reference before changing anything in it)."""

    def __init__(self, root: Path):
        self.root = root
        self.read: dict[str, Reference] = {}  # this worker's reads: each reference is fingerprinted once

    def __getitem__(self, system: str) -> Reference:
        if system not in SYSTEMS:
            raise KeyError(system)
        if system in self.read:
            return self.read[system]
        index = self.root / f"tiny-run-{system}.json"
        with open(self.root / f"tiny-run-{system}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not index.exists():
                work = self.root / "tiny-runs"
                work.mkdir(exist_ok=True)
                made = reference(system, work)
                index.write_text(json.dumps([str(made.directory), made.seconds, made.directory_at]))
        directory, seconds, at = json.loads(index.read_text())
        self.read[system] = Reference(Path(directory), fingerprint(Path(directory)), seconds, at)
        return self.read[system]

    def __iter__(self) -> Iterator[str]:
        return iter(SYSTEMS)

    def __len__(self) -> int:
        return len(SYSTEMS)


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory) -> TinyRuns:
    root = tmp_path_factory.getbasetemp()
    return TinyRuns(root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root)  # the workers share it


@pytest.fixture
def said():
    """A CLI result's output on one line (rich wraps long lines)."""
    return lambda res: " ".join(res.output.split())


def read_events(folder) -> dict[str, list[tuple[int, float]]]:
    """The scalars of every TensorBoard event file in `folder` (TFRecord framing: length, crc, data, crc)."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(folder.iterdir()):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at : at + 8])
            event = Event.FromString(data[at + 12 : at + 12 + length])
            at += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out
