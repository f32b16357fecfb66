"""`rewire demo`: a short run of every system against its baseline, collected into one report.

Each system contributes one section function: (run_dir, seed, quiet) -> (summary dict, report Section).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rewire.report import Section, reached, versions_line, write_report
from rewire.runs import create_run_dir, record_run, versions, write_json

SectionFn = Callable[[Path, int, bool], tuple[dict, Section]]


def calql_section(run_dir: Path, seed: int, quiet: bool) -> tuple[dict, Section]:
    from rewire.bench.calql import run_calql_benchmark
    from rewire.report import plot_calql

    result, _ = run_calql_benchmark("demo", seed=seed, layout="umaze", quiet=quiet, throughput=False)
    images = [p.name for p in plot_calql(result["curves"], list(result["methods"]), run_dir)]
    m = result["methods"]
    cols = [
        "method",
        "success at switch",
        "dip depth",
        "cumulative regret",
        "final success",
        "Q - MC at switch",
        "updates/s",
    ]
    rows = [
        [
            name,
            v["success_at_switch"],
            v["dip_depth"],
            v["cumulative_regret"],
            v["final_success"],
            v["q_minus_mc_at_switch"],
            v["updates_per_s"],
        ]
        for name, v in m.items()
    ]
    cal, base = m["calql"], m["cql"]
    seeds = len(cal["per_seed"]["dip_depth"])
    if cal["dip_depth"] < base["dip_depth"] and cal["cumulative_regret"] < base["cumulative_regret"]:
        meaning = (
            "calibrating the conservative Q-values to the data's Monte-Carlo returns kept the pre-trained "
            "policy from being unlearned when online data arrived"
        )
    else:
        meaning = "in this short run calibration did not show its advantage; see `rewire bench calql`"
    sentence = (
        f"Online dip (success lost in the first 20% of fine-tuning): Cal-QL {cal['dip_depth']:.2f}, "
        f"CQL {base['dip_depth']:.2f}; cumulative regret: Cal-QL {cal['cumulative_regret']:.2f}, "
        f"CQL {base['cumulative_regret']:.2f} (medians of {seeds} seeds): {meaning}."
    )
    return result, Section(
        "Cal-QL: offline pre-training, then online fine-tuning (U-maze)", sentence, cols, rows, images
    )


def hades_section(run_dir: Path, seed: int, quiet: bool) -> tuple[dict, Section]:
    from rewire.bench.hades import run_hades_benchmark
    from rewire.report import plot_hades

    result = run_hades_benchmark("CartPole-v1", size=4, generations=60, seed=seed, quiet=quiet)
    images = [p.name for p in plot_hades(result, run_dir)]
    ne = result["neuroevolution"]
    cols = ["method", "parameters evolved", "env steps", "return (median of 10)", "generations/s"]
    rows = [
        [
            "HaDES-R, 4 pairs",
            result["evolved_parameters"],
            result["env_steps"],
            result["return_median"],
            result["generations_per_s"],
        ],
        ["neuroevolution", ne["parameters"], ne["env_steps"], ne["return_median"], ne["generations_per_s"]],
    ]
    rows += [
        [f"same dataset, {name} learner", "", "", value, ""]
        for name, value in result["generalisation"].items()
    ]
    gen = result["generalisation"]
    transfer = sum(v >= 0.9 * result["return_median"] for v in gen.values())
    sentence = (
        f"Four synthetic CartPole states with their labels train fresh policies to a median return of "
        f"{result['return_median']:.0f} (500 is the maximum) without any expert data; evolving the "
        f"{ne['parameters']} policy weights directly reaches {ne['return_median']:.0f} with the same "
        f"environment steps. {transfer} of {len(gen)} other learners (widths, depth, activation, learning "
        f"rate, steps) trained on the same 4 pairs reach at least 90% of that return."
    )
    keep = {k: v for k, v in result.items() if k not in ("history", "dataset", "obs_mean", "obs_std")}
    return keep, Section(
        "HaDES: behaviour distillation into 4 state-action pairs (CartPole)", sentence, cols, rows, images
    )


def amf_section(run_dir: Path, seed: int, quiet: bool) -> tuple[dict, Section]:
    from rewire.bench.amf import run_amf_benchmark
    from rewire.report import plot_amf

    result = run_amf_benchmark(seeds=3, seed=seed, models=("gp",), quiet=quiet)
    images = [p.name for p in plot_amf(result, run_dir)]
    cols = [
        "pretraining",
        "selector",
        "success at 0 demos",
        "success at 8 demos",
        "demos to 0.9",
        "share of demos on unseen tasks",
    ]
    rows = []
    for setting, by_model in result["settings"].items():
        for selector, c in by_model["gp"].items():
            at8 = c["success_median"][c["demos"].index(8)] if 8 in c["demos"] else None
            rows.append(
                [
                    setting,
                    selector,
                    c["success_median"][0],
                    at8,
                    reached(c["demos_to_0.9"]),
                    c["unseen_task_fraction"] if setting == "mismatch" else "",
                ]
            )
    mis = result["settings"]["mismatch"]["gp"]
    crit = result["criteria"]["gp"]
    sentence = (
        f"A GP policy pretrained on half of 24 reaching tasks reaches 0.9 mean success after "
        f"{reached(mis['amf']['demos_to_0.9'])} demonstrations chosen by expected information gain, against "
        f"{reached(mis['uniform']['demos_to_0.9'])} for round-robin and "
        f"{reached(mis['random']['demos_to_0.9'])} for random "
        f"tasks (medians of 3 seeds); AMF spends {mis['amf']['unseen_task_fraction']:.0%} of its demos on "
        f"the tasks pretraining never saw. On the control (pretraining spread over the whole circle) AMF is "
        f"{'never below' if crit['control_not_worse'] else 'at times below'} uniform."
    )
    return result, Section(
        "AMF: active multi-task fine-tuning (GP policy, 2-D reaching)", sentence, cols, rows, images
    )


UNLEARN_COLUMNS = {  # the bound is the uniform-drawn users' claim; the oldest user may exceed it
    "T": "episodes",
    "rho": "rho",
    "mean fraction replayed, uniform user": "recompute_fraction",
    "mean fraction replayed, oldest user": "oldest_fraction",
    "rho * sqrt(ln T)": "rho_sqrt_ln_t",
    "uniform-user mean <= rho * sqrt(ln T)": "within_bound",
}


def unlearn_table(rows: list[dict]) -> tuple[list[str], list[list[object]]]:
    """The demo's deletion-cost table: each column says which users it is about."""
    return list(UNLEARN_COLUMNS), [[r[key] for key in UNLEARN_COLUMNS.values()] for r in rows]


def unlearn_section(run_dir: Path, seed: int, quiet: bool) -> tuple[dict, Section]:
    from rewire.bench.unlearn import run_unlearn_benchmark
    from rewire.report import plot_unlearn
    from rewire.unlearn.session import Setup
    from rewire.unlearn.verify import Verifier

    result = run_unlearn_benchmark(episodes=(100, 1000), seeds=2, deletions=16, seed=seed, quiet=quiet)
    verify = Verifier(Setup(states=2, actions=2, horizon=2, episodes=16, rho=0.9), 2000, seed=seed).run(quiet)
    result["verification"] = verify
    images = [p.name for p in plot_unlearn(result, run_dir)]
    cols, rows = unlearn_table(result["rows"])
    exact, controls = verify["exact"], verify["controls"]
    regret = {
        (c["rho"], c["bonus"]): c["final_regret_median"]
        for k in ("stable", "ucbvi")
        for c in result["regret"][k]
    }
    sentence = (
        f"Deleting a user replays on average at most {result['criteria']['max_fraction_over_bound']:.2f} x "
        f"rho*sqrt(ln T) of the episodes (the oldest user, the costliest, "
        f"{result['criteria']['max_oldest_fraction_over_bound']:.2f} x). Over 2000 seeds per arm, "
        f"learn-then-delete and retraining without the user are indistinguishable on "
        f"{len(exact['p_values'])} statistics (Holm-adjusted min p {exact['min_adjusted_p']:.2f}: "
        f"{'passed' if exact['passed'] else 'FAILED'}), while the tests reject erasing only the raw data "
        f"(p {controls['no_op']['min_adjusted_p']:.1e}) and dropping it without coupling "
        f"(p {controls['drop_without_coupling']['min_adjusted_p']:.1e}). Regret after 1000 episodes "
        f"(practical bonus): UCBVI {regret[(None, 'practical')]:.0f}, stable rho 0.5 "
        f"{regret[(0.5, 'practical')]:.0f}, rho 0.05 {regret[(0.05, 'practical')]:.0f}."
    )
    return result, Section(
        "Exact unlearning: delete a user from an online RL learner", sentence, cols, rows, images
    )


def edit_section(run_dir: Path, seed: int, quiet: bool) -> tuple[dict, Section]:
    from rewire.bench.edit import run_edit_benchmark
    from rewire.report import COLORS, plt

    unlearn = run_edit_benchmark("unlearn", 7, seed, quiet=quiet)
    bias = run_edit_benchmark("bias", 7, seed, quiet=quiet)
    cols = [
        "task",
        "method",
        "forget acc / TPR gap",
        "retain acc / accuracy",
        "test acc / parity gap",
        "wall s",
    ]

    def table(task: str, result: dict, keys: tuple[str, ...]) -> list[list]:
        """The original, then every method and CEM: task, name, the three metrics, wall seconds."""
        named = {"original": result["original"], **result["methods"], **result["cem"]}
        return [
            [task, name, *(m[k] for k in keys), "" if name == "original" else m["wall_s"]]
            for name, m in named.items()
        ]

    rows = table("unlearn class 7", unlearn, ("forget_acc", "retain_acc", "test_acc"))
    rows += table("bias", bias, ("tpr_gap", "accuracy", "parity_gap"))
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=110)
    for color, (label, result) in zip(COLORS, [("unlearn", unlearn), ("bias", bias)], strict=False):
        for style, world in (("-", "maskworld"), ("--", "shiftworld")):
            curve = result["methods"][world]["return_per_update"]
            ax.plot(range(1, len(curve) + 1), curve, style, color=color, label=f"{label}, {world}")
    ax.set(
        xlabel="PPO update (500 env steps each)", ylabel="mean episode return", title="PPO learning curves"
    )
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(run_dir / "edit_ppo.png")
    plt.close(fig)
    um, uc, bm = unlearn["methods"], unlearn["cem"], bias["methods"]
    solved = {k: v["transfer_classes_solved"] for k, v in unlearn["criteria"].items()}
    multi = {k: v["multiclass_held_out_solved"]["observe_metrics"] for k, v in unlearn["criteria"].items()}

    def both(methods: dict, key: str, suffix: str = "") -> str:
        """MaskWorld / ShiftWorld values side by side."""
        return f"{methods['maskworld' + suffix][key]:.2f} / {methods['shiftworld' + suffix][key]:.2f}"

    sentence = (
        f"PPO editing the classifier's head drives forget accuracy on digit 7 to {both(um, 'forget_acc')} "
        f"(MaskWorld / ShiftWorld) with retain accuracy {both(um, 'retain_acc')}; retraining from scratch "
        f"keeps {um['retrain']['retain_acc']:.2f}, and CEM over the same actions reaches retain "
        f"{both(uc, 'retain_acc', '_cem')} in {both(uc, 'wall_s', '_cem')} s against PPO's "
        f"{both(um, 'wall_s')} s. The class-7 policies applied to the other nine classes solve "
        f"{solved['maskworld']} / {solved['shiftworld']}; one policy trained on five classes, seeing "
        f"only the reward terms, solves {multi['maskworld']} / {multi['shiftworld']} of the five held out. "
        f"On the occupation texts the TPR gap falls from "
        f"{bias['original']['tpr_gap']:.2f} to {both(bm, 'tpr_gap')} (fair-test accuracy "
        f"{bias['original']['accuracy']:.2f} -> {both(bm, 'accuracy')}); reweighting reaches "
        f"{bm['reweighting']['tpr_gap']:.2f}."
    )
    summary = {"unlearn": unlearn, "bias": bias}
    return summary, Section(
        "Model editing: MaskWorld and ShiftWorld (digits unlearning, text bias)",
        sentence,
        cols,
        rows,
        ["edit_ppo.png"],
    )


SECTIONS: dict[str, SectionFn] = {
    "calql": calql_section,
    "hades": hades_section,
    "amf": amf_section,
    "unlearn": unlearn_section,
    "edit": edit_section,
}


def run_demo(out: Path, seed: int = 0, quiet: bool = False, only: list[str] | None = None) -> Path:
    """Run every section (or `only` those), write summary.json, the PNGs and report.html; return the dir."""
    unknown = sorted(set(only or []) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown demo section(s) {unknown}; choose from {sorted(SECTIONS)}")
    run_dir = create_run_dir(out, "demo", lambda d: record_run(d, {"sections": only or list(SECTIONS)}, seed))
    summary: dict = {"seed": seed, "versions": versions(), "sections": {}}
    sections = []
    for name, fn in SECTIONS.items():
        if only and name not in only:
            continue
        start = time.perf_counter()
        result, section = fn(run_dir, seed, quiet)
        summary["sections"][name] = result | {"wall_s": time.perf_counter() - start}
        sections.append(section)
        write_json(run_dir / "summary.json", summary)  # written after each section: nothing lost on a crash
    write_report(
        run_dir / "report.html",
        "rewire demo",
        sections,
        footer=f"seed {seed}; {versions_line(versions())}; config and per-seed values in summary.json",
    )
    return run_dir
