import os

# The suite's runs are tiny, so compiling dominates them: LLVM's cheapest code generation (set before JAX
# starts its backend, and inherited by every process a test starts) keeps `make test` within its budget.
# Every invariant compares runs made under the same flags.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import pytest  # noqa: E402

from rewire.jaxcache import enable_compilation_cache  # noqa: E402

# Under pytest-xdist (`make test` runs two workers) each worker, and every process its tests start, keeps
# its own compilation cache: JAX does not write cache entries atomically, so two processes must not write
# one entry at once.
_worker = os.environ.get("PYTEST_XDIST_WORKER")
if _worker:
    _base = os.environ.get("REWIRE_JAX_CACHE") or os.path.expanduser("~/.cache/rewire/jax")
    os.environ["REWIRE_JAX_CACHE"] = os.path.join(_base, _worker)
enable_compilation_cache(os.environ.get("REWIRE_JAX_CACHE"))


@pytest.fixture(scope="session")
def umaze_dataset():
    from rewire.data.generate import scripted_dataset
    from rewire.envs import make_spec, maze_id

    return scripted_dataset(make_spec(maze_id("umaze")), 60, seed=0)


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """An uninterrupted tiny run of each long-running command, as a subprocess (`rewire.bench.faults`),
    made once per session: under pytest-xdist the first worker to ask makes them while the others wait on a
    lock, then every worker reads them (tests copy a reference before changing anything in it)."""
    import fcntl
    import json
    from pathlib import Path

    from rewire.bench.faults import SYSTEMS, Reference, fingerprint, reference

    root = tmp_path_factory.getbasetemp()
    root = root.parent if _worker else root  # the workers' temporary folders share their parent
    index = root / "tiny-runs.json"
    with open(root / "tiny-runs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not index.exists():
            work = root / "tiny-runs"
            work.mkdir(exist_ok=True)
            made = {system: reference(system, work) for system in SYSTEMS}
            index.write_text(
                json.dumps({k: [str(r.directory), r.seconds, r.directory_at] for k, r in made.items()})
            )
        saved = json.loads(index.read_text())
    return {k: Reference(Path(d), fingerprint(Path(d)), seconds, at) for k, (d, seconds, at) in saved.items()}


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
