"""`rewire hades distill|evaluate|digits`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import jax
import numpy as np
import typer

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
    resume_overrides,
)
from rewire.runs import fresh_run_path, write_json

app = command_group()


@app.command("distill", help="Evolve a synthetic dataset of N state-action pairs; saves dataset.npz.")
@friendly_errors
def distill(
    ctx: typer.Context,
    env: str = typer.Option(
        "CartPole-v1",
        help="Any gymnax id (CartPole-v1, Pendulum-v1, Breakout-MinAtar, ...) or "
        "brax-hopper|walker2d|halfcheetah|ant.",
    ),
    preset: str = typer.Option("cpu", help="cpu (2 cores) or paper (MinAtar and Brax, for accelerators)."),
    size: int = typer.Option(None, help="State-action pairs N (default: the task's default)."),
    variant: str = typer.Option("R", help="R: fresh random inits each generation; F: one fixed init."),
    generations: int = typer.Option(None, help="ES generations (default: the task's default)."),
    popsize: int = typer.Option(None, help="ES population size."),
    es: str = typer.Option(None, help="openes or snes (default: the task's default)."),
    sigma: float = typer.Option(None, help="Initial ES noise scale."),
    inits: int = typer.Option(None, help="Fresh inits per candidate for variant R (default 2)."),
    labels: str = typer.Option("fixed", help="Discrete actions: fixed round-robin labels or learned logits."),
    evolve_lr: bool = typer.Option(False, "--evolve-lr", help="Also evolve the inner learning rate."),
    state_features: str = typer.Option(
        None, help="Evolved observation features: all, or varying (those a random policy changes)."
    ),
    seed: int = typer.Option(0, help="Drives ES noise, inits, rollouts and normalisation."),
    out: Path = OUT,
    resume: Path = RESUME,
    checkpoint_every: float = CHECKPOINT_EVERY,
    quiet: bool = QUIET,
    tensorboard: bool = TENSORBOARD,
    devices: str = DEVICES,
    coordinator: str = COORDINATOR,
    num_processes: int = NUM_PROCESSES,
    process_id: int = PROCESS_ID,
) -> None:
    from rewire.hades.core import default_config
    from rewire.hades.run import fit
    from rewire.hades.run import resume as resume_run

    if resume is not None:
        extended = resume_overrides(ctx, ("generations",))
        result = resume_run(resume, quiet=quiet, tensorboard=tensorboard, devices=devices, **extended)
    else:
        config = default_config(env, preset)
        es_cfg = replace(
            config.es,
            **{
                k: v
                for k, v in {"popsize": popsize, "algorithm": es, "sigma": sigma}.items()
                if v is not None
            },
        )
        fields = {
            "size": size,
            "generations": generations,
            "inits": inits,
            "state_features": state_features,
        }
        config = replace(
            config,
            variant=variant,
            labels=labels,
            evolve_lr=evolve_lr,
            es=es_cfg,
            **{k: v for k, v in fields.items() if v is not None},
        )
        path = fresh_run_path(out, "hades")
        result = fit(
            env,
            config,
            seed,
            path,
            quiet=quiet,
            checkpoint_every=checkpoint_every,
            tensorboard=tensorboard,
            devices=devices,
        )
    summary = result.summary
    returns = ", ".join(f"{r:.1f}" for r in np.asarray(summary["return_per_init"], float))
    console.print(
        f"done: {result.directory / 'dataset.npz'}; fresh-init return median {summary['return_median']:.1f} "
        f"over 10 inits (per init: {returns})"
    )


@app.command("evaluate", help="Train fresh policies on a saved dataset (other architectures too).")
@friendly_errors
def evaluate(
    dataset: Path = typer.Argument(..., help="dataset.npz written by `rewire hades distill`."),
    arch: list[str] = typer.Option(
        [], help="Inner learner overrides, e.g. 'width=256,depth=3,act=relu,lr=0.01,steps=128' (repeatable)."
    ),
    learner: str = typer.Option(
        None,
        help="Start from a named learner instead of the distilling one: reference (2x512 tanh, Adam 5e-3, "
        "gradient clip 0.5, 200 full-batch steps, Gaussian NLL: the HaDES authors' Brax learner).",
    ),
    inits: int = typer.Option(10, min=1, help="Fresh policies per architecture."),
    episodes: int = typer.Option(10, min=1, help="Evaluation episodes per policy."),
    greedy: bool = typer.Option(False, "--greedy", help="Act with the mode instead of sampling."),
    seed: int = typer.Option(0),
    json_out: Path = typer.Option(None, "--json", help="Write the returns here."),
) -> None:
    from rewire.hades.core import evaluate_dataset, learner_preset, load_task_dataset

    loaded = load_task_dataset(dataset)
    data, task, obs_mean, obs_std = loaded.dataset, loaded.task, loaded.obs_mean, loaded.obs_std
    base = loaded.learner if learner is None else learner_preset(learner)
    key = jax.random.key(seed)
    results = {}
    for spec in ["", *arch]:
        out = evaluate_dataset(
            data, task, base.with_arch(spec), obs_mean, obs_std, key, inits, episodes, greedy
        )
        name = spec or ("as distilled" if learner is None else f"{learner} learner")
        results[name] = {"return_median": float(np.median(out["returns"])), "returns": out["returns"]}
        console.print(f"{name:>30}: median return {results[name]['return_median']:.1f} over {inits} inits")
    if json_out is not None:
        write_json(json_out, {"dataset": dataset, "env": task.env_id, "seed": seed, "results": results})


@app.command("multitask", help="One policy by BC on the union of datasets for different envs, zero-shot.")
@friendly_errors
def multitask(
    datasets: list[Path] = typer.Argument(
        ..., help="dataset.npz files of `rewire hades distill`, one per env."
    ),
    arch: str = typer.Option("", help="Learner overrides on the first dataset's learner, e.g. 'width=256'."),
    slots: str = typer.Option("disjoint", help="disjoint (each env its own input columns) or shared."),
    inits: int = typer.Option(10, min=1, help="Fresh policies of each kind."),
    episodes: int = typer.Option(10, min=1, help="Evaluation episodes per policy and env."),
    greedy: bool = typer.Option(False, "--greedy", help="Act with the mode instead of sampling."),
    seed: int = typer.Option(0),
    json_out: Path = typer.Option(None, "--json", help="Write the returns here."),
    devices: str = DEVICES,
) -> None:
    from rewire.hades.multitask import load_discrete_dataset, run_multitask

    learner = load_discrete_dataset(datasets[0]).learner.with_arch(arch)
    result = run_multitask(datasets, learner, seed, inits, episodes, greedy, slots, devices)
    for env, row in result["tasks"].items():
        console.print(
            f"{env:>24}: multi-task median {row['multitask_median']:.1f}, single-task "
            f"{row['single_task_median']:.1f}, random {row['random_return']:.1f}: "
            f"normalised {row['normalised']:.2f}"
        )
    if json_out is not None:
        write_json(json_out, result)
        console.print(f"wrote {json_out}")


@app.command("digits", help="Distil scikit-learn digits into a few synthetic images per class.")
@friendly_errors
def digits(
    images_per_class: int = typer.Option(1, min=1, help="Synthetic images per class."),
    generations: int = typer.Option(150, min=0),
    popsize: int = typer.Option(64, min=2),
    seed: int = typer.Option(0),
    json_out: Path = typer.Option(None, "--json", help="Write {images_per_class, test_accuracy, ...} here."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    from rewire.hades.digits import DigitsConfig, distill_digits
    from rewire.report import plot_digits

    config = DigitsConfig(images_per_class=images_per_class, generations=generations)
    config = replace(config, es=replace(config.es, popsize=popsize))
    result = distill_digits(config, seed, quiet)
    console.print(
        f"test accuracy {result['test_accuracy']:.3f} with {images_per_class} image(s) per class "
        f"(class means {result['baselines']['class_means']:.3f}, "
        f"random real images {result['baselines']['random_real']:.3f})"
    )
    if json_out is not None:
        write_json(json_out, result | {"config": config, "seed": seed})
        plot_digits(result["images"], images_per_class, json_out.with_suffix(".png"))
