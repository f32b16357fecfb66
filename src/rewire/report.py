"""Plots (matplotlib, PNG) and the one-page HTML report that `rewire demo` writes."""

from __future__ import annotations

import html
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rewire.hosts import is_writer  # noqa: E402

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
STYLES = ["-", "--", ":", "-."]  # with the colours, every line stays visible where lines coincide


def _savefig(fig: Any, path: str | Path) -> None:
    """Save a figure (process 0 alone, in a job of several processes: `rewire.hosts`)."""
    if is_writer():
        fig.savefig(path)


def reached(demos: int | None) -> str:
    """A 'demos to reach the threshold' value as text: the number, or 'not reached'."""
    return "not reached" if demos is None else str(demos)


def versions_line(versions: dict[str, str]) -> str:
    """{'jax': '0.10.2', ...} as 'jax 0.10.2, ...' for a footer."""
    return ", ".join(f"{name} {version}" for name, version in versions.items())


def coinciding(curves: dict[str, np.ndarray]) -> list[list[str]]:
    """Groups of two or more names whose median curves are identical (one line would hide the others)."""
    medians = {name: np.median(np.atleast_2d(np.asarray(ys, float)), 0) for name, ys in curves.items()}
    groups: list[list[str]] = []
    for name, median in medians.items():
        for group in groups:
            first = medians[group[0]]
            if first.shape == median.shape and np.allclose(first, median):
                group.append(name)
                break
        else:
            groups.append([name])
    return [group for group in groups if len(group) > 1]


def plot_curves(
    path: str | Path,
    x: np.ndarray,
    curves: dict[str, np.ndarray],
    xlabel: str,
    ylabel: str,
    title: str,
    vline: float | None = None,
) -> Path:
    """One line per name, each in its own colour and dash style, and each median a little narrower than the
    one before, so lines that coincide stay visible: the median over rows (seeds), each seed thin, the
    min-max band; `vline` marks a switch. Names whose medians coincide are said so in the title."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=110)
    for i, (name, ys) in enumerate(curves.items()):
        color, style, width = COLORS[i % len(COLORS)], STYLES[i % len(STYLES)], 1.5 + len(curves) - 1 - i
        ys = np.atleast_2d(np.asarray(ys, float))
        ax.plot(x, np.median(ys, 0), color=color, ls=style, label=f"{name} (median of {len(ys)})", lw=width)
        if len(ys) > 1:
            ax.fill_between(x, ys.min(0), ys.max(0), color=color, alpha=0.12, lw=0)
            for y in ys:  # each seed, thin: a median can hide a dip that only some seeds show
                ax.plot(x, y, color=color, ls=style, lw=0.6, alpha=0.45)
    if vline is not None:
        ax.axvline(vline, color="grey", ls="--", lw=1)
    same = coinciding(curves)
    if same:
        note = "medians coincide: " + "; ".join(" = ".join(group) for group in same)
        title += "\n" + "\n".join(textwrap.wrap(f"({note})", 70))
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    _savefig(fig, path)
    plt.close(fig)
    return Path(path)


def plot_dataset(states: np.ndarray, targets: np.ndarray, discrete: bool, env: str, path: str | Path) -> Path:
    """A synthetic dataset (HaDES). Left: a table (pairs x normalised state features, then the action).
    Right: states projected to their first two principal components, coloured by action. `targets` are
    what BC fits: action probabilities (discrete) or actions."""
    states, targets = np.asarray(states), np.asarray(targets)
    if discrete:
        action, label = np.argmax(targets, -1).astype(float), "action (label)"
    else:
        action, label = targets[:, 0], "action[0] (BC target; the env clips to [-1, 1])"
    fig, (ax_t, ax_p) = plt.subplots(1, 2, figsize=(9.6, 3.8), dpi=110)
    table = np.concatenate([states, action[:, None]], axis=1)
    im = ax_t.imshow(
        table, cmap="coolwarm", aspect="auto", vmin=-np.abs(table).max(), vmax=np.abs(table).max()
    )
    ax_t.set(xlabel="state feature (normalised) | action", ylabel="pair", title=f"{env}: distilled dataset")
    ax_t.axvline(states.shape[1] - 0.5, color="k", lw=1)
    fig.colorbar(im, ax=ax_t, fraction=0.046)
    centred = states - states.mean(0)
    if states.shape[1] > 2:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        xy, axes = centred @ vt[:2].T, ("PC 1", "PC 2")
    else:
        xy, axes = states, ("state[0]", "state[1]")
    if xy.shape[1] < 2:
        xy = np.concatenate([xy, np.zeros((len(xy), 2 - xy.shape[1]))], 1)
    sc = ax_p.scatter(xy[:, 0], xy[:, 1], c=action, cmap="viridis", s=80, edgecolor="k")
    for i, (x, y) in enumerate(xy):
        ax_p.annotate(str(i), (x, y), textcoords="offset points", xytext=(5, 5), color=COLORS[0])
    ax_p.set(xlabel=axes[0], ylabel=axes[1], title="states, coloured by action")
    fig.colorbar(sc, ax=ax_p, fraction=0.046, label=label)
    fig.tight_layout()
    _savefig(fig, path)
    plt.close(fig)
    return path


def plot_digits(images: np.ndarray, images_per_class: int, path: Path) -> Path:
    """The distilled images, one row per image index, one column per class."""
    fig, axes = plt.subplots(
        images_per_class, 10, figsize=(10, 1.1 * images_per_class + 0.4), dpi=110, squeeze=False
    )
    for i, img in enumerate(np.asarray(images)):
        ax = axes[i // 10, i % 10]
        ax.imshow(img.reshape(8, 8), cmap="gray_r")
        ax.set_xticks([])
        ax.set_yticks([])
        if i < 10:
            ax.set_title(str(i))
    fig.suptitle("distilled digits (label = column)")
    fig.tight_layout()
    _savefig(fig, path)
    plt.close(fig)
    return path


CALQL_AXES = {
    "success": "success rate",
    "return": "return",
    "q_pi_minus_mc": "mean Q(s, pi(s)) - mean MC return",
}


def plot_calql(
    curves: dict, methods: list[str], out_dir: str | Path, stem: str = "calql", metric: str = "success"
) -> list[Path]:
    """Curves per method (median, range and each seed), offline and online, from `curves` as
    `Finetuner.results()` gives them: the success rate, or (`metric` "return", for dense-reward tasks)
    the return, or ("q_pi_minus_mc", online only) the Q curve: mean Q(s, pi(s)) minus mean MC return."""
    out_dir = Path(out_dir)
    labels = curves["labels"]
    paths = []
    for phase, xlabel in (
        ("online", "online environment steps (switch at 0)"),
        ("offline", "offline updates"),
    ):
        curve = curves[phase]
        if not curve["steps"] or metric not in curve:
            continue
        by_method = {
            m: np.array([s for s, lab in zip(curve[metric], labels, strict=True) if lab.split("/")[0] == m])
            for m in methods
        }
        paths.append(
            plot_curves(
                out_dir / f"{stem}_{phase}.png",
                np.array(curve["steps"]),
                by_method,
                xlabel,
                CALQL_AXES[metric],
                f"{phase} evaluation",
                vline=0 if phase == "online" else None,
            )
        )
    return paths


def plot_hades(result: dict, out_dir: Path) -> list[Path]:
    """Training curves (population mean fitness against env steps) and a picture of the dataset."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = result["env"]
    hist = result["history"]
    steps = np.arange(1, len(hist["hades"]["score_mean"]) + 1) * result["env_steps_per_generation"]
    curves = {
        f"HaDES-{result['variant']} ({result['size']} pairs)": np.asarray(hist["hades"]["score_mean"]),
        "neuroevolution (weights)": np.asarray(hist["neuroevolution"]["score_mean"]),
    }
    name = env.replace("/", "_")
    paths = [
        plot_curves(
            out_dir / f"hades_{name}_fitness.png",
            steps,
            curves,
            "environment steps",
            "population mean return",
            f"{env}: ES fitness at equal environment steps",
        )
    ]
    from rewire.envs.control import make_control
    from rewire.hades.core import dataset_figure

    task = make_control(env)
    dataset = {k: np.asarray(v) for k, v in result["dataset"].items()}
    paths.append(dataset_figure(dataset, task, out_dir / f"hades_{name}_dataset.png"))
    return paths


def plot_amf(result: dict, folder: Path, env: str = "reach2d", tasks: int = 24) -> list[Path]:
    """Success against demonstrations (one figure per setting and model), and which tasks each selector
    asked for under mismatch (demos per task summed over seeds; pretrained tasks shaded)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for setting, by_model in result["settings"].items():
        for model, by_sel in by_model.items():
            x = np.asarray(next(iter(by_sel.values()))["demos"])
            curves = {name: np.asarray(c["success_per_seed"]) for name, c in by_sel.items()}
            paths.append(
                plot_curves(
                    folder / f"amf_{setting}_{model}.png",
                    x,
                    curves,
                    "demonstrations requested",
                    "mean success over tasks",
                    f"AMF-{model.upper()}, {setting} pretraining",
                )
            )
    from rewire.envs.multitask import make_multitask, pretraining_demo_tasks

    family = make_multitask(env, tasks)
    seen = set(pretraining_demo_tasks(family, "mismatch").tolist())
    models = list(result["settings"]["mismatch"])
    fig, axes = plt.subplots(len(models), 1, figsize=(7.2, 2.6 * len(models)), dpi=110, squeeze=False)
    for ax, model in zip(axes[:, 0], models, strict=True):
        by_sel = result["settings"]["mismatch"][model]
        width = 0.8 / len(by_sel)
        for i, (name, c) in enumerate(by_sel.items()):
            counts = np.bincount(np.asarray(c["tasks_per_seed"]).ravel().astype(int), minlength=tasks)
            ax.bar(np.arange(tasks) + (i - 1) * width, counts, width, color=COLORS[i], label=name)
        for t in seen:
            ax.axvspan(t - 0.5, t + 0.5, color="grey", alpha=0.12, lw=0)
        ax.set(
            title=f"AMF-{model.upper()}, mismatch: demos per task (shaded: pretrained tasks)",
            xlabel="task id",
            ylabel="demos (all seeds)",
        )
        ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars
    fig.tight_layout()
    path = folder / "amf_tasks_asked.png"
    _savefig(fig, path)
    plt.close(fig)
    return paths + [path]


def plot_unlearn(result: dict, folder: Path) -> list[Path]:
    """Deletion cost against ρ√(ln T) (uniform user and oldest user), and cumulative regret curves."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=110)
    for color, rho in zip(COLORS, sorted({r["rho"] for r in rows}), strict=False):
        mine = sorted((r for r in rows if r["rho"] == rho), key=lambda r: r["episodes"])
        t = [r["episodes"] for r in mine]
        ax.plot(
            t, [r["recompute_fraction"] for r in mine], "o-", color=color, label=f"rho {rho}: uniform user"
        )
        ax.plot(t, [r["oldest_fraction"] for r in mine], "s:", color=color, lw=1, label=f"rho {rho}: oldest")
        ax.plot(t, [r["rho_sqrt_ln_t"] for r in mine], "--", color=color, lw=0.8, alpha=0.7)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="episodes T",
        ylabel="fraction of episodes replayed",
        title="deletion cost (dashed: rho * sqrt(ln T))",
    )
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=6, ncol=2)
    fig.tight_layout()
    paths = [folder / "unlearn_cost.png"]
    _savefig(fig, paths[0])
    plt.close(fig)
    from rewire.unlearn.tree import BONUSES

    for bonus in BONUSES:
        curves = {
            f"rho {c['rho']}": c["cumulative_regret_per_seed"]
            for c in result["regret"]["stable"]
            if c["bonus"] == bonus
        }
        ucb = [c for c in result["regret"]["ucbvi"] if c["bonus"] == bonus]
        if not curves and not ucb:
            continue
        for c in ucb:
            curves["UCBVI (non-private)"] = c["cumulative_regret_per_seed"]
        x = next(c["episodes"] for c in result["regret"]["stable"] + ucb if c["bonus"] == bonus)
        paths.append(
            plot_curves(
                folder / f"unlearn_regret_{bonus}.png",
                np.asarray(x),
                curves,
                "episodes",
                "cumulative regret",
                f"stable UCBVI vs UCBVI, {bonus} bonus",
            )
        )
    return paths


@dataclass
class Section:
    """One system's part of the report: a sentence on what the result means, a table, and figures."""

    title: str
    sentence: str
    columns: list[str]
    rows: list[list[object]]
    images: list[str] = field(default_factory=list)  # file names relative to the report


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.3g}"
    return html.escape(str(value))


def write_report(path: str | Path, title: str, sections: list[Section], footer: str = "") -> Path:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}th{background:#f3f3f3}img{max-width:100%}p.lead{font-size:1.05em}</style>",
        f"</head><body><h1>{html.escape(title)}</h1>",
    ]
    for s in sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2><p class='lead'>{html.escape(s.sentence)}</p>")
        parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in s.columns) + "</tr>")
        for row in s.rows:
            parts.append("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
        parts.append("</table>")
        parts.extend(f"<img src='{html.escape(img)}' alt='{html.escape(img)}'>" for img in s.images)
    parts.append(f"<p><small>{html.escape(footer)}</small></p></body></html>")
    path = Path(path)
    path.write_text("\n".join(parts))
    return path
