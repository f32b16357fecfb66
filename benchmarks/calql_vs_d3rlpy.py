"""Throughput of rewire's Cal-QL against d3rlpy's CalQL (PyTorch), measured in the same run.

Both sides train one agent from the same U-maze dataset with equal networks (two critics, a tanh-Gaussian
actor), batch size, CQL sampled actions and update count, each in its own process pinned to the same CPU
cores. d3rlpy pins gymnasium 1.0.0, so it lives in its own virtual environment (.venv-d3rlpy, created on
first use with torch==2.13.0 installed first). Updates/s exclude set-up and compilation: each side runs a
warm-up block first. Two sizes: the benchmark's (2x64, batch 128, 4 samples) and the paper's (2x256,
batch 256, 10 samples). d3rlpy is timed twice, as it is and with `compile_graph=True`, its fastest mode;
d3rlpy 2.8.1 applies that mode (CUDA graphs and torch.compile) only on CUDA devices (`QLearningAlgoBase.
compiled`), so on a CPU both runs time the same code, and the JSON records whether it applied.

    .venv/bin/python benchmarks/calql_vs_d3rlpy.py --json runs/peer-calql.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEER_VENV = ROOT / ".venv-d3rlpy"
SIZES = {
    "benchmark": {"width": 64, "batch": 128, "n_actions": 4},
    "paper": {"width": 256, "batch": 256, "n_actions": 10},
}


def ensure_peer_venv() -> Path:
    python = PEER_VENV / "bin" / "python"
    if not python.exists() or subprocess.run([python, "-c", "import d3rlpy"], capture_output=True).returncode:
        print(f"creating {PEER_VENV} (torch==2.13.0, then d3rlpy)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", PEER_VENV], check=True)
        pip = [python, "-m", "pip", "install", "-q"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, "d3rlpy"], check=True)
    return python


def worker_rewire(args: argparse.Namespace) -> dict:
    import jax

    from rewire.buffer import buffer_from_transitions, buffer_init
    from rewire.calql import cql
    from rewire.data.episodes import episodes_to_transitions, load_dataset
    from rewire.envs import make_spec
    from rewire.jaxcache import enable_compilation_cache

    enable_compilation_cache()
    spec = make_spec("PointMaze-umaze-v0")
    ds = load_dataset(args.data, spec)
    config = cql.CQLConfig(
        obs_dim=2,
        act_dim=2,
        actor_hidden=(args.width,) * 2,
        critic_hidden=(args.width,) * 2,
        batch_size=args.batch,
        cql_n_actions=args.n_actions,
        cql_weight=5.0,
    )
    offline = buffer_from_transitions(episodes_to_transitions(ds.episodes, spec, 0.99, 10.0, -5.0))
    states = jax.vmap(lambda k: cql.init(k, config, True))(jax.random.split(jax.random.PRNGKey(0), 1))
    online = jax.vmap(lambda _: buffer_init(2, 2, 8))(jax.numpy.arange(1))
    block = min(args.block, args.updates)
    states, _ = cql.train_steps(states, offline, online, config, block, 1.0)  # compile + warm-up
    jax.block_until_ready(states)
    start = time.perf_counter()
    for _ in range(args.updates // block):
        states, _ = cql.train_steps(states, offline, online, config, block, 1.0)
    jax.block_until_ready(states)
    return {"updates_per_s": (args.updates // block) * block / (time.perf_counter() - start)}


def worker_d3rlpy(args: argparse.Namespace) -> dict:
    import d3rlpy
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    with np.load(args.data) as z:
        data = d3rlpy.dataset.MDPDataset(
            observations=z["observations"],
            actions=z["actions"],
            rewards=(z["rewards"] * 10.0 - 5.0),
            terminals=z["terminals"].astype(np.float32),
            timeouts=z["timeouts"].astype(np.float32),
        )
    enc = d3rlpy.models.encoders.VectorEncoderFactory(hidden_units=[args.width, args.width])
    algo = d3rlpy.algos.CalQLConfig(
        actor_encoder_factory=enc,
        critic_encoder_factory=enc,
        batch_size=args.batch,
        n_action_samples=args.n_actions,
        conservative_weight=5.0,
        alpha_learning_rate=0.0,
        max_q_backup=True,
        n_critics=2,
        actor_learning_rate=1e-4,
        critic_learning_rate=3e-4,
        temp_learning_rate=1e-4,
        compile_graph=args.compile_graph,
    ).create(device="cpu:0")
    algo.build_with_dataset(data)
    warm = min(args.block, args.updates)
    for _ in range(warm):
        algo.update(data.sample_transition_batch(args.batch))
    start = time.perf_counter()
    for _ in range(args.updates):
        algo.update(data.sample_transition_batch(args.batch))
    return {"updates_per_s": args.updates / (time.perf_counter() - start), "compiled": bool(algo.compiled)}


def run_worker(
    python: Path,
    name: str,
    data: Path,
    size: dict,
    updates: int,
    threads: int,
    block: int,
    compiled: bool = False,
) -> dict:
    cmd = [
        str(python),
        __file__,
        "--worker",
        name,
        "--data",
        str(data),
        "--updates",
        str(updates),
        "--threads",
        str(threads),
        "--block",
        str(block),
        "--width",
        str(size["width"]),
        "--batch",
        str(size["batch"]),
        "--n-actions",
        str(size["n_actions"]),
        *(["--compile-graph"] if compiled else []),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--updates", type=int, default=2000, help="timed updates at the benchmark size")
    parser.add_argument("--paper-updates", type=int, default=300, help="timed updates at the paper size")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU cores given to each side")
    parser.add_argument("--block", type=int, default=500, help="rewire's fused updates per jitted call")
    parser.add_argument("--worker", choices=["rewire", "d3rlpy"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    for flag in ("--width", "--batch", "--n-actions"):
        parser.add_argument(flag, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--compile-graph", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.sched_setaffinity(0, set(range(args.threads)))  # both sides get the same cores

    if args.worker:
        result = (worker_rewire if args.worker == "rewire" else worker_d3rlpy)(args)
        print(json.dumps(result))
        return

    from rewire.data.episodes import save_dataset
    from rewire.data.generate import scripted_dataset
    from rewire.envs import make_spec
    from rewire.runs import versions, write_json

    peer = ensure_peer_venv()
    with tempfile.TemporaryDirectory() as tmp:
        data = save_dataset(
            scripted_dataset(make_spec("PointMaze-umaze-v0"), 200, 0), Path(tmp) / "umaze.npz"
        )
        rows = {}
        for name, size in SIZES.items():
            updates = args.updates if name == "benchmark" else args.paper_updates
            block = min(args.block, updates)
            ours = run_worker(Path(sys.executable), "rewire", data, size, updates, args.threads, block)
            theirs = run_worker(peer, "d3rlpy", data, size, updates, args.threads, block)
            fused = run_worker(peer, "d3rlpy", data, size, updates, args.threads, block, compiled=True)
            ours, plain = ours["updates_per_s"], theirs["updates_per_s"]
            rows[name] = {
                "rewire_updates_per_s": ours,
                "d3rlpy_updates_per_s": plain,
                "ratio": ours / plain,
                "d3rlpy_compile_graph_updates_per_s": fused["updates_per_s"],
                "ratio_compile_graph": ours / fused["updates_per_s"],
                "d3rlpy_compile_graph_applied": fused["compiled"],
            }
            graph = fused["updates_per_s"]
            print(
                f"{name:>9} {size}: rewire {ours:.1f}/s, d3rlpy {plain:.1f}/s (ratio {ours / plain:.2f}),"
                f" compile_graph {graph:.1f}/s (ratio {ours / graph:.2f}, applied: {fused['compiled']})"
            )
    result = {
        **rows["benchmark"],
        "paper_size": rows["paper"],
        "config": {
            "sizes": SIZES,
            "threads": args.threads,
            "updates": args.updates,
            "paper_updates": args.paper_updates,
            "block": args.block,
        },
        "versions": versions(),
    }
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
