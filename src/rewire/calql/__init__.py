"""Cal-QL (Nakamoto et al. 2023) and CQL on SAC: conservative offline pre-training, then online
fine-tuning. Cal-QL is CQL with one switch: the conservative regulariser's policy values are floored at
the Monte-Carlo return of the data (`cql.losses`, `calibrate`), so the critic starts fine-tuning calibrated.

High level: `fit(data, env, Config(...))` on your own data (`rewire.data.from_arrays`, or a D4RL/Minari
file) and env (a Gymnasium id or instance with a Box action space, or a gymnax-style JAX env) returns a
`CalQLResult`; `result.policy(i)` is a `CalQLPolicy` with `act(obs)` in the env's units. Core: `cql.init`,
`cql.update`, `cql.act` (pure and jittable; `Finetuner` vmaps them over methods x seeds); the online
phase's episode labelling and buffer insertion, `online` (jittable: on a JAX env the whole online phase
runs on device, `Config(online_loop=...)`). Named settings: `presets`."""

from rewire.calql import cql, online, presets
from rewire.calql.cql import AgentState, CQLConfig
from rewire.calql.run import CalQLPolicy, CalQLResult, fit, resume
from rewire.calql.trainer import METHODS, DivergedCritic, Finetuner, load_run
from rewire.calql.trainer import FinetuneConfig as Config

load = CalQLResult.load
"""Open a Cal-QL run directory: `load(directory) -> CalQLResult`."""

__all__ = [
    "METHODS",
    "AgentState",
    "CQLConfig",
    "CalQLPolicy",
    "CalQLResult",
    "Config",
    "DivergedCritic",
    "Finetuner",
    "cql",
    "fit",
    "load",
    "load_run",
    "online",
    "presets",
    "resume",
]
