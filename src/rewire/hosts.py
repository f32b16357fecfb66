"""Several processes (hosts) on JAX's own distributed runtime.

`initialize` starts `jax.distributed` from a coordinator address, or lets JAX detect SLURM and Open MPI;
then `jax.devices()` lists every process's devices and a mesh spans them all. Every process runs the same
program; only process 0 writes files (`is_writer`: the file format's writes, the metrics stream and
figures are skipped elsewhere), and the processes meet at a `barrier` where one needs what another wrote.
The processes are assumed to share the run directory's file system (as on a cluster).
"""

from __future__ import annotations

import os

import jax

# the launchers jax.distributed detects by itself, and their task counts (a job of one task stays alone)
DETECTED = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")


def initialize(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
):
    """Join the job: with `coordinator` ("HOST:PORT"), `num_processes` and `process_id`, or from the
    environment of a SLURM or Open MPI launch of more than one task; alone (nothing to do) otherwise. Call
    before anything starts JAX's backend (any computation; importing gymnax does): `rewire.cli.main` calls
    it first, from the command line's --coordinator, --num-processes and --process-id."""
    given = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(given) and not all(given):
        raise ValueError("give --coordinator, --num-processes and --process-id together")
    launched = any(
        os.environ.get(name, "1").isdigit() and int(os.environ[name]) > 1
        for name in DETECTED
        if name in os.environ
    )
    if jax.distributed.is_initialized() or (coordinator is None and not launched):
        return
    if num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"--process-id {process_id}: choose 0..{num_processes - 1}")
    jax.distributed.initialize(coordinator, num_processes, process_id)


def is_writer() -> bool:
    """Whether this process writes files: process 0 (the only one when there is one)."""
    return jax.process_index() == 0


def agree(text: str, size: int = 4096) -> str:
    """Process 0's `text`, in every process (a path each would otherwise choose by its own clock)."""
    if jax.process_count() == 1:
        return text
    import numpy as np
    from jax.experimental import multihost_utils

    data = text.encode()
    if len(data) > size:
        raise ValueError(f"{text[:60]}...: longer than {size} bytes")
    padded = np.zeros(size, np.uint8)  # the text, zero-padded to one shape for every process
    padded[: len(data)] = np.frombuffer(data, np.uint8)
    shared = np.asarray(multihost_utils.broadcast_one_to_all(padded))
    return bytes(shared).rstrip(b"\0").decode()


def barrier(name: str) -> None:
    """Wait until every process has reached the barrier `name` (no-op for one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def decide(flag: bool) -> bool:
    """Process 0's `flag`, in every process (a choice made by one clock, such as when to checkpoint)."""
    if jax.process_count() == 1:
        return flag
    import numpy as np
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.bool_(flag)))
