"""Every system at accelerator scale, in one process, into one JSON: the device, each system's wall time and
throughput, and its CPU benchmark's own result (the same criteria, at the larger batched axes below).

`benchmarks/gpu_check.sh` runs it (after `pip install -e ".[cuda]"`); `--scale smoke` runs tiny settings,
to check the script on a CPU. The gpu settings are sized to finish within 8 minutes on one GPU.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from rewire.jaxcache import enable_compilation_cache
from rewire.runs import versions, write_json

# system -> scale -> the benchmark function's arguments
SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "calql": {"gpu": {"preset": "quick", "seeds": 16}, "smoke": {"preset": "demo", "seeds": 1}},
    "hades": {"gpu": {"popsize": 1024}, "smoke": {"popsize": 8, "generations": 2}},
    "amf": {"gpu": {"seeds": 32}, "smoke": {"seeds": 1, "tasks": 4, "budget": 4, "models": ("gp",)}},
    "unlearn": {
        "gpu": {"seeds": 64},
        "smoke": {"seeds": 1, "episodes": (100, 300), "rhos": (0.5,), "deletions": 2},
    },
    "edit": {"gpu": {"steps": 200_000}, "smoke": {"steps": 2_000}},
}


def bench(system: str) -> Callable[..., Any]:
    if system == "calql":
        from rewire.bench.calql import run_calql_benchmark

        return lambda **kw: run_calql_benchmark(**kw)[0]
    if system == "hades":
        from rewire.bench.hades import run_hades_benchmark

        return run_hades_benchmark
    if system == "amf":
        from rewire.bench.amf import run_amf_benchmark

        return run_amf_benchmark
    if system == "unlearn":
        from rewire.bench.unlearn import run_unlearn_benchmark

        return run_unlearn_benchmark
    from rewire.bench.edit import run_edit_benchmark

    return run_edit_benchmark


def throughput(system: str, result: dict, wall_s: float) -> dict[str, float]:
    """The rates each benchmark measures itself (compilation excluded), and the system's work per wall
    second where the result states the work."""
    if system == "calql":
        return (
            {"online_steps_per_s": result["online_steps_per_s"]}
            | result["online_loops"]
            | {"updates_per_s": next(iter(result["methods"].values()))["updates_per_s"]}
        )
    if system == "hades":
        per_generation = result["env_steps_per_generation"]
        return {
            "generations_per_s": result["generations_per_s"],
            "env_steps_per_s": result["generations_per_s"] * per_generation,
        }
    return {"wall_s": wall_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="Write the check's result here.")
    parser.add_argument("--scale", choices=("gpu", "smoke"), default="gpu")
    parser.add_argument("--systems", default=",".join(SETTINGS), help="Comma-separated subset.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    enable_compilation_cache()
    device = jax.devices()[0]
    out: dict[str, Any] = {
        "device": {"platform": device.platform, "kind": device.device_kind, "count": jax.device_count()},
        "scale": args.scale,
        "seed": args.seed,
        "versions": versions(),
        "systems": {},
    }
    start = time.perf_counter()
    for system in args.systems.split(","):
        if system not in SETTINGS:
            parser.error(f"unknown system {system!r}; choose from {', '.join(SETTINGS)}")
        settings = SETTINGS[system][args.scale]
        began = time.perf_counter()
        result = bench(system)(**settings, seed=args.seed, quiet=True)
        wall = time.perf_counter() - began
        out["systems"][system] = {
            "settings": settings,
            "wall_s": wall,
            "throughput": throughput(system, result, wall),
            "result": result,
        }
        out["total_s"] = time.perf_counter() - start
        write_json(args.json, out)  # after each system, so a run cut short keeps what it measured
        print(f"{system}: {wall:.0f} s")
    print(f"total {out['total_s']:.0f} s -> {args.json}")


if __name__ == "__main__":
    main()
