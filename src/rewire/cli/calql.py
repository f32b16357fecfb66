"""`rewire calql train`."""

from __future__ import annotations

from pathlib import Path

import typer

from rewire.calql import cql
from rewire.calql.trainer import FinetuneConfig
from rewire.cli.common import (
    CHECKPOINT_EVERY,
    COORDINATOR,
    DEVICES,
    NUM_PROCESSES,
    OUT,
    PROCESS_ID,
    QUIET,
    RESUME,
    TENSORBOARD,
    command_group,
    console,
    friendly_errors,
    parse_ints,
    resume_overrides,
)
from rewire.data.generate import scripted_dataset
from rewire.envs import make_spec
from rewire.runs import fresh_run_path

app = command_group()


@app.command("train", help="Offline pre-training, then online fine-tuning; methods x seeds train together.")
@friendly_errors
def train(
    ctx: typer.Context,
    env: str = typer.Option("PointMaze-umaze-v0", help="Environment id (a point maze or a Gymnasium id)."),
    dataset: Path = typer.Option(
        None, help="Dataset: .npz/.h5 file or Minari dataset directory; default: 200 scripted episodes."
    ),
    methods: str = typer.Option("cql,calql", help="Comma-separated: cql, calql."),
    seeds: int = typer.Option(3, min=1, help="Seeds per method (vmapped in one process)."),
    seed: int = typer.Option(0, help="Base seed: drives data generation, initialisation and environments."),
    offline_steps: int = typer.Option(10_000, min=0, help="Offline gradient updates."),
    online_steps: int = typer.Option(5_000, min=0, help="Online environment steps per agent."),
    mixing: float = typer.Option(0.5, help="Share of each online batch drawn from the offline data."),
    utd: int = typer.Option(1, min=1, help="Updates per online environment step."),
    reward_scale: float = typer.Option(
        None, help="Rewards are trained as r x scale + bias; default 10 on sparse tasks (AntMaze's), else 1."
    ),
    reward_bias: float = typer.Option(None, help="See --reward-scale; default -5 on sparse tasks, else 0."),
    cql_weight: float = typer.Option(5.0, help="CQL weight (alpha)."),
    lagrange: bool = typer.Option(False, help="Tune the CQL weight by dual descent on a target gap."),
    target_gap: float = typer.Option(0.8, help="Lagrange target gap."),
    importance_sampling: bool = typer.Option(
        True, help="CQL(H) with importance sampling (paper's AntMaze form)."
    ),
    tau: float = typer.Option(5e-3, help="Polyak rate of the target critics."),
    actor_lr: float = typer.Option(1e-4, help="Actor learning rate."),
    critic_lr: float = typer.Option(3e-4, help="Critic learning rate."),
    hidden: str = typer.Option("64,64", help="Hidden widths of actor and critics."),
    batch_size: int = typer.Option(128, min=1),
    n_actions: int = typer.Option(4, min=1, help="CQL sampled actions per set (paper: 10)."),
    eval_every: int = typer.Option(250, min=1, help="Online environment steps between evaluations."),
    offline_eval_every: int = typer.Option(
        1_000, min=1, help="Offline updates between evaluations (the offline curve's resolution)."
    ),
    out: Path = OUT,
    resume: Path = RESUME,
    checkpoint_every: float = CHECKPOINT_EVERY,
    quiet: bool = QUIET,
    online_loop: str = typer.Option(
        "auto", help="Online phase: device (one jitted scan; JAX envs), host (any env), auto."
    ),
    tensorboard: bool = TENSORBOARD,
    devices: str = DEVICES,
    coordinator: str = COORDINATOR,
    num_processes: int = NUM_PROCESSES,
    process_id: int = PROCESS_ID,
) -> None:
    from rewire.calql.run import fit
    from rewire.calql.run import resume as resume_run

    if resume is not None:
        extended = resume_overrides(ctx, ("offline_steps", "online_steps"))
        result = resume_run(
            resume,
            quiet=quiet,
            checkpoint_every=checkpoint_every,
            tensorboard=tensorboard,
            devices=devices,
            **extended,
        )
    else:
        hid = parse_ints(hidden)
        agent = cql.CQLConfig(
            actor_hidden=hid,
            critic_hidden=hid,
            cql_weight=cql_weight,
            lagrange=lagrange,
            target_gap=target_gap,
            batch_size=batch_size,
            cql_n_actions=n_actions,
            importance_sampling=importance_sampling,
            tau=tau,
            actor_lr=actor_lr,
            critic_lr=critic_lr,
        )
        config = FinetuneConfig(
            env_id=env,
            methods=tuple(m.strip() for m in methods.split(",")),
            seeds=seeds,
            seed=seed,
            agent=agent,
            offline_steps=offline_steps,
            online_steps=online_steps,
            mixing=mixing,
            utd=utd,
            reward_scale=reward_scale,
            reward_bias=reward_bias,
            eval_every=eval_every,
            offline_eval_every=offline_eval_every,
            online_loop=online_loop,
        )
        config.validate()
        data = scripted_dataset(make_spec(env), 200, seed) if dataset is None else dataset
        result = fit(
            data,
            env,
            config,
            fresh_run_path(out, "calql"),
            quiet,
            checkpoint_every,
            tensorboard=tensorboard,
            devices=devices,
        )
    console.print(f"done: {result.directory} (checkpoint, results.json, metrics.jsonl, plots)")
    for row in result.summary["agents"]:
        console.print(
            "  " + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
        )
