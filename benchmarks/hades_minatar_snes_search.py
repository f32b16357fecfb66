"""The SNES settings of HaDES's MinAtar cpu preset (README "HaDES"): short HaDES runs on Breakout-MinAtar,
base seed 0 only, one per (temperature, sigma), or one per named change to the preset (`--variants`), each
scored by the median return of 10 fresh policies trained on the ES mean, with the population's mean fitness
per block of 10 generations.

    .venv/bin/python benchmarks/hades_minatar_snes_search.py --generations 80 --json OUT.json
    .venv/bin/python benchmarks/hades_minatar_snes_search.py --generations 100 \
        --variants size32,learned,evolve_lr,preset --json OUT.json
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from rewire.es import ESConfig
from rewire.hades.core import HadesConfig, default_config
from rewire.hades.run import build_hades
from rewire.runs import versions, write_json

SETTINGS = [(20.0, 0.5), (5.0, 0.5), (2.0, 0.5), (5.0, 0.2), (5.0, 0.1), (10.0, 0.2), (2.0, 0.2)]

# Changes to the cpu preset that were tried against Breakout's plateau (README "HaDES").
VARIANTS = {
    "preset": lambda c: c,
    "size32": lambda c: replace(c, size=32),
    "learned": lambda c: replace(c, labels="learned"),
    "evolve_lr": lambda c: replace(c, evolve_lr=True),
    # HaDES-F: one fixed inner init, with as many envs as R's inits x envs (equal steps per generation)
    "fixed_init": lambda c: replace(c, variant="F", num_envs=c.num_envs * c.inits),
    # smaller SNES noise than the search's smallest (0.1, the preset's)
    "sigma0.05": lambda c: replace(c, es=replace(c.es, sigma=0.05)),
    "sigma0.03": lambda c: replace(c, es=replace(c.es, sigma=0.03)),
    # the evolved states start at random-policy observations instead of the mean observation
    "observed": lambda c: replace(c, state_init="observed"),
    # evolve only the pixels a random policy changes (123-132 of 400), the others held at 0
    "varying": lambda c: replace(c, state_features="varying"),
    # varying features together with the two seed-0 changes that had scored above the preset
    "varying_sigma0.05": lambda c: replace(c, state_features="varying", es=replace(c.es, sigma=0.05)),
    "varying_evolve_lr": lambda c: replace(c, state_features="varying", evolve_lr=True),
    # HaDES-F on the varying features only
    "fixed_init_varying": lambda c: replace(
        c, variant="F", num_envs=c.num_envs * c.inits, state_features="varying"
    ),
    # varying features under OpenES (antithetic, Adam) instead of SNES
    "varying_openes": lambda c: replace(
        c, state_features="varying", es=ESConfig("openes", popsize=c.es.popsize, sigma=c.es.sigma, lr=0.05)
    ),
    # varying features with 48 pairs (16 per action)
    "varying_size48": lambda c: replace(c, state_features="varying", size=48),
    # varying features, 1 env per rollout and 4x the generations: the same environment steps
    "varying_envs1": lambda c: replace(
        c, state_features="varying", num_envs=c.num_envs // 4, generations=4 * c.generations
    ),
    # 4x the population for a quarter of the generations: the same environment steps
    "population256": lambda c: replace(
        c, generations=c.generations // 4, es=replace(c.es, popsize=4 * c.es.popsize)
    ),
}


def score(config: HadesConfig, seed: int) -> dict:
    start = time.perf_counter()
    run = build_hades(config, seed)
    run.loop(None, quiet=True).run()
    returns = run.evaluate_mean()["returns"]
    history = run.evolution.history["score_mean"]
    fixed = {}
    if config.variant == "F":
        fixed = {"fixed_init_median": float(np.median(run.evaluate_fixed_init()["returns"]))}
    return {
        "fresh_median": float(np.median(returns)),
        **fixed,
        "population_mean_per_10_generations": [
            float(np.mean(history[i : i + 10])) for i in range(0, len(history), 10)
        ],
        "seconds": time.perf_counter() - start,
        "config": config,
    }


def search(env: str, generations: int, seed: int) -> list[dict]:
    rows = []
    for temperature, sigma in SETTINGS:
        config = default_config(env, "cpu", generations=generations)
        config = replace(config, es=replace(config.es, temperature=temperature, sigma=sigma))
        rows.append({"temperature": temperature, "sigma": sigma, **score(config, seed)})
        print(f"T {temperature:g} sigma {sigma:g}: fresh median {rows[-1]['fresh_median']:.2f}", flush=True)
    return rows


def variants(env: str, names: list[str], generations: int, seed: int) -> list[dict]:
    rows = []
    for name in names:
        config = VARIANTS[name](default_config(env, "cpu", generations=generations))
        rows.append({"variant": name, **score(config, seed)})
        fixed = rows[-1].get("fixed_init_median")
        extra = "" if fixed is None else f", fixed-init median {fixed:.2f}"
        print(f"{name}: fresh median {rows[-1]['fresh_median']:.2f}{extra}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="Breakout-MinAtar")
    parser.add_argument("--generations", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variants", help=f"comma-separated, from {sorted(VARIANTS)}")
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    if args.variants:
        names = args.variants.split(",")
        unknown = sorted(set(names) - set(VARIANTS))
        if unknown:
            parser.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
        rows = variants(args.env, names, args.generations, args.seed)
    else:
        rows = search(args.env, args.generations, args.seed)
    write_json(args.json, {"env": args.env, "seed": args.seed, "versions": versions(), "runs": rows})


if __name__ == "__main__":
    main()
