"""AMF's Meta-World family: each scripted expert solves its own task within the episode cap, the env's
success flag is what is read, seeded demonstrations reproduce, bad task sets are refused, and a small
AMF-NN run on the simulators resumes to the bits of an uninterrupted one."""

import json

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

from rewire.amf.core import AMF, AMFConfig
from rewire.amf.models import NNSettings
from rewire.amf.run import AMFRun
from rewire.cli import app
from rewire.envs.metaworld import HORIZON, MetaWorldFamily, MetaWorldSettings, parse_tasks
from rewire.loop import Loop


@pytest.fixture(scope="module")
def family():
    return MetaWorldFamily("paper", start_seed=0, eval_starts=2)


def test_each_expert_solves_its_task_and_success_is_the_envs_flag(family):
    ids = family.eval_start_ids()
    tasks = [t for t, _ in ids]
    starts = [family.start(t, "eval", i) for t, i in ids]
    noise = [(0, 9, t, i) for t, i in ids]
    states, actions, first_success = family.episodes(None, tasks, starts, noise)
    assert (first_success < HORIZON).all(), first_success  # within HORIZON steps, at the experts' noise
    # an evaluation stops each episode at its first success: the same steps up to there, nothing after
    cut, cut_actions, cut_first = family.episodes(None, tasks, starts, noise, until_success=True)
    np.testing.assert_array_equal(cut_first, first_success)
    for i, t in enumerate(first_success):
        np.testing.assert_array_equal(cut[i, : t + 1], states[i, : t + 1])
        assert not cut[i, t + 1 :].any() and not cut_actions[i, t + 1 :].any()
    assert states.shape == (len(ids), HORIZON, 39) and np.abs(actions).max() <= 1.0
    # the push tasks' goal is fixed, and it is what the policy sees (the observation's last 3 entries)
    np.testing.assert_allclose(states[0, 0, -3:-1], (-0.1, 0.9), atol=1e-6)
    np.testing.assert_allclose(states[2, 0, -3:-1], (0.1, 0.9), atol=1e-6)
    # a policy that never moves succeeds nowhere: success is read from the env, not assumed
    _, _, still = family.episodes(lambda obs, episodes: np.zeros((len(obs), 4)), tasks, starts)
    assert (still == HORIZON).all()


def test_seeded_demonstrations_reproduce_and_differ_across_seeds(family):
    a = family.demonstrations([0, 3], "demo", [0, 0], [5, 5])
    b = MetaWorldFamily("paper", start_seed=0).demonstrations(
        [0, 3], "demo", [0, 0], [5, 5]
    )  # fresh simulators
    c = family.demonstrations([0, 3], "demo", [0, 0], [6, 6])
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    # the evaluation starts are the family's, shared by every run seed
    assert np.array_equal(
        family.start(1, "eval", 0), MetaWorldFamily("paper", start_seed=0).start(1, "eval", 0)
    )
    assert not np.array_equal(family.start(1, "eval", 0), family.start(1, "eval", 1))


def test_task_sets_settings_and_bad_input(tmp_path):
    assert [t.name for t in parse_tasks("paper")] == [
        "push-v3@left",
        "push-v3@right",
        "faucet-open-v3",
        "faucet-close-v3",
    ]
    assert (
        len(parse_tasks("mt10")) == 10 and parse_tasks("reach-v3,door-open-v3")[1].env_name == "door-open-v3"
    )
    with pytest.raises(ValueError, match="unknown Meta-World task 'jump-v3'"):
        parse_tasks("reach-v3,jump-v3")
    with pytest.raises(ValueError, match="at least two distinct tasks"):
        parse_tasks("reach-v3")
    fam = MetaWorldFamily("paper", pretrain_per_task=3)
    # the settings a config stores rebuild the same family
    rebuilt = fam.settings.family()
    assert (rebuilt.settings, [t.name for t in rebuilt.tasks]) == (fam.settings, [t.name for t in fam.tasks])
    assert fam.settings.pretrain_per_task == 3 and fam.settings.tasks == "paper"
    assert np.bincount(fam.pretraining_demo_tasks("mismatch"), minlength=4).tolist() == [6, 0, 6, 0]
    assert np.bincount(fam.pretraining_demo_tasks("full"), minlength=4).tolist() == [3, 3, 3, 3]
    with pytest.raises(ValueError, match="AMF-NN only"):
        AMF(AMFConfig(env="metaworld", model="gp"))
    # on the command line: one line naming the bad task, exit code 2, nothing written
    for args in (["amf", "run", "--env", "metaworld"], ["bench", "amf", "--env", "metaworld"]):
        res = CliRunner().invoke(app, [*args, "--tasks", "reach-v3,jump-v3", "--out", str(tmp_path / "out")])
        assert res.exit_code == 2 and "unknown Meta-World task 'jump-v3'" in res.output, res.output
        assert "Traceback" not in res.output and not (tmp_path / "out").exists()


def test_a_small_run_on_the_simulators_resumes_exactly(tmp_path):
    config = AMFConfig(
        env="metaworld",
        model="nn",
        budget=4,
        batch=2,
        eval_every=2,
        nn=NNSettings(hidden=(16, 16), pretrain_steps=20, finetune_steps=10, batch_size=32),
        metaworld=MetaWorldSettings(eval_starts=1, pretrain_per_task=1, horizon=30),
    )

    def make():
        return AMFRun(config, ["mismatch"], [0], ["amf", "uniform"])

    whole = make()
    Loop(whole, tmp_path / "whole", every=0, quiet=True).run()
    part = make()
    Loop(part, tmp_path / "part", every=0, quiet=True).run(max_steps=1)
    resumed = make()
    Loop(resumed, tmp_path / "part", every=0, quiet=True).run()
    assert resumed.results() == whole.results()
    with jax.enable_x64(True):
        same = jax.tree.map(np.array_equal, jax.device_get(resumed.state), jax.device_get(whole.state))
    assert all(jax.tree.leaves(same))
    result = whole.results()["mismatch"]["amf"]
    assert result["demos"] == [0, 4]  # evaluated at round 0 and after the last round only
    assert len(result["tasks_per_seed"][0]) == 4


def test_the_benchmark_criteria_by_hand():
    from rewire.bench.amf import metaworld_criteria

    def curve(success):
        return {"demos": [0, 4, 8, 12], "success_median": success}

    settings = {
        "mismatch": {"amf": curve([0.4, 0.7, 0.85, 0.9]), "uniform": curve([0.4, 0.5, 0.6, 0.8])},
        "full": {"amf": curve([0.7, 0.7, 0.77, 0.9]), "uniform": curve([0.7, 0.75, 0.8, 0.9])},
    }
    out = metaworld_criteria(settings, 0.8)
    assert (out["mismatch"]["amf_demos"], out["mismatch"]["uniform_demos"]) == (8, 12)
    assert out["mismatch"]["ratio"] == pytest.approx(8 / 12) and out["mismatch"]["passed"]  # 0.67 <= 0.7
    assert out["mismatch"]["never_below"]
    # full falls 0.05 below uniform at 4 demos: more than the 0.02 allowed
    assert out["full"]["min_gap"] == pytest.approx(-0.05) and not out["full"]["passed"]
    # uniform never reaches 0.8 within 12 demos: it needs at least 14, so AMF's 8 is at most 8 / 14 of it
    settings["mismatch"]["uniform"] = curve([0.4, 0.5, 0.6, 0.7])
    out = metaworld_criteria(settings, 0.8, batch=2)["mismatch"]
    assert out["ratio"] is None and out["ratio_at_most"] == pytest.approx(8 / 14) and out["passed"]
    settings["mismatch"]["amf"] = curve([0.4, 0.5, 0.6, 0.8])  # 12 / 14 > 0.7: not shown
    assert not metaworld_criteria(settings, 0.8, batch=2)["mismatch"]["passed"]
    # with per-seed curves: the paired gap per budget, seed i of AMF against seed i of uniform
    settings["full"]["amf"]["success_per_seed"] = [[0.7, 0.6, 0.8, 0.9]] * 3
    settings["full"]["uniform"]["success_per_seed"] = [
        [0.7, 0.8, 0.8, 0.9],
        [0.7, 0.7, 0.8, 0.9],
        [0.7, 0.9, 0.8, 0.9],
    ]
    gaps = metaworld_criteria(settings, 0.8)["full"]["paired_gap"]
    assert [g["mean"] for g in gaps] == pytest.approx([0.0, -0.2, 0.0, 0.0])
    assert gaps[1]["high"] < 0 and gaps[1]["low"] == pytest.approx(-0.3) and gaps[0]["wilcoxon_p"] == 1.0


def test_the_public_api_runs_a_family_object_and_resumes_it_from_its_config(tmp_path):
    import rewire.amf as amf

    family = amf.MetaWorldFamily("reach-v3,push-v3@right", eval_starts=1, horizon=20, pretrain_per_task=1)
    nn = NNSettings(hidden=(8, 8), pretrain_steps=10, finetune_steps=5, batch_size=16)
    config = amf.Config(model="nn", budget=2, batch=2, nn=nn)
    result = amf.fit(family, config, setting="full", out=tmp_path / "r")
    assert result.summary["demos"] == [0, 2]
    # config.json names the family's tasks, so resuming rebuilds the same simulators and finds it finished
    again = amf.resume(tmp_path / "r")
    assert again.summary == result.summary


def test_the_bench_cli_prints_the_curves_and_paired_gaps(tmp_path, monkeypatch):
    """`rewire bench amf --env metaworld` only parses, calls `run_metaworld_benchmark` and reports it."""
    import rewire.bench.amf as bench
    from rewire.bench.amf import metaworld_criteria

    curve = {"demos": [0, 4], "success_median": [0.4, 0.9], "success_per_seed": [[0.4, 0.9], [0.4, 0.8]]}
    settings = {"mismatch": {"amf": curve, "uniform": curve}, "full": {"amf": curve, "uniform": curve}}
    seen = {}

    def fake(seeds, seed, preset, tasks, threshold, kernels, *rest):
        seen.update(seeds=seeds, seed=seed, preset=preset, tasks=tasks, kernels=kernels)
        criteria = {"last_layer": metaworld_criteria(settings, threshold)}
        return {"settings": settings, "criteria": criteria, "seconds": {"last_layer": {"wall": 1.0}}}

    monkeypatch.setattr(bench, "run_metaworld_benchmark", fake)
    out = tmp_path / "r.json"
    args = ["bench", "amf", "--env", "metaworld", "--seeds", "2", "--seed", "6", "--json", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert seen == {
        "seeds": 2,
        "seed": 6,
        "preset": "cpu",
        "tasks": "paper",
        "kernels": ("last_layer", "loss_gradient"),
    }
    said = " ".join(res.output.split())
    assert "mismatch amf: median success by demos 0:0.40 4:0.90" in said
    assert "paired gap to uniform by budget: +0.00 [+0.00, +0.00] +0.00 [+0.00, +0.00]" in said
    assert json.loads(out.read_text())["criteria"]["last_layer"]["full"]["passed"]
