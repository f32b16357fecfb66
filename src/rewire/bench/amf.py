"""`rewire bench amf`: AMF against uniform round-robin and random task selection, for the GP and the NN
model, under the mismatch and the control pretraining settings; plus the plots the demo and bench share."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from rewire.amf.core import SELECTORS, AMFConfig
from rewire.amf.run import THRESHOLD, AMFRun
from rewire.loop import Loop
from rewire.mesh import Devices
from rewire.runs import versions

BENCH_SETTINGS = ("mismatch", "control")
MAX_RATIO = 0.6  # the target: AMF reaches 0.9 with at most 60% of the demos uniform needs


def criteria(settings: dict, models: list[str]) -> dict:
    """Per model: demos-to-0.9 ratio AMF / uniform under mismatch (pass: <= 0.6), and on the control
    whether AMF is never below uniform (median success at every budget) and crosses 0.9 no later."""
    out = {}
    key = f"demos_to_{THRESHOLD}"
    for model in models:
        mis, ctl = settings["mismatch"][model], settings["control"][model]
        amf_n, uni_n = mis["amf"][key], mis["uniform"][key]
        ratio = amf_n / uni_n if amf_n is not None and uni_n is not None else None
        gaps = np.subtract(ctl["amf"]["success_median"], ctl["uniform"]["success_median"])
        crosses = ctl["amf"][key] is not None and (
            ctl["uniform"][key] is None or ctl["amf"][key] <= ctl["uniform"][key]
        )
        out[model] = {
            "mismatch_ratio": ratio,
            "mismatch_passed": ratio is not None and ratio <= MAX_RATIO,
            "control_min_gap": float(gaps.min()),
            "control_not_worse": bool(gaps.min() >= 0.0 and crosses),
        }
    return out


def run_amf_benchmark(
    env: str = "reach2d",
    tasks: int = 24,
    seeds: int = 5,
    seed: int = 0,
    budget: int = 32,
    batch: int = 2,
    proxies: str = "rollout",
    models: tuple[str, ...] = ("gp", "nn"),
    quiet: bool = False,
    out: Path | None = None,
    devices: Devices = None,
) -> dict:
    """Every model x setting x seed x selector, one vmapped run per model; `out/amf-<model>/` keeps each
    run's checkpoints and metrics."""
    seed_list = [seed + i for i in range(seeds)]
    configs = {
        m: AMFConfig(env=env, tasks=tasks, model=m, budget=budget, batch=batch, proxies=proxies)
        for m in models
    }
    result: dict = {
        "config": {"seeds": seed_list, "models": configs},
        "versions": versions(),
        "settings": {s: {} for s in BENCH_SETTINGS},
        "wall_s": {},
    }
    for model, config in configs.items():
        start = time.perf_counter()
        run = AMFRun(config, list(BENCH_SETTINGS), seed_list, list(SELECTORS), devices=devices)
        Loop(run, None if out is None else Path(out) / f"amf-{model}", quiet=quiet, description="AMF").run()
        for setting, by_selector in run.results().items():
            result["settings"][setting][model] = by_selector
        result["wall_s"][model] = time.perf_counter() - start
    result["criteria"] = criteria(result["settings"], list(models))
    return result
