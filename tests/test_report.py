"""What the reports show: coinciding lines are said so, thresholds never reached read 'not reached', the
footer is readable."""

import numpy as np

from rewire.report import STYLES, coinciding, plot_curves, reached, versions_line


def test_coinciding_medians_are_found_and_named_in_the_title(tmp_path, monkeypatch):
    curves = {
        "cql": np.array([[1.0, 0.5], [1.0, 0.7]]),
        "calql": np.array([[1.0, 0.6]]),
        "x": np.array([[0, 1.0]]),
    }
    assert coinciding(curves) == [["cql", "calql"]]
    assert coinciding({k: np.ones((1, 3)) for k in "abc"} | {"d": np.zeros((1, 3))}) == [["a", "b", "c"]]
    titles, styles = [], []
    import matplotlib.axes

    original_plot = matplotlib.axes.Axes.plot
    monkeypatch.setattr(matplotlib.axes.Axes, "set", lambda self, **kw: titles.append(kw.get("title")))
    monkeypatch.setattr(
        matplotlib.axes.Axes,
        "plot",
        lambda self, *a, **kw: styles.append(kw.get("ls")) or original_plot(self, *a, **kw),
    )
    plot_curves(tmp_path / "c.png", np.array([0, 1]), curves, "steps", "success", "online")
    assert titles == ["online\n(medians coincide: cql = calql)"] and (tmp_path / "c.png").exists()
    assert set(styles) == set(STYLES[:3])  # each method its own dash style, its seeds' thin lines too


def test_thresholds_never_reached_and_versions_read_as_text():
    assert reached(None) == "not reached" and reached(12) == "12"
    assert versions_line({"jax": "0.10.2", "flax": "0.12.8"}) == "jax 0.10.2, flax 0.12.8"


def test_the_amf_task_legend_sits_beside_the_bars_not_over_them(tmp_path, monkeypatch):
    import rewire.report as amf_bench

    run = {
        "demos": [0, 2],
        "success_per_seed": [[0.5, 0.6]],
        "tasks_per_seed": [[0, 1]],
    }
    result = {"settings": {"mismatch": {"gp": {"amf": run, "uniform": run, "random": run}}}}
    figures = []
    monkeypatch.setattr(amf_bench.plt, "close", figures.append)
    amf_bench.plot_amf(result, tmp_path, "reach2d", 8)
    (ax,) = figures[-1].axes
    renderer = figures[-1].canvas.get_renderer()
    legend = ax.get_legend().get_window_extent(renderer)
    assert legend.x0 >= ax.get_window_extent(renderer).x1 - 1  # to the right of the plotting area


def test_the_deletion_cost_table_says_which_users_each_column_is_about():
    from rewire.demo import unlearn_table

    row = {"episodes": 100, "rho": 0.05, "recompute_fraction": 0.02, "oldest_fraction": 0.12}
    row |= {
        "rho_sqrt_ln_t": 0.107,
        "within_bound": True,
    }  # the oldest user exceeds the bound, uniform users not
    cols, rows = unlearn_table([row])
    assert rows == [[100, 0.05, 0.02, 0.12, 0.107, True]]
    bound = cols[rows[0].index(True)]
    assert "uniform" in bound and "oldest" not in bound and "oldest" in cols[rows[0].index(0.12)]
