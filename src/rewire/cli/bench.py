"""`rewire bench ...`: benchmarks that write JSON."""

from __future__ import annotations

from pathlib import Path

import typer

from rewire.cli.amf import TASKS_HELP, task_config
from rewire.cli.common import DEVICES, QUIET, command_group, console, friendly_errors, parse_ints
from rewire.cli.edit import DATA_HELP
from rewire.runs import write_json

app = command_group()


@app.command(
    "calql", help="CQL vs Cal-QL on a point maze: dip depth, regret, Q - MC at the switch, updates/s."
)
@friendly_errors
def calql(
    quick: bool = typer.Option(False, "--quick", help="The small setting (under 20 minutes on 2 cores)."),
    seeds: int = typer.Option(3, min=1, help="Seeds per method."),
    seed: int = typer.Option(0, help="Base seed."),
    layout: str = typer.Option("umaze", help="JAX maze layout: open or umaze."),
    env: str = typer.Option(
        None,
        help="A gymnasium-robotics PointMaze instead (PointMaze_Medium-v3, ...), from generated data, with "
        "the mujoco preset (dense evaluation after the switch); --quick is then ignored.",
    ),
    json_out: Path = typer.Option(None, "--json", help="Write the result here."),
    plots: Path = typer.Option(None, help="Also write PNG curves into this folder."),
    quiet: bool = QUIET,
    devices: str = DEVICES,
) -> None:
    from rewire.bench.calql import run_calql_benchmark
    from rewire.report import plot_calql

    preset = "mujoco" if env else ("quick" if quick else "full")
    result, _ = run_calql_benchmark(preset, seeds, seed, layout, quiet, devices, env=env)
    if json_out is not None:
        write_json(json_out, result)
        console.print(f"wrote {json_out}")
    if plots is not None:
        plots.mkdir(parents=True, exist_ok=True)
        plot_calql(result["curves"], list(result["methods"]), plots)
        plot_calql(result["curves"], list(result["methods"]), plots, "calql_q", "q_pi_minus_mc")
    for method, m in result["methods"].items():
        shown = {k: v for k, v in m.items() if isinstance(v, float)}
        console.print(f"{method:>6}: " + ", ".join(f"{k}={v:.3g}" for k, v in shown.items()))
    for key, test in result["paired"].items():
        console.print(
            f"paired {key} (calql - cql): median {test['median_difference']:.3g}, p={test['p']:.3g}"
        )


@app.command("hades", help="HaDES vs neuroevolution at equal env steps; transfer; a generation's cost.")
@friendly_errors
def hades(
    env: str = typer.Option("CartPole-v1", help="Task id (see `rewire hades distill --help`)."),
    preset: str = typer.Option("cpu", help="cpu (2 cores) or paper (MinAtar and Brax, accelerators)."),
    seeds: int = typer.Option(1, min=1, help="Seeds seed, seed+1, ...; medians over them."),
    size: int = typer.Option(None, help="State-action pairs (default: the preset's)."),
    variant: str = typer.Option("R", help="R (random inits) or F (fixed init)."),
    generations: int = typer.Option(None, help="ES generations (default: the preset's)."),
    popsize: int = typer.Option(None, help="ES population size."),
    state_features: str = typer.Option(
        None, help="Evolved observation features: all, or varying (those a random policy changes)."
    ),
    seed: int = typer.Option(0),
    json_out: Path = typer.Option(None, "--json", help="Write the result here."),
    plots: Path = typer.Option(None, help="Write the fitness and dataset PNGs of the first seed here."),
    out: Path = typer.Option(None, help="Keep checkpoints and dataset.npz per seed in this folder."),
    quiet: bool = QUIET,
    devices: str = DEVICES,
) -> None:
    from rewire.bench.hades import run_hades_seeds
    from rewire.report import plot_hades

    options = {
        "size": size,
        "variant": variant,
        "generations": generations,
        "popsize": popsize,
        "state_features": state_features,
    }
    result = run_hades_seeds(env, seeds, seed, preset, quiet, out, devices, **options)
    if json_out is not None:
        write_json(json_out, result)
        console.print(f"wrote {json_out}")
    if plots is not None:
        plot_hades(result["runs"][0], plots)
    for run in result["runs"]:
        ne = run["neuroevolution"]
        console.print(
            f"seed {run['seed']}: {env} HaDES-{variant} {run['size']} pairs: fresh-init return median "
            f"{run['return_median']:.1f} ({run['env_steps']:,} env steps, {run['generations_per_s']:.2f} "
            f"generations/s); neuroevolution {ne['return_median']:.1f} at {ne['env_steps']:,} env steps"
        )
        console.print("  transfer: " + ", ".join(f"{k} {v:.1f}" for k, v in run["generalisation"].items()))
    console.print(
        f"median over {seeds} seed(s): HaDES {result['hades_median']:.1f}, neuroevolution "
        f"{result['neuroevolution_median']:.1f} (ratio {result['ratio_of_medians']:.2f})"
    )
    for kind, c in result["cost"].items():
        floor = " + ".join(
            f"{k.removesuffix('_seconds')} {c[k]:.3f} s" for k in ("rollout_seconds", "bc_seconds") if k in c
        )
        console.print(
            f"{kind}: {c['seconds_per_generation']:.3f} s per generation against {floor}: "
            f"overhead {c['overhead']:.2f}"
        )


@app.command("multitask", help="HaDES datasets per env, then one zero-shot multi-task policy on their union.")
@friendly_errors
def multitask(
    envs: str = typer.Option(
        "CartPole-v1,Acrobot-v1,MountainCar-v0", help="Comma-separated discrete-action task ids."
    ),
    seeds: int = typer.Option(3, min=1, help="Seeds seed, seed+1, ... (each distils every env)."),
    seed: int = typer.Option(0),
    arch: str = typer.Option("", help="Learner overrides on the first env's learner, e.g. 'width=256'."),
    preset: str = typer.Option("cpu", help="The distillation preset (cpu or paper)."),
    json_out: Path = typer.Option(None, "--json", help="Write the result here."),
    out: Path = typer.Option(None, help="Keep the distillation runs in this folder."),
    quiet: bool = QUIET,
) -> None:
    from rewire.bench.hades import run_multitask_benchmark

    ids = tuple(e.strip() for e in envs.split(",") if e.strip())
    result = run_multitask_benchmark(ids, seeds, seed, arch, preset, out, quiet)
    if json_out is not None:
        write_json(json_out, result)
        console.print(f"wrote {json_out}")
    for slots, block in result["summary"].items():
        for env, row in block["tasks"].items():
            console.print(
                f"{slots:>8} {env:>24}: multi-task {row['multitask']:.1f}, single-task "
                f"{row['single_task']:.1f}, normalised {row['normalised']:.2f}"
            )


@app.command("amf", help="AMF vs uniform and random task selection, GP and NN, mismatch and control.")
@friendly_errors
def amf(
    seeds: int = typer.Option(5, min=1, help="Seeds per method."),
    seed: int = typer.Option(0, help="Base seed."),
    tasks: str = typer.Option(None, help=TASKS_HELP),
    env: str = typer.Option("reach2d", help="reach2d, arm2d or metaworld (MuJoCo; AMF-NN; mismatch, full)."),
    preset: str = typer.Option("cpu", help="metaworld: cpu (2 cores) or full (larger machines)."),
    threshold: float = typer.Option(0.8, help="metaworld: the mean success the mismatch target counts to."),
    kernel: list[str] = typer.Option(
        ["last_layer", "loss_gradient"], help="metaworld: NN uncertainty models to compare (repeatable)."
    ),
    budget: int = typer.Option(32, help="Demonstrations per run."),
    batch: int = typer.Option(2, help="Demonstrations per round."),
    proxies: str = typer.Option("rollout", help="rollout or is."),
    model: list[str] = typer.Option(["gp", "nn"], help="Models to run (repeatable)."),
    json_out: Path = typer.Option(None, "--json", help="Write the result here."),
    plots: Path = typer.Option(None, help="Also write PNG curves into this folder."),
    out: Path = typer.Option(None, help="Keep per-round checkpoints in this folder."),
    quiet: bool = QUIET,
    devices: str = DEVICES,
) -> None:
    from rewire.amf.core import METAWORLD
    from rewire.bench.amf import run_amf_benchmark, run_metaworld_benchmark
    from rewire.report import plot_amf, reached

    if env == METAWORLD:
        spec = task_config(env, tasks).metaworld.tasks
        kernels = tuple(kernel)
        result = run_metaworld_benchmark(seeds, seed, preset, spec, threshold, kernels, quiet, out, devices)
        if json_out is not None:
            write_json(json_out, result)
            console.print(f"wrote {json_out}")
        for setting, by_selector in result["settings"].items():
            for name, curve in by_selector.items():
                pairs = zip(curve["demos"], curve["success_median"], strict=True)
                line = " ".join(f"{d}:{v:.2f}" for d, v in pairs)
                console.print(f"{setting:>8} {name:>7}: median success by demos {line}")
        for name, by_setting in result["criteria"].items():
            for setting, row in by_setting.items():
                gaps = " ".join(
                    f"{g['mean']:+.2f} [{g['low']:+.2f}, {g['high']:+.2f}]" for g in row["paired_gap"]
                )
                shown = {k: v for k, v in row.items() if k != "paired_gap"}
                console.print(f"{name} {setting}: {shown}; paired gap to uniform by budget: {gaps}")
        console.print(f"seconds: {result['seconds']}")
        return
    count = task_config(env, tasks).tasks
    models = tuple(model)
    result = run_amf_benchmark(env, count, seeds, seed, budget, batch, proxies, models, quiet, out, devices)
    if json_out is not None:
        write_json(json_out, result)
        console.print(f"wrote {json_out}")
    if plots is not None:
        plot_amf(result, plots, env, tasks)
    for setting, by_model in result["settings"].items():
        for name, by_sel in by_model.items():
            line = ", ".join(f"{s} {reached(c['demos_to_0.9'])}" for s, c in by_sel.items())
            console.print(f"{setting:>8} {name}: demos to 0.9: {line}")
    for name, c in result["criteria"].items():
        console.print(f"{name}: {c}")


@app.command(
    "unlearn", help="Deletion cost against rho*sqrt(ln T), and regret of the stable learner vs UCBVI."
)
@friendly_errors
def unlearn(
    mdp: str = typer.Option("random", help="random, riverswim or grid."),
    states: int = typer.Option(4, help="States."),
    horizon: int = typer.Option(4, help="Steps per episode."),
    episodes: str = typer.Option("100,300,1000,3000,10000", help="Horizons T, comma-separated."),
    rhos: str = typer.Option("0.05,0.1,0.2,0.5", help="TV-stability levels, comma-separated."),
    seeds: int = typer.Option(3, min=1, help="Learner seeds per (T, rho)."),
    deletions: int = typer.Option(32, min=1, help="Deletions per seed (uniform users, and the oldest user)."),
    seed: int = typer.Option(0, help="Base seed (data set and learners)."),
    json_out: Path = typer.Option(None, "--json", help="Write the result here."),
    plots: Path = typer.Option(None, help="Also write PNG plots into this folder."),
    quiet: bool = QUIET,
    devices: str = DEVICES,
) -> None:
    from rewire.bench.unlearn import run_unlearn_benchmark
    from rewire.report import plot_unlearn

    try:
        rho_list = tuple(float(r) for r in rhos.split(","))
    except ValueError as err:
        raise ValueError(f"--rhos: expected comma-separated numbers, got {rhos!r}") from err
    result = run_unlearn_benchmark(
        mdp, states, None, horizon, parse_ints(episodes), rho_list, seeds, deletions, seed, quiet, devices
    )
    if json_out is not None:
        write_json(json_out, result)
        console.print(f"wrote {json_out}")
    if plots is not None:
        plot_unlearn(result, plots)
    for row in result["rows"]:
        console.print(
            f"T={row['episodes']:>6} rho={row['rho']:<5} replayed {row['recompute_fraction']:.3f} "
            f"(oldest {row['oldest_fraction']:.3f}, predicted {row['predicted_fraction']:.3f}) "
            f"<= rho*sqrt(ln T) {row['rho_sqrt_ln_t']:.3f}: {row['within_bound']}"
        )
    for kind, curves in result["regret"].items():
        for c in curves:
            console.print(f"regret {kind} rho={c['rho']} {c['bonus']}: {c['final_regret_median']:.1f}")


@app.command(
    "edit", help="MaskWorld/ShiftWorld editors vs unlearning baselines (digits), with CEM and transfer."
)
@friendly_errors
def edit(
    task: str = typer.Option("unlearn", help="unlearn (digits) or bias (occupation texts, or --data)."),
    data: Path = typer.Option(None, help=DATA_HELP),
    forget_class: int = typer.Option(7, help="The class to forget (0..9)."),
    random_forget: bool = typer.Option(False, "--random-forget", help="Forget a random 10% instead."),
    seed: int = typer.Option(0, help="Split, pretraining, agents and baselines."),
    steps: int = typer.Option(50_000, min=500, help="Environment steps for PPO and for CEM."),
    json_out: Path = typer.Option(None, "--json", help="Write the result here."),
    quiet: bool = QUIET,
    devices: str = DEVICES,
) -> None:
    from rewire.bench.edit import run_edit_benchmark

    result = run_edit_benchmark(
        task, None if random_forget else forget_class, seed, steps, quiet, data, devices
    )
    if json_out is not None:
        write_json(json_out, result)
        console.print(f"wrote {json_out}")
    rows = {"original": result["original"], **result["methods"], **result["cem"]}
    for name, m in rows.items():
        shown = {k: v for k, v in m.items() if isinstance(v, float) and k != "compile_s"}
        console.print(f"{name:>17}: " + ", ".join(f"{k} {v:.3f}" for k, v in shown.items()))
    for name, c in result["criteria"].items():
        console.print(f"{name}: {c}")
