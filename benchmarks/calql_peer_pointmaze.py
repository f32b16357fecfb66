"""rewire's CQL and Cal-QL against d3rlpy's on MuJoCo PointMaze, learning from the same data.

Both sides train from the dataset that `rewire bench calql --env PointMaze_Medium-v3 --seed S` generates,
with the benchmark's settings (`PRESETS["mujoco"]` of `rewire.calql.presets`): actor and critics 2x64,
batch 128, 4 sampled actions, a fixed CQL weight of 25, rewards x10 - 5, gamma 0.99, tau 0.01, learning
rates 1e-3, 10k offline updates, then 5k online steps at 2 updates per step with half of each batch from
the offline data. rewire's agents run through `rewire.bench.calql.run_calql_benchmark` in this process.
d3rlpy runs in its own virtual environment (.venv-d3rlpy: d3rlpy 2.8.1 pins gymnasium 1.0.0, which
gymnasium-robotics 1.3.1 and its mujoco 3.1.6 fit; rewire's side uses gymnasium-robotics 1.4 and mujoco
3.3.0), one process per agent. Its actor is saved at the switch and wherever rewire's agents are
evaluated, and every snapshot is evaluated here by rewire's own evaluator (`rewire.rollout.GymRunner`:
the same env, as many episodes from randomised starts and goals) and scored by the same metrics
(`rewire.calql.metrics`).

Where d3rlpy differs by construction: its CQL always importance-samples the logsumexp (rewire's benchmark
agent does not), its online loop takes one env step then the updates (rewire: chunks of 50 steps), and its
Cal-QL labels online episodes with their returns-to-go through `SparseRewardTransitionPicker`, as its
Cal-QL reproduction does.

    .venv/bin/python benchmarks/calql_peer_pointmaze.py --seeds 4 --json runs/peer-pointmaze.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PEER_VENV = ROOT / ".venv-d3rlpy"
PEER_PACKAGES = ["torch==2.13.0", "d3rlpy==2.8.1", "gymnasium-robotics==1.3.1"]
ENV_ID = "PointMaze_Medium-v3"


def ensure_peer_venv() -> Path:
    python = PEER_VENV / "bin" / "python"
    check = [python, "-c", "import d3rlpy, gymnasium_robotics"]
    if not python.exists() or subprocess.run(check, capture_output=True).returncode:
        print(f"creating {PEER_VENV} ({', '.join(PEER_PACKAGES)})", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", PEER_VENV], check=True)
        for package in PEER_PACKAGES:  # torch first, so that d3rlpy does not pull another build
            subprocess.run([python, "-m", "pip", "install", "-q", package], check=True)
    return python


def worker_d3rlpy(args: argparse.Namespace) -> None:
    """One d3rlpy agent: offline, then online in the peer's PointMaze; actor snapshots into --out."""
    import d3rlpy
    import gymnasium
    import gymnasium_robotics
    import torch

    gymnasium.register_envs(gymnasium_robotics)
    torch.set_num_threads(1)
    d3rlpy.seed(args.seed)
    cfg = json.loads(args.config)
    picker = d3rlpy.dataset.SparseRewardTransitionPicker(
        failure_return=(cfg["failure_value"] - cfg["bias"]) / cfg["scale"], step_reward=0.0
    )
    with np.load(args.data) as z:
        data = d3rlpy.dataset.MDPDataset(
            observations=z["observations"],
            actions=z["actions"],
            rewards=z["rewards"],
            terminals=z["terminals"].astype(np.float32),
            timeouts=z["timeouts"].astype(np.float32),
            transition_picker=picker,
        )
    actor = d3rlpy.models.encoders.VectorEncoderFactory(hidden_units=cfg["actor_hidden"])
    critic = d3rlpy.models.encoders.VectorEncoderFactory(hidden_units=cfg["critic_hidden"])
    make = d3rlpy.algos.CalQLConfig if args.worker == "calql" else d3rlpy.algos.CQLConfig
    algo = make(
        actor_encoder_factory=actor,
        critic_encoder_factory=critic,
        batch_size=cfg["batch_size"],
        gamma=cfg["discount"],
        tau=cfg["tau"],
        actor_learning_rate=cfg["actor_lr"],
        critic_learning_rate=cfg["critic_lr"],
        temp_learning_rate=cfg["alpha_lr"],
        n_action_samples=cfg["cql_n_actions"],
        conservative_weight=cfg["cql_weight"],
        initial_alpha=1.0,
        alpha_learning_rate=0.0,  # a fixed CQL weight, as rewire's benchmark agent
        alpha_threshold=0.0,
        max_q_backup=cfg["max_target_backup"],
        n_critics=2,
        reward_scaler=d3rlpy.preprocessing.ConstantShiftRewardScaler(
            shift=cfg["bias"], multiplier=cfg["scale"], multiply_first=True
        ),
        compile_graph=False,
    ).create(device="cpu:0")
    quiet = d3rlpy.logging.NoopAdapterFactory()
    algo.fit(
        data,
        n_steps=cfg["offline_steps"],
        n_steps_per_epoch=cfg["offline_steps"],
        logger_adapter=quiet,
        show_progress=False,
    )
    snapshots = {}

    def snap(step: int) -> None:
        state = algo.impl.modules.policy.state_dict()
        for name, value in state.items():
            snapshots[f"{step}/{name}"] = value.detach().cpu().numpy()

    snap(0)
    env = gymnasium.wrappers.FlattenObservation(gymnasium.make(ENV_ID, continuing_task=False))
    env.reset(seed=args.seed)
    online = d3rlpy.dataset.create_fifo_replay_buffer(
        limit=cfg["online_capacity"], env=env, transition_picker=picker
    )

    class Mixed(d3rlpy.dataset.MixedReplayBuffer):
        """Offline rows only while no online episode has finished, as rewire's `sample_mixed`."""

        def sample_transition_batch(self, batch_size: int):
            if online.transition_count == 0:
                return data.sample_transition_batch(batch_size)
            return super().sample_transition_batch(batch_size)

    buffer = Mixed(online, data, secondary_mix_ratio=cfg["mixing"])

    eval_steps = set(cfg["eval_steps"])

    def callback(_algo, _epoch: int, total_step: int) -> None:
        if total_step in eval_steps:
            snap(total_step)

    algo.fit_online(
        env,
        buffer,
        n_steps=cfg["online_steps"],
        n_steps_per_epoch=cfg["online_steps"],
        update_interval=1,
        n_updates=cfg["utd"],
        logger_adapter=quiet,
        show_progress=False,
        callback=callback,
    )
    np.savez(args.out, **snapshots)


def d3rlpy_act(params: dict, obs, key, deterministic: bool):
    """d3rlpy's NormalPolicy, deterministic: tanh(mu(encoder(obs))) (ReLU encoder, PyTorch's x W^T + b)."""
    import jax.numpy as jnp

    h = obs
    for i in range(params["layers"]):
        h = jnp.maximum(h @ params[f"w{i}"].T + params[f"b{i}"], 0.0)
    return jnp.tanh(h @ params["mu_w"].T + params["mu_b"])


def to_params(snapshots: dict, step: int, layers: int) -> dict:
    out = {"layers": layers}
    for i in range(layers):
        out[f"w{i}"] = snapshots[f"{step}/_encoder._layers.{2 * i}.weight"]
        out[f"b{i}"] = snapshots[f"{step}/_encoder._layers.{2 * i}.bias"]
    out["mu_w"], out["mu_b"] = snapshots[f"{step}/_mu.weight"], snapshots[f"{step}/_mu.bias"]
    return out


def evaluate_peer(runs: list[dict], config, spec, seed: int) -> dict:
    """Every snapshot of every d3rlpy agent through rewire's evaluator, on as many episodes as rewire's
    agents get at that step; curves and metrics per agent."""
    import jax
    import jax.numpy as jnp

    from rewire.calql.metrics import DIP_WINDOW, cumulative_regret, dip_depth
    from rewire.calql.trainer import online_eval_steps
    from rewire.rollout import GymRunner

    layers = len(config.agent.actor_hidden)
    steps = online_eval_steps(config)

    def act(params, obs, key, deterministic):
        return d3rlpy_act({**params, "layers": layers}, obs, key, deterministic)

    runner = GymRunner(spec, act, len(runs), jax.random.PRNGKey(seed))
    success = []
    for i, step in enumerate(steps):
        stacked = [
            {k: v for k, v in to_params(r["snapshots"], step, layers).items() if k != "layers"} for r in runs
        ]
        params = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *stacked)
        early = step <= DIP_WINDOW * config.online_steps and config.early_eval_episodes
        episodes = config.early_eval_episodes if early else config.eval_episodes
        res = runner.evaluate(params, jax.random.fold_in(jax.random.PRNGKey(seed), i), episodes)
        success.append(res["success"].mean(1))
    success = np.asarray(success)  # (evals, agents)
    agents = []
    for j, run in enumerate(runs):
        curve = success[:, j]
        agents.append(
            {
                "agent": f"{run['method']}/seed{run['seed']}",
                "method": run["method"],
                "success_at_switch": float(curve[0]),
                "final_success": float(curve[-1]),
                "dip_depth": dip_depth(np.array(steps), curve, config.online_steps),
                "cumulative_regret": cumulative_regret(np.array(steps), curve),
                "seconds": run["seconds"],
            }
        )
    return {"agents": agents, "steps": steps, "success": success.T.tolist()}


def run_peer(python: Path, data: Path, method: str, seed: int, cfg: dict, out: Path) -> dict:
    cmd = [str(python), __file__, "--worker", method, "--data", str(data), "--seed", str(seed)]
    cmd += ["--out", str(out), "--config", json.dumps(cfg)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, text=True)
    with np.load(out) as z:
        snapshots = {k: z[k] for k in z.files}
    return {"method": method, "seed": seed, "snapshots": snapshots, "seconds": time.perf_counter() - start}


def summary(agents: list[dict], seed: int) -> dict:
    from rewire.stats import bootstrap_mean

    out = {}
    for method in ("cql", "calql"):
        rows = [a for a in agents if a["method"] == method]
        out[method] = {
            k: bootstrap_mean([r[k] for r in rows], seed)
            for k in ("success_at_switch", "final_success", "cumulative_regret", "dip_depth")
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per method on each side")
    parser.add_argument("--seed", type=int, default=0, help="base seed: the dataset and rewire's agents")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(), help="d3rlpy agents trained at once")
    parser.add_argument("--offline-steps", type=int, help="a smaller offline budget (a smoke run)")
    parser.add_argument("--online-steps", type=int, help="a smaller online budget (a smoke run)")
    parser.add_argument("--worker", choices=["cql", "calql"], help=argparse.SUPPRESS)
    for flag in ("--data", "--out", "--config"):
        parser.add_argument(flag, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_d3rlpy(args)
        return

    import dataclasses

    from rewire.bench.calql import benchmark_data, run_calql_benchmark
    from rewire.calql.presets import PRESETS
    from rewire.calql.trainer import online_eval_steps
    from rewire.data.episodes import save_dataset
    from rewire.envs import make_spec
    from rewire.jaxcache import enable_compilation_cache
    from rewire.runs import versions, write_json

    enable_compilation_cache()
    python = ensure_peer_venv()
    spec = make_spec(ENV_ID)
    budgets = {k: getattr(args, k) for k in ("offline_steps", "online_steps") if getattr(args, k) is not None}
    config = dataclasses.replace(
        PRESETS["mujoco"], env_id=ENV_ID, seeds=args.seeds, seed=args.seed, **budgets
    )
    scale, bias = config.scales(spec)
    cfg = dataclasses.asdict(config.agent) | {
        k: getattr(config, k) for k in ("offline_steps", "online_steps", "utd", "mixing", "online_capacity")
    }
    cfg["eval_steps"] = online_eval_steps(config)
    cfg |= {
        "scale": scale,
        "bias": bias,
        "failure_value": (spec.failure_reward * scale + bias) / (1 - config.agent.discount),
    }
    start = time.perf_counter()
    ours, _ = run_calql_benchmark(
        "mujoco", args.seeds, args.seed, quiet=True, throughput=False, env=ENV_ID, overrides=budgets
    )
    ours_seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        data = save_dataset(benchmark_data(spec, args.seed), Path(tmp) / "pointmaze.npz")
        jobs = [(m, args.seed * 1000 + s) for m in ("cql", "calql") for s in range(args.seeds)]
        with ThreadPoolExecutor(args.jobs) as pool:
            runs = list(
                pool.map(
                    lambda j: run_peer(python, data, j[0], j[1], cfg, Path(tmp) / f"{j[0]}-{j[1]}.npz"), jobs
                )
            )
    peer = evaluate_peer(runs, config, spec, args.seed)
    rewire_agents = [
        {"method": m, **{k: v[i] for k, v in ours["methods"][m]["per_seed"].items()}}
        for m in ("cql", "calql")
        for i in range(args.seeds)
    ]
    result = {
        "rewire": summary(rewire_agents, args.seed),
        "d3rlpy": summary(peer["agents"], args.seed),
        "rewire_per_seed": {m: ours["methods"][m]["per_seed"] for m in ("cql", "calql")},
        "d3rlpy_agents": peer["agents"],
        "d3rlpy_curves": {"steps": peer["steps"], "success": peer["success"]},
        "rewire_seconds": ours_seconds,
        "d3rlpy_seconds": [r["seconds"] for r in runs],
        "config": cfg | {"env_id": ENV_ID, "seeds": args.seeds, "seed": args.seed, "jobs": args.jobs},
        "peer_packages": PEER_PACKAGES,
        "versions": versions(),
    }
    for side in ("rewire", "d3rlpy"):
        for method, m in result[side].items():
            cells = ", ".join(f"{k} {v['mean']:.3f} [{v['low']:.3f}, {v['high']:.3f}]" for k, v in m.items())
            print(f"{side:>7} {method:>5}: {cells}")
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
