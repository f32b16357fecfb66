"""The `rewire` command line: a thin shell over the library (no algorithm logic here)."""

from __future__ import annotations

import sys
from typing import Any

JOB_FLAGS = ("--coordinator", "--num-processes", "--process-id")


def job_flags(argv: list[str]) -> dict[str, str]:
    """The values of `JOB_FLAGS` in `argv` (`--flag value` or `--flag=value`)."""
    found = {}
    for i, arg in enumerate(argv):
        name, sep, value = arg.partition("=")
        if name in JOB_FLAGS:
            found[name] = value if sep else (argv[i + 1] if i + 1 < len(argv) else "")
    return found


def main() -> None:
    from rewire.hosts import initialize
    from rewire.jaxcache import enable_compilation_cache

    # join the job before anything starts JAX's backend (gymnax's import does)
    flags = job_flags(sys.argv[1:])
    try:
        n, i = (int(flags[k]) if k in flags else None for k in ("--num-processes", "--process-id"))
        initialize(flags.get("--coordinator"), n, i)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    enable_compilation_cache()
    from rewire.cli.commands import app

    app()


def __getattr__(name: str) -> Any:
    if name == "app":  # `from rewire.cli import app`
        from rewire.cli.commands import app

        return app
    raise AttributeError(f"module 'rewire.cli' has no attribute {name!r}")
