"""Kill -9 anywhere loses nothing: each long-running command (calql train, hades distill, amf run, unlearn
simulate, edit train) is started `--kills` times at tiny size, SIGKILLed at a moment drawn uniformly over the
run, resumed with `--resume`, and its files compared with an uninterrupted run of the same seed
(`rewire.bench.faults`). Writes {system: {"kills": n, "identical": n, ...}}.

    .venv/bin/python benchmarks/kill_resume.py --kills 20 --json runs/kill_resume.json
"""

from __future__ import annotations

import argparse
import json

from rewire.bench.faults import SYSTEMS, kill_resume_benchmark
from rewire.jaxcache import enable_compilation_cache
from rewire.runs import versions, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="kills per system")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated subset")
    parser.add_argument("--seed", type=int, default=0, help="draws the kill moments")
    parser.add_argument("--json", required=True, help="output file")
    args = parser.parse_args()
    enable_compilation_cache()
    result = kill_resume_benchmark(args.kills, args.systems.split(","), args.seed)
    write_json(args.json, result | {"config": vars(args), "versions": versions()})
    print(json.dumps({k: {"kills": v["kills"], "identical": v["identical"]} for k, v in result.items()}))


if __name__ == "__main__":
    main()
