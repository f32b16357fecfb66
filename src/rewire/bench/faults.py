"""Crash safety, measured: a long-running command is killed with SIGKILL at a random moment, resumed with
`--resume`, and must end with the same files as a run of the same seed that was never stopped (README,
"Reliability"). The test suite runs one kill per system; `benchmarks/kill_resume.py` runs many."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# A tiny run of each of the five long-running commands; each checkpoints after every step.
SYSTEMS: dict[str, list[str]] = {
    "calql": [
        "calql", "train", "--offline-steps", "300", "--online-steps", "150", "--seeds", "1",
        "--eval-every", "50", "--hidden", "16,16", "--batch-size", "32", "--checkpoint-every", "0",
    ],
    "hades": ["hades", "distill", "--generations", "12", "--popsize", "8", "--checkpoint-every", "0"],
    "amf": ["amf", "run", "--tasks", "8", "--budget", "8", "--batch", "2", "--checkpoint-every", "0"],
    "unlearn": [
        "unlearn", "simulate", "--states", "2", "--horizon", "2", "--episodes", "96", "--rho", "0.3",
        "--seed", "3", "--checkpoint-every", "0",
    ],
    "edit": ["edit", "train", "--world", "shift", "--steps", "10000", "--checkpoint-every", "0"],
}  # fmt: skip
SKIPPED = (".png",)  # pictures: not compared byte for byte
TIMING = "timing"  # the results' wall-clock section differs between any two runs


def command(args: list[str]) -> list[str]:
    return [sys.executable, "-c", "from rewire.cli import main; main()", *args, "--quiet"]


def run_dir(out: Path) -> Path | None:
    """The run directory a command made under `out` (staging directories are hidden)."""
    made = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(made) > 1:
        raise RuntimeError(f"{out}: expected one run directory, found {[p.name for p in made]}")
    return made[0] if made else None


def _strip_timing(value: object) -> object:
    if isinstance(value, dict):
        return {k: _strip_timing(v) for k, v in value.items() if k != TIMING}
    if isinstance(value, list):
        return [_strip_timing(v) for v in value]
    return value


def fingerprint(directory: Path) -> dict[str, object]:
    """What must be identical between two runs: every file's bytes, JSON files without their timing section
    and rewire files by their arrays and metadata (PNG pictures are left out)."""
    out: dict[str, object] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix in SKIPPED or not path.is_file():
            continue
        if path.suffix == ".json":
            out[path.name] = _strip_timing(json.loads(path.read_text()))
        else:
            out[path.name] = path.read_bytes()
    return out


def differences(a: dict[str, object], b: dict[str, object]) -> list[str]:
    return sorted(name for name in set(a) | set(b) if a.get(name) != b.get(name))


@dataclass
class Reference:
    """An uninterrupted run: its directory and files, how long it took, and when its directory appeared."""

    directory: Path
    files: dict[str, object]
    seconds: float
    directory_at: float


def reference(system: str, work: Path) -> Reference:
    out = Path(tempfile.mkdtemp(prefix=f"{system}-reference-", dir=work))
    start = time.monotonic()
    proc = subprocess.Popen(command(SYSTEMS[system] + ["--out", str(out)]), stderr=subprocess.PIPE)
    directory_at = None
    while proc.poll() is None:
        if directory_at is None and run_dir(out) is not None:
            directory_at = time.monotonic() - start
        time.sleep(0.02)
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{system}: the reference run failed: {proc.stderr.read().decode()[-2000:]}")
    directory = run_dir(out)
    return Reference(directory, fingerprint(directory), seconds, directory_at or seconds)


@dataclass
class Trial:
    """One kill: when it came (seconds after the run directory appeared), and whether the resumed run's
    files were identical to the reference's (else the names of the files that differ)."""

    delay: float
    identical: bool
    differing: list[str]


def kill_and_resume(system: str, ref: Reference, work: Path, rng: random.Random) -> Trial:
    """Start the command, SIGKILL it at a moment drawn uniformly over the part of the reference run after
    its run directory appeared, resume it to the end, and compare the files with the reference."""
    for _ in range(20):
        delay = rng.uniform(0.0, max(0.0, ref.seconds - ref.directory_at))
        out = Path(tempfile.mkdtemp(prefix=f"{system}-killed-", dir=work))
        proc = subprocess.Popen(command(SYSTEMS[system] + ["--out", str(out)]), stderr=subprocess.DEVNULL)
        while proc.poll() is None and run_dir(out) is None:
            time.sleep(0.01)
        deadline = time.monotonic() + delay
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        if proc.poll() is not None:
            continue  # it finished before the kill came: draw another moment
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        directory = run_dir(out)
        resume = [*SYSTEMS[system][:2], "--resume", str(directory), "--checkpoint-every", "0"]
        done = subprocess.run(command(resume), capture_output=True, text=True)
        if done.returncode != 0:
            return Trial(delay, False, [f"resume failed: {done.stderr.strip()[-500:]}"])
        differing = differences(ref.files, fingerprint(directory))
        return Trial(delay, not differing, differing)
    raise RuntimeError(f"{system}: the run finished before every one of 20 kill moments")


def kill_resume_benchmark(kills: int, systems: list[str], seed: int | None = None) -> dict:
    """`kills` SIGKILLs per system at random moments: {system: {"kills", "identical", ...}}."""
    unknown = sorted(set(systems) - set(SYSTEMS))
    if unknown or kills < 1:
        raise ValueError(f"need kills >= 1 and systems from {sorted(SYSTEMS)}, got {kills} and {unknown}")
    rng = random.Random(seed)
    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="rewire-kill-") as tmp:
        for system in systems:
            ref = reference(system, Path(tmp))
            trials = [kill_and_resume(system, ref, Path(tmp), rng) for _ in range(kills)]
            result[system] = {
                "kills": len(trials),
                "identical": sum(t.identical for t in trials),
                "reference_seconds": ref.seconds,
                "kill_delays_s": [round(t.delay, 3) for t in trials],
                "differing": [t.differing for t in trials if not t.identical],
            }
    return result
