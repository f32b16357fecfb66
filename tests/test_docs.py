"""The API reference builds in strict mode (a broken reference or a public symbol without a docstring
fails it), as `make docs` builds it."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_strictly(tmp_path):
    env = os.environ | {"NO_MKDOCS_2_WARNING": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    page = (tmp_path / "site" / "api" / "calql" / "index.html").read_text()
    assert 'id="rewire.calql.fit"' in page and 'id="rewire.calql.CalQLPolicy"' in page


def test_the_docstring_check_names_what_is_missing(monkeypatch):
    spec = importlib.util.spec_from_file_location("hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    monkeypatch.chdir(ROOT)
    assert hooks.undocumented() == []
    real = hooks.griffe.load

    def without_fit_docstring(*args, **kwargs):
        package = real(*args, **kwargs)
        package["calql"]["fit"].final_target.docstring = None
        return package

    monkeypatch.setattr(hooks.griffe, "load", without_fit_docstring)
    assert hooks.undocumented() == ["rewire.calql.fit"]
