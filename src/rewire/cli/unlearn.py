"""`rewire unlearn simulate | delete | verify`."""

from __future__ import annotations

from pathlib import Path

import typer

from rewire.cli.common import (
    COORDINATOR,
    DEVICES,
    NUM_PROCESSES,
    PROCESS_ID,
    QUIET,
    TENSORBOARD,
    command_group,
    console,
    friendly_errors,
    resume_overrides,
)
from rewire.runs import create_run_dir, write_json

app = command_group()


def _rho(value: float) -> float | None:
    return None if value == 0 else value


SEED_HELP = (
    "Drives the MDP, the users and the learner's key chain. Default: fresh OS entropy, kept nowhere. A seed "
    "you give regenerates every draw, so keep it apart from the state directory (README)."
)


@app.command("simulate", help="Run the stable learner for T users; the state directory is resumable.")
@friendly_errors
def simulate(
    ctx: typer.Context,
    mdp: str = typer.Option("random", help="random, riverswim or grid."),
    states: int = typer.Option(4, help="States (grid: a square number, e.g. 9)."),
    actions: int = typer.Option(None, help="Actions (random only; riverswim has 2, grid 4)."),
    horizon: int = typer.Option(4, help="Steps per episode (H)."),
    episodes: int = typer.Option(1000, help="Users T, one episode each."),
    rho: float = typer.Option(0.1, help="TV-stability level in (0, 1); 0 runs non-private UCBVI."),
    bonus: str = typer.Option("practical", help="theory (c_beta = 1) or practical (see README)."),
    mdp_file: Path = typer.Option(
        None,
        help="Your own MDP as NPZ: transitions (H,S,A,S), reward_mean (H,S,A), initial (S,); or (S,A,S) and "
        "(S,A) with an integer horizon. Replaces --mdp, --states, --actions and --horizon.",
    ),
    seed: int = typer.Option(None, help=SEED_HELP),
    out: Path = typer.Option(Path("runs"), help="Parent folder of the state directory."),
    resume: Path = typer.Option(None, help="Continue the state directory of an interrupted run."),
    checkpoint_every: float = typer.Option(0.0, min=0, help="Seconds between checkpoints (0: every 1/20)."),
    quiet: bool = QUIET,
    tensorboard: bool = TENSORBOARD,
) -> None:
    from rewire.unlearn.mdp import read_mdp
    from rewire.unlearn.session import Session, Setup

    if resume is not None:
        resume_overrides(ctx)
        directory, session = resume, Session.open(resume)
        console.print(f"resuming {directory} after episode {session.t_now}")
    else:
        setup = Setup(mdp, states, actions, horizon, episodes, _rho(rho), bonus)
        session = Session.create(setup, seed, mdp=None if mdp_file is None else read_mdp(mdp_file))
        directory = create_run_dir(out, "unlearn", session.save)
    session.loop(directory, quiet, checkpoint_every, tensorboard).run()
    session.write_reports(directory)
    cumulative = session.cumulative_regret()
    console.print(
        f"{directory}: {session.t_now} episodes, cumulative regret {cumulative[-1]:.1f}; "
        f"delete a user with `rewire unlearn delete {directory} --user ID`"
    )


@app.command("delete", help="Delete users from a state directory, exactly; committed atomically.")
@friendly_errors
def delete(
    state_dir: Path = typer.Argument(..., help="A directory written by `rewire unlearn simulate`."),
    user: list[int] = typer.Option(..., help="User id (1..T, the episode it played); repeat for several."),
) -> None:
    from rewire.unlearn.session import Session

    session = Session.open(state_dir)
    reports = session.delete(user, state_dir)
    for r in reports:
        console.print(
            f"user {r['user']}: {r['nodes_checked']} nodes checked, {r['accepted']} kept, "
            f"replayed {r['recomputed']} of {r['episodes_played']} episodes "
            f"(expected {r['predicted_recomputed']:.1f}), {r['wall_s']:.2f} s (printed, not stored)"
        )
    console.print(f"replay audit: {'passed' if session.audit() else 'FAILED'}; state saved in {state_dir}")


@app.command("export", help="Write every array a state directory holds, by name, to one NPZ file.")
@friendly_errors
def export(
    state_dir: Path = typer.Argument(..., help="A directory written by `rewire unlearn simulate`."),
    out: Path = typer.Option(..., "--out", help="The .npz file to write."),
) -> None:
    from rewire.store import write_npz
    from rewire.unlearn.session import export_arrays

    arrays = export_arrays(state_dir)
    write_npz(out, arrays)
    console.print(f"wrote {out}: {len(arrays)} arrays")
    for name, value in arrays.items():
        console.print(f"  {name}: {value.dtype}{list(value.shape)}", soft_wrap=True)


@app.command("verify", help="Two-sample tests: learn-then-delete against retraining without the user.")
@friendly_errors
def verify(
    mdp: str = typer.Option("random", help="random, riverswim or grid."),
    states: int = typer.Option(2, help="States."),
    actions: int = typer.Option(None, help="Actions (random only)."),
    horizon: int = typer.Option(2, help="Steps per episode."),
    episodes: int = typer.Option(16, help="Users T (at least 8)."),
    rho: float = typer.Option(0.9, help="TV-stability level in (0, 1); near 1 gives the tests most power."),
    bonus: str = typer.Option("practical", help="theory or practical."),
    trials: int = typer.Option(2000, help="Learner seeds per arm."),
    alpha: float = typer.Option(0.01, help="Significance level (Holm-corrected over all statistics)."),
    seed: int = typer.Option(0, help="Fixes the data set (MDP and users) and the learners' seeds."),
    json_out: Path = typer.Option(None, "--json", help="Write the result here."),
    quiet: bool = QUIET,
    devices: str = DEVICES,
    coordinator: str = COORDINATOR,
    num_processes: int = NUM_PROCESSES,
    process_id: int = PROCESS_ID,
) -> None:
    from rewire.unlearn.session import Setup
    from rewire.unlearn.verify import Verifier

    setup = Setup(mdp, states, actions, horizon, episodes, _rho(rho), bonus)
    result = Verifier(setup, trials, alpha, seed, devices).run(quiet)
    if json_out is not None:
        write_json(json_out, result)
        console.print(f"wrote {json_out}")
    exact, controls = result["exact"], result["controls"]
    console.print(
        f"exact unlearning: min p {exact['min_p']:.3g}, Holm-adjusted {exact['min_adjusted_p']:.3g} -> "
        f"{'PASSED' if exact['passed'] else 'FAILED'} at alpha {alpha}"
    )
    for name, c in controls.items():
        console.print(
            f"control {name}: Holm-adjusted min p {c['min_adjusted_p']:.3g} -> "
            f"{'rejected' if c['rejected'] else 'NOT rejected'}"
        )
