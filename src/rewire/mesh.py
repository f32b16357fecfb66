"""Spreading a batched axis over devices: one 1-D mesh, `NamedSharding` on the leading axis.

Every system has one leading batched axis (Cal-QL's agents, the HaDES population, AMF's runs, PPO's
environments, unlearning's learner seeds). `place` puts the arrays that carry it on a mesh over the chosen
devices, split along that axis, and `replicate` puts whole copies of what every shard reads; jit then runs
each device's share of the vmapped computation. The mesh's axis type is `Auto` (sharding propagated by the
compiler), stated here because `jax.make_mesh` defaults to `Explicit` axes since jax 0.7.

`devices`: None or "all" takes every local device, as many as divide the axis (the largest such count;
the README says so); an integer N takes the first N and refuses an axis that N does not divide.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from rewire.store import is_key

AXIS = "batch"
Devices = int | str | None


def device_count(devices: Devices, length: int, what: str) -> int:
    """How many devices an axis of `length` (named `what` in errors) is split over. In a job of several
    processes every process must hold a share, so the count is a multiple of the process count."""
    available, processes = len(jax.devices()), jax.process_count()
    fits = [
        n
        for n in range(1, available + 1)
        if length % n == 0 and n % processes == 0 and n // processes <= jax.local_device_count()
    ]
    if devices is None or devices == "all":
        if not fits:
            raise ValueError(f"{what} ({length}) cannot be split evenly over the job's {processes} processes")
        return max(fits)
    if isinstance(devices, str):
        if not devices.isdigit():
            raise ValueError(f"devices {devices!r}: give a number of devices or 'all'")
        devices = int(devices)
    if not 1 <= devices <= available:
        where = "this process has" if processes == 1 else "this job has"
        raise ValueError(f"devices {devices}: {where} {available} device(s)")
    if devices not in fits:
        raise ValueError(f"{what} ({length}) do not divide over {devices} devices; choose one of {fits}")
    return devices


def batch_mesh(devices: Devices, length: int, what: str) -> Mesh:
    """A 1-D mesh (axis `AXIS`, Auto) over the devices an axis of `length` is split over: the first ones of
    each process, as many from each."""
    n = device_count(devices, length, what)
    each = n // jax.process_count()
    chosen: list[jax.Device] = []
    for p in range(jax.process_count()):
        chosen += [d for d in jax.devices() if d.process_index == p][:each]
    return jax.make_mesh((n,), (AXIS,), axis_types=(AxisType.Auto,), devices=chosen)


def _put(leaf: Any, sharding: NamedSharding) -> Any:
    """`leaf` with `sharding`. A mesh spanning several processes is filled from the value every process
    holds (each takes its share), since `device_put` only reaches this process's devices."""
    if jax.process_count() == 1 or (isinstance(leaf, jax.Array) and not leaf.is_fully_addressable):
        return jax.device_put(leaf, sharding)
    keys = is_key(leaf)
    value = np.asarray(jax.random.key_data(leaf) if keys else leaf)
    out = jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])
    return jax.random.wrap_key_data(out, impl=jax.random.key_impl(leaf)) if keys else out


def place(tree: Any, mesh: Mesh) -> Any:
    """`tree` on `mesh`, every leaf split along its leading (batched) axis."""
    split = NamedSharding(mesh, PartitionSpec(AXIS))
    return jax.tree.map(lambda leaf: _put(leaf, split), tree)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """`tree` whole on every device of `mesh` (data every shard reads: an offline buffer, a probe set)."""
    whole = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda leaf: _put(leaf, whole), tree)


def whole(tree: Any, mesh: Mesh | None) -> Any:
    """Inside jit: every leaf of `tree` whole on every device (what the host reads back, which in a job of
    several processes must not stay split across them); no-op without a mesh."""
    if mesh is None or mesh.size == 1:
        return tree
    copies = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda leaf: jax.lax.with_sharding_constraint(leaf, copies), tree)


def constrain(tree: Any, mesh: Mesh | None) -> Any:
    """Inside jit: split every leaf of `tree` along its leading axis (a population made inside a jitted
    generation); no-op without a mesh."""
    if mesh is None or mesh.size == 1:
        return tree
    split = NamedSharding(mesh, PartitionSpec(AXIS))
    return jax.tree.map(lambda leaf: jax.lax.with_sharding_constraint(leaf, split), tree)


def fetch(tree: Any) -> Any:
    """Every leaf of `tree` as a NumPy array on the host (typed PRNG keys as their key data). A leaf split
    across the processes of a job is gathered from all of them: a collective, so every process calls
    `fetch` at the same point of the same program."""

    tree = jax.tree.map(lambda leaf: jax.random.key_data(leaf) if is_key(leaf) else leaf, tree)
    split = [x for x in jax.tree.leaves(tree) if isinstance(x, jax.Array) and not x.is_fully_addressable]
    if split:
        from jax.experimental import multihost_utils

        tree = multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)
