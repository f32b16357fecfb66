"""Cal-QL's online phase: environment steps per second of the host loop (a round trip per chunk) and of the
device loop (one jitted scan up to each evaluation), measured in the same run on the same agents and data
(`rewire.bench.calql.online_loops`), at two sizes: the benchmark's (CQL and Cal-QL x 3 seeds, 2x64, batch
128, UTD 2) and a small one (one agent, 2x16, batch 32, UTD 1) where the updates no longer dominate.

    .venv/bin/python benchmarks/online_loops.py --json runs/online-loops.json
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from rewire.bench import calql as bench
from rewire.calql import cql
from rewire.calql.presets import QUICK
from rewire.data.generate import scripted_dataset
from rewire.envs import make_spec
from rewire.jaxcache import enable_compilation_cache
from rewire.runs import versions, write_json

# name -> (config, chunks timed): the small size runs 50x faster, so it is timed over more chunks
SIZES = {
    "benchmark": (QUICK, 40),
    "small": (
        dataclasses.replace(
            QUICK,
            methods=("calql",),
            seeds=1,
            utd=1,
            agent=cql.CQLConfig(
                actor_hidden=(16, 16), critic_hidden=(16, 16), batch_size=32, cql_n_actions=2
            ),
        ),
        400,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    enable_compilation_cache()
    spec = make_spec(QUICK.env_id)
    data = scripted_dataset(spec, bench.DATASET_EPISODES, args.seed)
    out = {"versions": versions(), "seed": args.seed, "sizes": {}}
    for name, (config, chunks) in SIZES.items():
        config = dataclasses.replace(config, seed=args.seed)
        out["sizes"][name] = {"config": config, **bench.online_loops(config, data, chunks=chunks)}
        row = out["sizes"][name]
        print(f"{name}: host {row['host_steps_per_s']:.0f}, device {row['device_steps_per_s']:.0f} steps/s")
    write_json(args.json, out)


if __name__ == "__main__":
    main()
