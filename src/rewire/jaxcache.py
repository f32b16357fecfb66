"""JAX's persistent compilation cache: compile time dominates small runs on a 2-core CPU."""

from __future__ import annotations

import os
from pathlib import Path


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path:
    """Point JAX at an on-disk compilation cache (``$REWIRE_JAX_CACHE`` or ``~/.cache/rewire/jax``)."""
    import jax

    cache = Path(path or os.environ.get("REWIRE_JAX_CACHE") or Path.home() / ".cache" / "rewire" / "jax")
    cache.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return cache
