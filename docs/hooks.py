"""mkdocs hook: the build fails if a public symbol of rewire's namespaces has no docstring (so the API
reference documents everything the namespaces export)."""

from __future__ import annotations

import griffe
from mkdocs.exceptions import PluginError

NAMESPACES = ("rewire.calql", "rewire.hades", "rewire.amf", "rewire.unlearn", "rewire.edit", "rewire.data")


def undocumented() -> list[str]:
    """Every `__all__` member of the namespaces whose object (through re-exports) has no docstring."""
    package = griffe.load("rewire", search_paths=["src"], resolve_aliases=True)
    missing = []
    for name in NAMESPACES:
        module = package[name.removeprefix("rewire.")]
        for member in module.exports or []:
            obj = module[member]
            target = obj.final_target if obj.is_alias else obj
            if not (target.docstring and target.docstring.value.strip()):
                missing.append(f"{name}.{member}")
    return missing


def on_pre_build(config) -> None:
    missing = undocumented()
    if missing:
        raise PluginError(f"public symbols without a docstring: {', '.join(missing)}")
