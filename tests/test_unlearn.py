"""Exact unlearning: the tree mechanism, the coupling, the learner, exactness, cost, persistence, CLI."""

import hashlib
import itertools
import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm
from typer.testing import CliRunner

from rewire.cli import app
from rewire.unlearn.learner import LearnerConfig, StableUCBVI
from rewire.unlearn.mdp import make_mdp, optimal_values, play, user_table
from rewire.unlearn.session import STATE_FILE, Session, Setup
from rewire.unlearn.tree import (
    calibrate,
    contains,
    episode_stat,
    keep_log_prob,
    levels,
    node_tv,
    nodes_holding,
    reflect,
)
from rewire.unlearn.verify import Verifier, drop_without_coupling, holm

SMALL = Setup(states=2, actions=2, horizon=2, episodes=16, rho=0.9, seed=3)


def digest(directory) -> str:
    return hashlib.sha256((directory / STATE_FILE).read_bytes()).hexdigest()


def same_state(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_nodes_holding_an_episode_match_brute_force():
    T = 64
    for i in range(1, T + 1):
        brute = [t for t in range(1, T + 1) if t - (t & -t) < i <= t]
        assert all(bool(contains(jnp.int32(t), jnp.int32(i))) == (t in brute) for t in range(1, T + 1))
        path = [int(u) for u in nodes_holding(jnp.int32(i), levels(T)) if u <= T]
        assert path == brute and len(path) <= levels(T)
    assert len([u for u in nodes_holding(jnp.int32(1), levels(T)) if u <= T]) == levels(T) == 7


@pytest.mark.parametrize("rho", [None, 0.5])
def test_prefix_sums_match_brute_force(rho):
    setup = Setup(states=3, actions=2, horizon=3, episodes=13, rho=rho)
    session = Session(setup).learn()
    learner, state = session.learner, session.state
    with jax.enable_x64(True):
        x = np.asarray(learner.stats(state))
        y = np.asarray(state.released)
        for t in range(1, 14):
            nodes, u = [], t
            while u:
                nodes.append(u)
                u -= u & -u
            brute = sum(y[u - 1] for u in nodes)
            got = np.asarray(learner.prefix(state, jnp.int32(t)))
            np.testing.assert_allclose(got, brute, rtol=0, atol=1e-9)
            if rho is None:  # no noise: the prefix is the exact sum of the first t statistics
                np.testing.assert_array_equal(got, x[:t].sum(0))


def test_statistic_norm_and_null_slot():
    traj = jnp.array([[0, 1, 1, 2], [2, 0, 0, 1], [1, 1, 1, 1]], jnp.int32)  # (s, a, r, s') per step
    x = episode_stat(traj, jnp.bool_(True), 3, 2)
    assert x.shape == (3 * 3 * 2 * 5,)
    assert float(x @ x) == 2 * 3 + 2  # 2H + Σ r²
    assert float(x[(0 * 3 + 0) * 2 + 1]) == 1  # visit count of (h=0, s=0, a=1)
    assert float(x[18 + ((0 * 3 + 0) * 2 + 1) * 3 + 2]) == 1  # its transition to s'=2
    assert not episode_stat(traj, jnp.bool_(False), 3, 2).any()


def test_keep_probability_and_reflection_by_hand():
    # sigma 1, s_old 0, x 1 (s_new -1), stored y 0.5: log a = -(1 + 2*0.5*1)/2 = -1
    y, s_old, x = jnp.array([0.5]), jnp.array([0.0]), jnp.array([1.0])
    assert float(keep_log_prob(y, s_old, x, jnp.float32(1.0))) == pytest.approx(-1.0)
    assert float(reflect(y, s_old, x)[0]) == pytest.approx(-1.5)  # mirrored about m = -0.5
    assert float(node_tv(jnp.float32(1.0), jnp.float32(1.0))) == pytest.approx(2 * norm.cdf(0.5) - 1, 1e-6)
    # y far on the new side: kept for sure
    assert float(keep_log_prob(jnp.array([-3.0]), s_old, x, jnp.float32(1.0))) == 0.0


def test_coupled_value_has_the_new_law_by_quadrature():
    """P(Y' <= c) = ∫ p(y) a(y) 1[y <= c] + p(y)(1 - a(y)) 1[refl(y) <= c] dy = Φ((c - μ_new)/σ)."""
    sigma, mu_old, shift = 1.3, 0.4, 1.1
    mu_new = mu_old - shift

    def accept(y):
        return math.exp(min(0.0, -(shift**2 + 2 * (y - mu_old) * shift) / (2 * sigma**2)))

    mid = mu_old - shift / 2  # accept(y) has its kink here; integrate piecewise so quad is exact

    def integral(f, lo, hi):
        cuts = sorted({lo, hi, min(max(mid, lo), hi)})
        return sum(integrate.quad(f, a, b, epsabs=1e-12)[0] for a, b in itertools.pairwise(cuts))

    def kept(y):
        return norm.pdf(y, mu_old, sigma) * accept(y)

    def moved(y):
        return norm.pdf(y, mu_old, sigma) * (1 - accept(y))

    for c in (-3.0, -1.0, -0.7, 0.0, 0.5, 2.0):
        # the reflection y -> 2·mid - y lands at or below c exactly when y >= 2·mid - c
        total = integral(kept, -30, c) + integral(moved, 2 * mid - c, 30)
        assert total == pytest.approx(norm.cdf(c, mu_new, sigma), abs=1e-8)
    rejected = integral(moved, -30, 30)
    assert rejected == pytest.approx(2 * norm.cdf(shift / (2 * sigma)) - 1, abs=1e-8)  # = TV


@pytest.mark.parametrize("rho", [0.05, 0.3, 0.9])
def test_calibration_gives_tv_rho(rho):
    for T, H in [(16, 2), (10_000, 5)]:
        c = calibrate(rho, 3, 2, H, T, 0.05, "theory")
        L, delta = levels(T), math.sqrt(3 * H)
        assert 2 * norm.cdf(math.sqrt(L) * delta / (2 * float(c.sigma))) - 1 == pytest.approx(rho, abs=1e-9)
    with pytest.raises(ValueError, match="rho"):
        calibrate(1.0, 3, 2, 2, 16, 0.05, "theory")


def test_plan_with_exact_statistics_is_optimal():
    """With no noise and huge exact counts the bonus vanishes and PLAN returns an optimal policy: checks the
    statistic's layout against value iteration."""
    with jax.enable_x64(True):
        mdp = make_mdp("random", 3, 2, 3, jax.random.key(1))
        learner = StableUCBVI(mdp, LearnerConfig(episodes=16, rho=None))
        n = 1e12
        cells = jnp.full(mdp.reward_mean.shape, n)
        prefix = jnp.concatenate(
            [cells.ravel(), (mdp.transitions * n).ravel(), (mdp.reward_mean * n).ravel()]
        )
        policy = learner.plan(prefix, learner.calibration())
        v_star = optimal_values(mdp)
        q = mdp.reward_mean + jnp.einsum("hsat,ht->hsa", mdp.transitions, v_star[1:])
        chosen = jnp.take_along_axis(q, policy[..., None], -1)[..., 0]
        np.testing.assert_allclose(chosen, q.max(-1), atol=1e-9)


def test_mdps_are_valid_and_bad_names_raise():
    for name, states in [("random", 4), ("riverswim", 5), ("grid", 9)]:
        mdp = make_mdp(name, states, None, 4, jax.random.key(0))
        np.testing.assert_allclose(mdp.transitions.sum(-1), 1.0, atol=1e-6)
        table = user_table(mdp, jax.random.key(1))
        traj = play(table, jnp.zeros((4, states), jnp.int32))
        assert traj.shape == (4, 4) and (np.asarray(traj[:, 2]) <= 1).all()
    with pytest.raises(ValueError, match="square"):
        make_mdp("grid", 5, None, 4, jax.random.key(0))
    with pytest.raises(ValueError, match="unknown MDP"):
        make_mdp("maze", 4, None, 4, jax.random.key(0))
    with pytest.raises(ValueError, match="2 actions"):
        make_mdp("riverswim", 4, 3, 4, jax.random.key(0))


def test_verification_passes_and_both_controls_are_rejected():
    """The issue's check at N = 2000 on a tiny MDP: learn-then-delete is indistinguishable from retraining
    on every statistic and scenario (oldest, middle, newest, sequential, many, mid-stream), while erasing only
    the raw data and dropping the data without coupling are both rejected."""
    result = Verifier(SMALL, trials=2000, alpha=0.01).run()
    assert result["exact"]["passed"], result["exact"]
    assert result["controls"]["no_op"]["rejected"]
    assert result["controls"]["drop_without_coupling"]["rejected"]
    assert len(result["exact"]["p_values"]) >= 30


def test_recompute_rate_matches_the_exact_prediction():
    """Deleting the oldest user (in L = 5 nodes) from 4000 independently seeded learners: the replay rate and
    the mean number of replayed episodes match 1 - Π(1 - TV_ν) and Σ_ν P(first failure at ν)(T - ν). (The
    prediction averages over the node noise, so the learners' seeds vary, not only the coupling draws.)"""
    setup = Setup(states=2, actions=2, horizon=2, episodes=16, rho=0.3, seed=1)
    session = Session(setup)
    learner, n = session.learner, 4000
    with jax.enable_x64(True):
        keys = jax.vmap(jax.random.key_data)(jax.random.split(jax.random.key(9), n))
        states = jax.vmap(lambda k: session.state.replace(noise_key=k, unlearn_key=k[::-1]))(keys)
        states = jax.jit(jax.vmap(learner.learn, (0, None)))(states, 16)
        reports = jax.tree.map(np.asarray, jax.jit(jax.vmap(lambda s: learner.delete(s, 1)[1]))(states))
    predicted = reports["predicted_recompute_probability"]
    assert np.ptp(predicted) < 1e-12  # user 1's episode does not depend on the noise
    rate, p = (reports["tau"] > 0).mean(), predicted[0]
    assert 0.3 < p < 0.6
    assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / n)
    replayed = reports["recomputed"]
    assert abs(replayed.mean() - reports["predicted_recomputed"][0]) < 4 * replayed.std() / math.sqrt(n)


def test_deletion_replays_honestly_and_drop_without_coupling_fails_the_audit():
    session = Session(SMALL).learn()
    assert session.audit()
    learner = session.learner
    with jax.enable_x64(True):
        keys = jax.vmap(jax.random.key_data)(jax.random.split(jax.random.key(2), 64))
        states = jax.vmap(lambda k: session.state.replace(noise_key=k))(keys)
        states = jax.jit(jax.vmap(learner.learn, (0, None)))(
            states.replace(t_now=jnp.zeros(64, jnp.int32)), 16
        )
        deleted = jax.jit(jax.vmap(lambda s: learner.delete(s, 2)[0]))(states)
        dropped = jax.jit(jax.vmap(lambda s: drop_without_coupling(learner, s, 2)))(states)
        audit = jax.jit(jax.vmap(learner.audit))
        assert np.asarray(audit(deleted)).all()
        assert not np.asarray(audit(dropped)).all()


def test_bad_deletions_raise_and_change_nothing(tmp_path):
    session = Session(SMALL)
    session.learn(stop=10)
    session.save(tmp_path)
    before = digest(tmp_path)
    for users, message in [
        ([0], "unknown user 0"),
        ([17], "unknown user 17"),
        ([12], "only 10 users have played"),
        ([4, 4], "twice"),
        ([3, 0], "unknown user 0"),  # the valid id in the request is not deleted either
    ]:
        with pytest.raises(ValueError, match=message):
            session.delete(users, tmp_path)
        assert digest(tmp_path) == before
    session.delete([3], tmp_path)
    after = digest(tmp_path)
    with pytest.raises(ValueError, match="already deleted"):
        Session.open(tmp_path).delete([3], tmp_path)
    assert digest(tmp_path) == after


def test_crash_while_saving_a_deletion_leaves_the_state_before(tmp_path, monkeypatch):
    session = Session(SMALL).learn()
    session.save(tmp_path)
    before = digest(tmp_path)

    def crash(*_):
        raise OSError("disk gone")

    monkeypatch.setattr("rewire.checkpoint.os.replace", crash)
    with pytest.raises(OSError):
        Session.open(tmp_path).delete([1], tmp_path)
    assert digest(tmp_path) == before and list(tmp_path.iterdir()) == [tmp_path / STATE_FILE]
    monkeypatch.undo()
    reopened = Session.open(tmp_path)
    reopened.delete([1], tmp_path)
    reference = Session(SMALL).learn()
    reference.delete([1])
    assert same_state(Session.open(tmp_path).state, reference.state)


def test_killed_process_mid_deletion_leaves_before_then_restarts_exactly(tmp_path):
    """SIGKILL at the worst moment (the new state written and fsynced, not yet renamed): the directory
    still holds the state before; a restarted process deletes exactly as an uninterrupted one."""
    session = Session(SMALL).learn()
    session.save(tmp_path)
    before = digest(tmp_path)
    script = (
        "import os, signal, rewire.checkpoint as c\n"
        "c.os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)\n"
        "from rewire.unlearn.session import Session\n"
        f"Session.open({str(tmp_path)!r}).delete([5], {str(tmp_path)!r})\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert proc.returncode == -9
    assert digest(tmp_path) == before
    Session.open(tmp_path).delete([5], tmp_path)
    assert not list(tmp_path.glob("*.tmp"))
    session.delete([5])
    assert same_state(Session.open(tmp_path).state, session.state)


def test_same_seed_same_run_and_resume_is_exact(tmp_path):
    a = Session(SMALL).learn()
    b = Session(SMALL)
    b.learn(stop=7, directory=tmp_path)
    b = Session.open(tmp_path).learn(directory=tmp_path)  # a restarted learner continues
    assert same_state(a.state, b.state)
    ra, rb = a.delete([2, 9]), b.delete([2, 9])
    assert [dict(r, wall_s=0) for r in ra] == [dict(r, wall_s=0) for r in rb]
    assert same_state(a.state, b.state)
    other = Session(Setup(**{**SMALL.__dict__, "seed": 4})).learn()
    assert not np.array_equal(other.state.released, a.state.released)


def test_holm_adjustment_by_hand():
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})


def test_cli_simulate_delete_verify(tmp_path, said):
    runner = CliRunner()

    res = runner.invoke(
        app,
        [
            "unlearn",
            "simulate",
            "--states",
            "2",
            "--horizon",
            "2",
            "--episodes",
            "16",
            "--rho",
            "0.5",
            "--out",
            str(tmp_path),
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    (run_dir,) = tmp_path.iterdir()
    assert {"config.json", "results.json", "regret.png", STATE_FILE} <= {p.name for p in run_dir.iterdir()}
    res = runner.invoke(app, ["unlearn", "delete", str(run_dir), "--user", "3", "--user", "1"])
    assert res.exit_code == 0 and "replay audit: passed" in said(res), res.output
    assert [d["user"] for d in json.loads((run_dir / "deletions.json").read_text())] == [3, 1]
    res = runner.invoke(app, ["unlearn", "delete", str(run_dir), "--user", "3"])
    assert res.exit_code == 2 and "already deleted" in said(res)
    res = runner.invoke(app, ["unlearn", "delete", str(tmp_path / "nowhere"), "--user", "1"])
    assert res.exit_code == 2 and "no learner state" in said(res)
    res = runner.invoke(app, ["unlearn", "simulate", "--rho", "1.5", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "rho" in said(res)
    out = tmp_path / "verify.json"
    res = runner.invoke(app, ["unlearn", "verify", "--trials", "200", "--json", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["config"]["alpha"] == 0.01 and result["config"]["trials"] == 200
    assert set(result["exact"]) >= {"p_values", "min_p", "passed"}
    for control in ("no_op", "drop_without_coupling"):
        assert set(result["controls"][control]) >= {"min_p", "rejected"}
