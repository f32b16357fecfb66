"""HaDES (Lupu et al., ICLR 2024): evolution strategies search for a tiny synthetic dataset of state-action
pairs such that a freshly initialised policy behaviour-cloned on it earns high return; the same ES on the
policy weights is the neuroevolution baseline. Digits distillation uses the same machinery.

High level: `fit(env, Config(...), policy=...)` on a gymnax or Brax id, a gymnax-style env object or an
`(env, params)` pair, with the config's MLP or any flax module, returns a `HadesResult`. Core: the score
(`make_hades_score`) and one ES generation (`rewire.es.make_generation`), pure and jittable; `Evolution`
runs them through the shared run loop. Presets: `default_config(env, "cpu" | "paper")`; zero-shot
multi-task agents from per-environment datasets: `run_multitask(paths)`."""

from rewire.envs.control import ControlTask, task_from_env
from rewire.es import ESConfig
from rewire.hades.bc import Learner
from rewire.hades.core import (
    LEARNER_PRESETS,
    PRESETS,
    default_config,
    evaluate_dataset,
    learner_preset,
    load_task_dataset,
    make_hades_score,
    make_neuroevolution_score,
    policy_for,
)
from rewire.hades.core import HadesConfig as Config
from rewire.hades.dataset import load_synthetic, save_synthetic
from rewire.hades.evolution import Evolution
from rewire.hades.multitask import Layout, run_multitask
from rewire.hades.run import HadesResult, as_task, build_hades, build_neuroevolution, fit, resume

load = HadesResult.load
"""Open a HaDES run directory: `load(directory) -> HadesResult`."""

__all__ = [
    "LEARNER_PRESETS",
    "PRESETS",
    "Config",
    "ControlTask",
    "ESConfig",
    "Evolution",
    "HadesResult",
    "Layout",
    "Learner",
    "as_task",
    "build_hades",
    "build_neuroevolution",
    "default_config",
    "evaluate_dataset",
    "fit",
    "learner_preset",
    "load",
    "load_task_dataset",
    "load_synthetic",
    "make_hades_score",
    "make_neuroevolution_score",
    "policy_for",
    "resume",
    "run_multitask",
    "save_synthetic",
    "task_from_env",
]
