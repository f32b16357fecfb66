"""RL for neural model editing: MaskWorld and ShiftWorld, where an agent edits a pretrained classifier's
weights to forget a class (or a random subset) or to reduce a bias, while keeping its accuracy.

High level: `fit(Problem(model, params, layer, retain=..., forget=...), Config(world="shift"))` on a flax
classifier of your own returns an `EditResult` (`edited_params`, `apply(params)`). Core: `EditWorld` (pure
`reset` and `step`, jittable and vmappable), with `PPO` and `cem` as its agents; `MaskWorld` and
`ShiftWorld` are Gymnasium environments over it."""

from rewire.edit.agents import PPO, CEMConfig, PPOConfig, cem
from rewire.edit.problem import EditResult, Problem, fit, get_layer, set_layer
from rewire.edit.world import BiasData, EditWorld, MaskWorld, ShiftWorld, UnlearnData, WorldParams
from rewire.edit.world import WorldConfig as Config

load = EditResult.load
"""Open an editor's run directory: `load(directory) -> EditResult`."""

__all__ = [
    "BiasData",
    "CEMConfig",
    "Config",
    "EditResult",
    "EditWorld",
    "MaskWorld",
    "PPO",
    "PPOConfig",
    "Problem",
    "ShiftWorld",
    "UnlearnData",
    "WorldParams",
    "cem",
    "fit",
    "get_layer",
    "load",
    "set_layer",
]
