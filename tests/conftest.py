import os

import pytest

from rewire.jaxcache import enable_compilation_cache

enable_compilation_cache(os.environ.get("REWIRE_JAX_CACHE"))


@pytest.fixture(scope="session")
def umaze_dataset():
    from rewire.data.generate import scripted_dataset
    from rewire.envs import make_spec, maze_id

    return scripted_dataset(make_spec(maze_id("umaze")), 60, seed=0)


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """An uninterrupted tiny run of each long-running command, as a subprocess (`rewire.bench.faults`)."""
    from rewire.bench.faults import SYSTEMS, reference

    work = tmp_path_factory.mktemp("tiny-runs")
    return {system: reference(system, work) for system in SYSTEMS}


@pytest.fixture
def said():
    """A CLI result's output on one line (rich wraps long lines)."""
    return lambda res: " ".join(res.output.split())
