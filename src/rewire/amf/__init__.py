"""AMF, active multi-task fine-tuning (Bagatella et al.): a pretrained multi-task policy spends a budget of
expert demonstrations on the tasks where they are expected to tell it most about the expert (greedy
information gain under a GP or a neural model with a Bayesian last layer).

High level: `fit(family, Config(...), pretrain_tasks=...)` on a `TaskFamily` of your own (a task set, a
step function and an expert), on the built-in `reach2d`/`arm2d`, or on Meta-World's manipulation tasks
(`MetaWorldFamily`, simulated on the host; AMF-NN), returns an `AMFResult`. Core: `AMF`
(pure `init` and `round`, jittable and vmappable over seeds, settings and selectors)."""

from rewire.amf.core import AMF, MODELS, SELECTORS
from rewire.amf.core import AMFConfig as Config
from rewire.amf.models import GPSettings, NNSettings
from rewire.amf.run import AMFResult, AMFRun, fit, resume
from rewire.envs.metaworld import MetaWorldFamily, MetaWorldSettings
from rewire.envs.multitask import TaskFamily, make_multitask

load = AMFResult.load
"""Open an AMF run directory: `load(directory) -> AMFResult`."""

__all__ = [
    "AMF",
    "AMFResult",
    "AMFRun",
    "Config",
    "GPSettings",
    "MODELS",
    "MetaWorldFamily",
    "MetaWorldSettings",
    "NNSettings",
    "SELECTORS",
    "TaskFamily",
    "fit",
    "load",
    "make_multitask",
    "resume",
]
