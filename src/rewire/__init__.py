"""rewire: change what a trained agent or network knows after training.

Five systems, one shape (a frozen `Config`, a pure jittable core, a `fit` that runs it through the shared
run loop and returns a `Result`): `rewire.calql`, `rewire.hades`, `rewire.amf`, `rewire.unlearn` and
`rewire.edit`; `rewire.data` reads and builds offline datasets, and `rewire.evaluate` runs any trained
policy. The namespaces load on first use, so `import rewire` stays light."""

import importlib
from typing import Any

__version__ = "0.1.0"
SYSTEMS = ("calql", "hades", "amf", "unlearn", "edit")
__all__ = [*SYSTEMS, "data", "evaluate"]


def __getattr__(name: str) -> Any:
    if name in SYSTEMS or name == "data":
        return importlib.import_module(f"rewire.{name}")
    if name == "evaluate":
        from rewire.policy import evaluate

        return evaluate
    raise AttributeError(f"module 'rewire' has no attribute {name!r}")
