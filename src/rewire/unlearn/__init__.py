"""Exact unlearning in online tabular RL (Nguyen-Tang & Arora): a rho-TV-stable UCBVI learner on a Gaussian
binary tree, and deletion of a user by coupling the tree's nodes, so that the learner after a deletion has
the law of one that never saw the user.

High level: `fit(mdp, Config(...), out=...)` returns a `Session` whose `delete(users)` is exact and
atomic on disk; `load(directory)` reopens one. Core: `StableUCBVI` (pure `init`, `learn`, `delete`,
`audit` over a `LearnerState`, jittable and vmappable in 64-bit mode)."""

from rewire.unlearn.learner import LearnerConfig, LearnerState, StableUCBVI
from rewire.unlearn.mdp import TabularMDP, optimal_values, read_mdp
from rewire.unlearn.session import Session, fit
from rewire.unlearn.session import Setup as Config
from rewire.unlearn.verify import Verifier

load = Session.open
"""Reopen a state directory: `load(directory) -> Session` (deletions then commit to it)."""

__all__ = [
    "Config",
    "LearnerConfig",
    "LearnerState",
    "Session",
    "StableUCBVI",
    "TabularMDP",
    "Verifier",
    "fit",
    "load",
    "optimal_values",
    "read_mdp",
]
