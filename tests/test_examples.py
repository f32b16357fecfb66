"""Every script in examples/ runs, at a tiny size, on the public API alone, and stays within 40 lines."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# the size argument of each example at its tiny size
TINY = {
    "unlearn_own_mdp.py": "40",
    "hades_own_env.py": "3",
    "amf_own_family.py": "4",
    "edit_own_classifier.py": "500",
    "calql_own_env.py": "300",
}


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_example_is_short_uses_the_public_api_and_runs(name, tmp_path):
    path = EXAMPLES / name
    source = path.read_text()
    assert len(source.splitlines()) <= 40
    imported = [
        alias.name if isinstance(node, ast.Import) else node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [None])
    ]
    public = {"rewire", "rewire.calql", "rewire.hades", "rewire.amf", "rewire.unlearn", "rewire.edit"}
    assert all(m in public or not m.startswith("rewire") for m in imported), imported
    proc = subprocess.run(
        [sys.executable, str(path), TINY[name], str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out").is_dir()
