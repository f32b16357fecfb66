"""The search for a Cal-QL dip setting on MuJoCo PointMaze: the mujoco preset, one lever changed at a time.

Each variant runs `rewire.bench.calql.run_calql_benchmark` (the same data, paired seeds and metrics as
`rewire bench calql --env PointMaze_Medium-v3`) and its full result is written to OUT/<variant>.json as soon
as it finishes, so a killed search keeps what it measured; a variant whose file exists is skipped. A summary
line per variant (means of dip and regret, paired p) is printed and collected in OUT/summary.json.

    .venv/bin/python benchmarks/calql_dip_search.py --seeds 8 --seed 0 --out runs/dip-search mixing0 utd4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from rewire.bench.calql import run_calql_benchmark
from rewire.calql.presets import PRESETS
from rewire.runs import write_json

BASE = PRESETS["mujoco"]
# The levers README "Cal-QL" lists for the dip: no offline data in online batches (WSRL's control, which
# should deepen any dip), more updates per online step, and longer offline training.
VARIANTS: dict[str, dict] = {
    "base": {},
    "mixing0": {"mixing": 0.0},
    "utd4": {"utd": 4},
    "offline20k": {"offline_steps": 20_000},
    "mixing0_utd4": {"mixing": 0.0, "utd": 4},
}
ENV_ID = "PointMaze_Medium-v3"


def summary_line(name: str, result: dict) -> dict:
    methods, paired = result["methods"], result["paired"]
    row = {"variant": name, "overrides": VARIANTS[name], "seconds": result["seconds"]}
    for method, m in methods.items():
        for key in ("dip_depth", "cumulative_regret", "success_at_switch", "q_pi_minus_mc_at_switch"):
            row[f"{method}_{key}"] = m["intervals"][key]["mean"]
    row["p_regret"] = paired["cumulative_regret"]["p"]
    row["p_dip"] = paired["dip_depth"]["p"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+", choices=sorted(VARIANTS))
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.variants:
        path = args.out / f"{name}.json"
        if not path.exists():
            result, _ = run_calql_benchmark(
                "mujoco", args.seeds, args.seed, env=ENV_ID, overrides=VARIANTS[name], quiet=True
            )
            result["variant"] = {"name": name, "overrides": VARIANTS[name], "base": dataclasses.asdict(BASE)}
            write_json(path, result)
        rows.append(summary_line(name, json.loads(path.read_text())))
        print(json.dumps(rows[-1]), flush=True)
    write_json(args.out / "summary.json", {"seeds": args.seeds, "seed": args.seed, "rows": rows})


if __name__ == "__main__":
    main()
