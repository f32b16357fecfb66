"""`rewire amf run`."""

from __future__ import annotations

from pathlib import Path

import typer

from rewire.cli.common import command_group, console, friendly_errors, parse_ints, resume_overrides
from rewire.runs import config_from_json, create_run_dir, read_run_record, record_run, write_json

app = command_group()


@app.command("run", help="Fine-tune a pretrained multi-task policy on a demonstration budget; resumable.")
@friendly_errors
def run(
    ctx: typer.Context,
    env: str = typer.Option("reach2d", help="reach2d (2-D point mass) or arm2d (two-link arm)."),
    tasks: int = typer.Option(24, help="Number of tasks (even: angles x 2 radii)."),
    budget: int = typer.Option(32, help="Demonstrations to request in total."),
    batch: int = typer.Option(2, help="Demonstrations per round (the policy is refitted after each round)."),
    selector: str = typer.Option("amf", help="amf, uniform (round-robin) or random."),
    model: str = typer.Option("gp", help="gp (exact GP policy) or nn (MLP with a Bayesian last layer)."),
    setting: str = typer.Option("mismatch", help="Pretraining: mismatch, control or full."),
    proxies: str = typer.Option("rollout", help="Expert-state proxies: rollout or is (importance weights)."),
    targets: str = typer.Option(None, help="Target task ids, e.g. '0,1,2' (default: every task)."),
    seed: int = typer.Option(0, help="Drives the expert's noise, pretraining, the order and the NN."),
    out: Path = typer.Option(Path("runs"), help="Parent folder of the run directory."),
    resume: Path = typer.Option(None, help="Resume the run directory of an interrupted run."),
    checkpoint_every: float = typer.Option(30.0, min=0, help="Seconds between checkpoints (0: every round)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    from rewire.amf.core import AMFConfig
    from rewire.amf.run import AMFRun
    from rewire.loop import Loop
    from rewire.report import plot_curves, reached

    if resume is not None:
        resume_overrides(ctx)
        run_dir, record = resume, read_run_record(resume)
        config = config_from_json(AMFConfig, record["config"], f"{resume}/config.json: config")
        setting, seed, selector = record.get("setting"), record.get("seed"), record.get("selector")
        if not (isinstance(setting, str) and isinstance(seed, int) and isinstance(selector, str)):
            raise ValueError(f"{resume}/config.json: no setting, seed and selector of an AMF run")
        amf_run = AMFRun(config, [setting], [seed], [selector])
    else:
        config = AMFConfig(
            env=env,
            tasks=tasks,
            model=model,
            budget=budget,
            batch=batch,
            proxies=proxies,
            targets=parse_ints(targets) if targets else None,
        )
        amf_run = AMFRun(config, [setting], [seed], [selector])
        run_dir = create_run_dir(
            out, "amf", lambda d: record_run(d, config, seed, setting=setting, selector=selector)
        )
    loop = Loop(amf_run, run_dir, every=checkpoint_every, quiet=quiet, description="AMF rounds")
    loop.start()
    if resume is not None:
        console.print(f"resuming {run_dir} after round {amf_run.round}")
    loop.run()
    (setting_name,), (selector_name,) = amf_run.settings, amf_run.selectors
    result = amf_run.results()[setting_name][selector_name]
    write_json(run_dir / "results.json", {"config": amf_run.config, "result": result})
    plot_curves(
        run_dir / "success.png",
        result["demos"],
        {selector_name: result["success_per_seed"]},
        "demonstrations requested",
        "mean success over tasks",
        f"{selector_name}, {setting_name}",
    )
    console.print(
        f"{run_dir}: success {result['success_median'][0]:.2f} -> {result['success_median'][-1]:.2f} "
        f"after {result['demos'][-1]} demos; demos to reach 0.9: {reached(result['demos_to_0.9'])}; "
        f"tasks asked: {result['tasks_per_seed'][0]}"
    )
