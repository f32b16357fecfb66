"""`rewire bench hades`: HaDES against neuroevolution at equal environment steps, and transfer to other
architectures and inner-loop hyper-parameters."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import jax
import numpy as np

from rewire.hades.core import (
    HadesConfig,
    default_config,
    evaluate_policies,
    policy_for,
)
from rewire.hades.run import EVAL_INITS, build_hades, build_neuroevolution, save_dataset
from rewire.mesh import Devices
from rewire.runs import versions

NE_SIGMA = 0.03  # the reference implementation's neuroevolution sigma on weights (Lupu et al. 2024)


def generalisation_archs(learner) -> dict[str, str]:
    """Other inner learners to train on a distilled dataset: widths, depth, activation, lr and steps."""
    other_act = "relu" if learner.activation == "tanh" else "tanh"
    return {
        "width32": "width=32",
        "width256": "width=256",
        "depth3": "depth=3",
        other_act: f"act={other_act}",
        "lr_x0.3": f"lr={learner.lr * 0.3:g}",
        "lr_x3": f"lr={learner.lr * 3:g}",
        "steps_x0.5": f"steps={max(1, learner.steps // 2)}",
        "steps_x2": f"steps={learner.steps * 2}",
    }


def parameter_count(tree) -> int:
    return int(sum(np.size(x) for x in jax.tree.leaves(tree)))


def bench_config(
    env: str, size: int | None, variant: str, generations: int | None, popsize: int | None
) -> HadesConfig:
    base = default_config(env)
    return replace(
        base,
        size=size or base.size,
        variant=variant,
        generations=base.generations if generations is None else generations,
        es=replace(base.es, popsize=popsize or base.es.popsize),
    )


def run_hades_benchmark(
    env: str = "CartPole-v1",
    size: int | None = None,
    variant: str = "R",
    generations: int | None = None,
    popsize: int | None = None,
    seed: int = 0,
    quiet: bool = False,
    out_dir: Path | None = None,
    devices: Devices = None,
) -> dict:
    """Distil a dataset, evaluate fresh policies on it, run the baseline at equal env steps, and test
    transfer. With `out_dir`, each run's checkpoints and metrics go to `out_dir/<kind>/` and the dataset
    (NPZ) to `out_dir/dataset.npz`."""
    config = bench_config(env, size, variant, generations, popsize)
    hades = build_hades(config, seed, devices=devices)
    hades_time = hades.loop(out_dir / "hades" if out_dir else None, quiet).run()
    dataset = jax.device_get(hades.evolution.mean())
    if out_dir is not None:
        save_dataset(hades, out_dir / "dataset.npz")
    ev = hades.evaluate_mean()

    ne_config = replace(config, es=replace(config.es, sigma=NE_SIGMA))
    ne = build_neuroevolution(ne_config, seed, devices=devices)
    ne_time = ne.loop(out_dir / "neuroevolution" if out_dir else None, quiet).run()
    # One policy, evaluated EVAL_INITS times (fresh episodes each) so both medians are over 10 numbers.
    ne_mean = jax.device_get(ne.evolution.mean())
    ne_params = jax.tree.map(lambda x: np.repeat(x[None], EVAL_INITS, 0), ne_mean)
    module = policy_for(config, ne.task)
    ne_returns = evaluate_policies(
        ne.task, module, ne_params, ne.obs_mean, ne.obs_std, jax.random.fold_in(hades.evaluation_key, 1)
    )

    generalisation, per_arch = {}, {}
    for name, spec in generalisation_archs(config.learner).items():
        out = hades.evaluate_mean(config.learner.with_arch(spec))
        generalisation[name] = float(np.median(out["returns"]))
        per_arch[name] = {"spec": spec, "returns": out["returns"]}

    return {
        "config": config,
        "versions": versions(),
        "seed": seed,
        "env": env,
        "size": config.size,
        "variant": variant,
        "return_median": float(np.median(ev["returns"])),
        "return_per_init": ev["returns"],
        "bc_loss_per_init": ev["bc_loss"],
        "neuroevolution": {
            "return_median": float(np.median(ne_returns)),
            "return_per_eval": ne_returns,
            "env_steps": ne.env_steps,
            "sigma": NE_SIGMA,
            "parameters": parameter_count(ne_mean),
            "generations_per_s": ne_time.rate,
        },
        "env_steps": hades.env_steps,
        "dataset_parameters": parameter_count(dataset),
        "generalisation": generalisation,
        "generalisation_detail": per_arch,
        "generations_per_s": hades_time.rate,
        "history": {"hades": hades.evolution.history, "neuroevolution": ne.evolution.history},
        "env_steps_per_generation": config.env_steps_per_generation(hades.task),
        "dataset": dataset,
        "obs_mean": hades.obs_mean,
        "obs_std": hades.obs_std,
    }
