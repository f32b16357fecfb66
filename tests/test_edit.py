"""Model editing: MaskWorld/ShiftWorld conformance and identities, PPO's GAE, CEM and PPO on digits."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from gymnasium.utils.env_checker import check_env

from rewire.edit.agents import PPO, CEMConfig, PPOConfig, cem, gae
from rewire.edit.classifier import Recipe, digits_split, head, init_params, logits, train, with_head
from rewire.edit.world import EditWorld, MaskWorld, ShiftWorld, WorldConfig, make_params, model_head


@pytest.fixture(scope="module")
def pretrained():
    split = digits_split(0)
    params = train(init_params(jax.random.key(0)), split.x_train, split.y_train, Recipe(), jax.random.key(1))
    return params, split


@pytest.mark.parametrize("env_cls", [MaskWorld, ShiftWorld])
def test_worlds_pass_check_env_and_identity_edits_change_nothing(pretrained, env_cls):
    params, split = pretrained
    config = WorldConfig(world=env_cls.world)
    env = env_cls(make_params(params, split, config), config)
    check_env(env, skip_render_check=True)
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, np.float32)  # A = 0: an all-ones mask, or a zero shift
    for t in range(config.horizon):
        _, reward, terminated, truncated, _ = env.step(action)
        assert reward == 0.0 and terminated == (t == config.horizon - 1) and not truncated
    np.testing.assert_array_equal(env.weights, np.asarray(head(params)))
    edited = with_head(params, jnp.asarray(env.weights))
    np.testing.assert_array_equal(logits(edited, split.x_test), logits(params, split.x_test))


def test_mask_oracle_zeroes_the_forget_column_and_rewards_telescope(pretrained):
    params, split = pretrained
    config = WorldConfig(world="mask")
    world_params = make_params(params, split, config)
    env = MaskWorld(world_params, config)
    env.reset()
    action = np.zeros(env.action_space.shape, np.float32)
    action[0], action[10:] = -1.0, 1.0  # U = -e_0 (the forget class in the canonical frame), V = 1
    env.step(action)
    assert not env.weights[:, split.forget_class].any()
    world = EditWorld(config)
    actions = jax.random.uniform(jax.random.key(3), (config.horizon, world.action_dim), minval=-1, maxval=1)
    total, weights = world.rollout(world_params, actions)
    (u0, e0), (u1, e1) = world.terms(world_params, world_params.w0), world.terms(world_params, weights)
    assert float(total) == pytest.approx(float((u1 - e1) - (u0 - e0)), abs=1e-6)


def test_gae_with_gamma_one_by_hand():
    rewards = jnp.array([[1.0], [2.0], [3.0]])
    values = jnp.array([[0.5], [0.5], [0.5]])
    dones = jnp.array([[0.0], [1.0], [0.0]])
    adv, ret = gae(rewards, values, dones, jnp.array([10.0]), 0.5)
    # t=2: 3 + 10 - 0.5 = 12.5; t=1 (episode ends): 2 - 0.5 = 1.5; t=0: (1 + 0.5 - 0.5) + 0.5 * 1.5 = 1.75
    np.testing.assert_allclose(adv[:, 0], [1.75, 1.5, 12.5])
    np.testing.assert_allclose(ret, adv + values)


@pytest.mark.parametrize("world_name", ["mask", "shift"])
def test_cem_and_ppo_unlearn_the_forget_class(pretrained, world_name):
    params, split = pretrained
    config = WorldConfig(world=world_name)
    world_params = make_params(params, split, config)
    world = EditWorld(config)
    best, _ = jax.jit(lambda k: cem(world, world_params, k, CEMConfig(total_steps=5000)))(jax.random.key(0))
    utility, task = world.terms(world_params, world.rollout(world_params, best)[1])
    assert float(task) <= 0.02 and float(utility) >= 0.9
    ppo = PPO(world, PPOConfig())  # the default budget: 50k env steps
    agent, metrics = jax.jit(lambda k: ppo.train(k, world_params))(jax.random.key(0))
    utility, task = world.terms(world_params, ppo.edit(agent, world_params)[1])
    assert float(task) <= 0.02 and float(utility) >= 0.9, (utility, task)
    assert metrics["mean_episode_return"][-1] > metrics["mean_episode_return"][0]
    edited = with_head(params, model_head(world_params, ppo.edit(agent, world_params)[1]))
    keep = split.y_test != split.forget_class
    assert float((jnp.argmax(logits(edited, split.x_test[keep]), -1) == split.y_test[keep]).mean()) > 0.9


@pytest.mark.parametrize("forget", ["class", "random"])
def test_stacked_problems_pad_without_changing_the_terms(pretrained, forget):
    from rewire.edit.classifier import digits_split
    from rewire.edit.world import stack_problems

    params, _ = pretrained
    config = WorldConfig(world="mask", forget=forget)
    if forget == "class":
        splits = [digits_split(0, c) for c in (1, 8)]
    else:
        splits = [digits_split(0, None, fraction) for fraction in (0.1, 0.05)]
    problems = [make_params(params, split, config) for split in splits]
    sizes = [int(split.forget.sum()) for split in splits]
    stacked = stack_problems(problems)
    assert stacked.data.forget_x.shape[:2] == (2, max(sizes)) and sizes[0] != sizes[1]
    world = EditWorld(config)
    actions = jax.random.uniform(jax.random.key(5), (config.horizon, world.action_dim), minval=-1, maxval=1)
    for i, single in enumerate(problems):
        padded = jax.tree.map(lambda x, i=i: x[i], stacked)
        weights = world.rollout(single, actions)[1]
        assert [float(t) for t in world.terms(padded, weights)] == [
            float(t) for t in world.terms(single, weights)
        ]


def test_ppo_per_env_problems_match_one_shared_problem(pretrained):
    from rewire.edit.world import stack_problems

    params, split = pretrained
    config = WorldConfig(world="shift")
    world_params = make_params(params, split, config)
    ppo = PPO(EditWorld(config), PPOConfig(total_steps=1000))
    shared, _ = jax.jit(ppo.train)(jax.random.key(0), world_params)
    stacked = stack_problems([world_params] * ppo.config.envs)
    per_env, _ = jax.jit(lambda k, p: ppo.train(k, p, per_env=True))(jax.random.key(0), stacked)
    for a, b in zip(jax.tree.leaves(shared), jax.tree.leaves(per_env), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.fusion_emitters  # bit-identity across two programs (tests/conftest.py)
def test_ppo_in_chunks_of_the_run_loop_equals_all_updates_in_one_call(pretrained, tmp_path):
    from rewire.edit.run import EditorTraining
    from rewire.loop import Loop

    params, split = pretrained
    config = WorldConfig(world="shift")
    world_params = make_params(params, split, config)
    ppo = PPO(EditWorld(config), PPOConfig(total_steps=3500))  # 7 updates
    state = jax.jit(ppo.init_train)(jax.random.key(0), world_params)
    whole, returns = jax.jit(ppo.train_updates, static_argnums=2)(state, world_params, 7)
    training = EditorTraining(ppo, world_params, jax.random.key(0), chunk=3)  # chunks of 3, 3 and 1
    Loop(training, tmp_path, every=0, quiet=True).run(max_steps=1)
    resumed = EditorTraining(ppo, world_params, jax.random.key(0), chunk=3)
    Loop(resumed, tmp_path, every=0, quiet=True).run()
    assert resumed.returns == np.asarray(returns).tolist()
    for a, b in zip(jax.tree.leaves(whole.agent), jax.tree.leaves(resumed.state.agent), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_world_task_and_non_finite_edits_raise(pretrained):
    from rewire.bench.edit import run_edit_benchmark
    from rewire.edit.run import check_finite

    with pytest.raises(ValueError, match="unknown world"):
        EditWorld(WorldConfig(world="scale"))
    with pytest.raises(ValueError, match="unknown task"):
        EditWorld(WorldConfig(task="toxicity"))
    with pytest.raises(ValueError, match="unknown task"):
        run_edit_benchmark("toxicity")
    params, split = pretrained
    config = WorldConfig(world="shift", beta=float("inf"))
    env = ShiftWorld(make_params(params, split, config), config)
    env.reset()
    with pytest.raises(ValueError, match="non-finite"):
        env.step(np.full(env.action_space.shape, 0.5, np.float32))
    with pytest.raises(ValueError, match="shiftworld: the edit made the weights non-finite"):
        check_finite(jnp.array([1.0, jnp.nan]), "shiftworld")


def test_cli_train_apply_and_bad_files(tmp_path, said):
    from typer.testing import CliRunner

    from rewire.cli import app

    runner = CliRunner()

    res = runner.invoke(app, ["edit", "train", "--world", "shift", "--steps", "1000", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    (run_dir,) = tmp_path.iterdir()
    assert {"policy.ckpt", "model.ckpt", "edited.ckpt", "results.json", "config.json"} <= {
        p.name for p in run_dir.iterdir()
    }
    res = runner.invoke(
        app,
        ["edit", "apply", str(run_dir / "policy.ckpt"), str(run_dir / "model.ckpt"), "--forget-class", "3"],
    )
    assert res.exit_code == 0 and "applied to class 3" in said(res), res.output
    res = runner.invoke(app, ["edit", "apply", str(run_dir / "policy.ckpt"), str(run_dir / "policy.ckpt")])
    assert res.exit_code == 2 and "not a model for the unlearn task" in said(res)
    res = runner.invoke(app, ["edit", "apply", str(run_dir / "model.ckpt"), str(run_dir / "model.ckpt")])
    assert res.exit_code == 2 and "not a rewire editing policy" in said(res)
    res = runner.invoke(
        app, ["edit", "train", "--task", "bias", "--steps", "1000", "--out", str(tmp_path / "b")]
    )
    assert res.exit_code == 0, res.output
    (bias_dir,) = (tmp_path / "b").iterdir()
    res = runner.invoke(app, ["edit", "apply", str(bias_dir / "policy.ckpt"), str(run_dir / "model.ckpt")])
    assert res.exit_code == 2 and "not a model for the bias task" in said(res)
    res = runner.invoke(app, ["edit", "apply", str(bias_dir / "policy.ckpt"), str(bias_dir / "model.ckpt")])
    assert res.exit_code == 0 and "tpr_gap" in said(res), res.output
    res = runner.invoke(app, ["edit", "train", "--world", "scale", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "unknown world" in said(res)
    res = runner.invoke(app, ["edit", "train", "--forget-class", "12", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "forget class 12" in said(res)
    assert len(list(tmp_path.iterdir())) == 2  # no half-written run directory (the run and b/)


def test_cli_trains_one_policy_across_classes(tmp_path, said):
    import json

    from typer.testing import CliRunner

    from rewire.cli import app
    from rewire.edit.run import load_policy

    runner = CliRunner()

    train = ["edit", "train", "--world", "shift", "--steps", "1000", "--out", str(tmp_path)]
    res = runner.invoke(app, [*train, "--classes", "7,8", "--observe", "metrics"])
    assert res.exit_code == 0, res.output
    (run_dir,) = tmp_path.iterdir()
    policy = load_policy(run_dir / "policy.ckpt")
    assert policy["trained_on_classes"] == [7, 8] and policy["world"].observe_weights is False
    assert json.loads((run_dir / "config.json").read_text())["config"]["observe"] == "metrics"
    res = runner.invoke(
        app,
        ["edit", "apply", str(run_dir / "policy.ckpt"), str(run_dir / "model.ckpt"), "--forget-class", "3"],
    )
    assert res.exit_code == 0 and "applied to class 3" in said(res), res.output
    for extra, message in [
        (["--classes", "7,7"], "give distinct classes in 0..9"),
        (["--classes", "7,12"], "give distinct classes in 0..9"),
        (["--classes", "1,2", "--task", "bias"], "for the unlearn task"),
        (["--observe", "pixels"], "choose weights or metrics"),
    ]:
        res = runner.invoke(app, [*train, *extra])
        assert res.exit_code == 2 and message in said(res), res.output
    assert len(list(tmp_path.iterdir())) == 1  # refused runs leave no run directory


def test_text_generator_is_deterministic_and_biased_by_construction():
    from rewire.edit.text import SPLITS, generate

    a, b, c = generate(5), generate(5), generate(6)
    assert a.texts == b.texts and all(np.array_equal(a.labels[k], b.labels[k]) for k in SPLITS)
    assert a.texts != c.texts
    assert {k: len(v) for k, v in a.texts.items()} == SPLITS
    train_tie = (a.labels["train"] == a.groups["train"]).mean()
    fair_tie = (a.labels["fair_test"] == a.groups["fair_test"]).mean()
    assert 0.87 < train_tie < 0.93 and 0.45 < fair_tie < 0.55
    with pytest.raises(ValueError, match="correlation"):
        generate(0, correlation=0.3)


def _write_rows(path, rows, header=("text", "label", "group")):
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_text_files_round_trip_and_split_by_cell(tmp_path):
    from rewire.edit.text import TextTask, generate, init_text_params, read_text_file, write_text_file

    data = generate(0)
    for suffix in ("csv", "jsonl"):
        back = read_text_file(write_text_file(data, tmp_path / f"occ.{suffix}"))
        assert back.texts == data.texts
        assert all(np.array_equal(back.labels[k], data.labels[k]) for k in data.texts)
        assert all(np.array_equal(back.groups[k], data.groups[k]) for k in data.texts)
    built, read = TextTask.build(0), TextTask.from_data(read_text_file(tmp_path / "occ.csv"))
    assert built.vocab_size == read.vocab_size and all(np.array_equal(built.x[k], read.x[k]) for k in built.x)
    assert (read.edit_split, read.report_split) == ("fair_val", "fair_test")
    # Without a split field: 60/20/20 inside each (group, label) cell, the same for a seed.
    rows = list(zip(data.texts["train"], data.labels["train"], data.groups["train"], strict=True))
    path = _write_rows(tmp_path / "plain.csv", rows)
    a, b, c = read_text_file(path, seed=1), read_text_file(path, seed=1), read_text_file(path, seed=2)
    assert a.texts == b.texts and a.texts != c.texts and sorted(a.texts) == ["test", "train", "val"]
    for gv in (0, 1):
        for yv in (0, 1):
            cell = sum((data.groups["train"] == gv) & (data.labels["train"] == yv))
            sizes = {k: int(((a.groups[k] == gv) & (a.labels[k] == yv)).sum()) for k in a.texts}
            assert sum(sizes.values()) == cell and abs(sizes["train"] - 0.6 * cell) <= 1
    task = TextTask.from_data(a)
    assert (task.edit_split, task.report_split) == ("val", "test")
    model = init_text_params(jax.random.key(0), task.vocab_size)
    assert set(task.metrics(model)) == {"accuracy", "tpr_gap", "parity_gap"}  # no biased-test extra


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("a.csv", "text,label\nhello,1\n", "needs the columns ['group']"),
        ("a.csv", "text,label,group\nhello,1,0\nworld,2,1\n", "line 3: label '2' is not 0 or 1"),
        (
            "a.jsonl",
            '{"text": "a b", "label": 1, "group": 0}\n{"text": "c", "label": 0, "group": "x"}\n',
            "line 2: group 'x' is not 0 or 1",
        ),
        ("a.csv", "text,label,group\nhello,1,0\n ,0,1\n", "line 3: the text is missing or has no words"),
        ("a.jsonl", '{"text": "a", "label": 1, "group": 0}\n{"text": \n', "line 2: not valid JSON"),
        ("a.jsonl", "[1, 2]\n", "line 1: not a JSON object"),
        ("a.csv", "text,label,group,split\nhello,1,0,dev\n", "line 2: split 'dev' is not one of"),
        (
            "a.jsonl",
            '{"text": "a", "label": 1, "group": 0, "split": "test"}\n{"text": "b", "label": 1, "group": 0}\n',
            "line 2: give every row a split or none",
        ),
        ("a.csv", "text,label,group,split\nhello,1,0,train\n", "needs train, val and test rows"),
        ("a.txt", "hello", "must be .csv or .jsonl"),
        ("a.csv", "text,label,group\n", "no rows"),
    ],
)
def test_text_file_errors_name_the_line(tmp_path, name, content, message):
    from rewire.edit.text import read_text_file

    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError) as err:
        read_text_file(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_cli_bias_task_on_a_user_file(tmp_path, said):
    import json

    from typer.testing import CliRunner

    from rewire.cli import app
    from rewire.edit.text import read_text_file
    from rewire.runs import file_record

    runner = CliRunner()

    res = runner.invoke(app, ["edit", "data", str(tmp_path / "occ.jsonl"), "--seed", "1"])
    assert res.exit_code == 0 and "fair_test 5000" in said(res), res.output
    # A user's file without fair splits or a split field: the biased part of the generated data.
    data = read_text_file(tmp_path / "occ.jsonl")
    splits = ("train", "val", "test")
    rows = [r for k in splits for r in zip(data.texts[k], data.labels[k], data.groups[k], strict=True)]
    mine = _write_rows(tmp_path / "mine.csv", rows)
    out = tmp_path / "runs"
    res = runner.invoke(
        app, ["edit", "train", "--task", "bias", "--data", str(mine), "--steps", "1000", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    (run_dir,) = out.iterdir()
    metrics = json.loads((run_dir / "results.json").read_text())["metrics"]
    assert {"accuracy", "tpr_gap", "parity_gap"} <= set(metrics) and "biased_test_accuracy" not in metrics
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["data_file"] == file_record(mine)
    apply = ["edit", "apply", str(run_dir / "policy.ckpt"), str(run_dir / "model.ckpt")]
    first = runner.invoke(app, apply)
    assert first.exit_code == 0 and f"accuracy {metrics['accuracy']:.3f}" in said(first), first.output
    moved = mine.rename(tmp_path / "moved.csv")
    res = runner.invoke(app, apply)
    assert res.exit_code == 2 and "is not there" in said(res)
    res = runner.invoke(app, [*apply, "--data", str(moved)])
    assert res.exit_code == 0 and said(res) == said(first)
    with open(moved, "a") as f:
        f.write("one more sentence,1,0\n")
    res = runner.invoke(app, [*apply, "--data", str(moved)])
    assert res.exit_code == 2 and "sha256 differs" in said(res)
    res = runner.invoke(app, ["edit", "train", "--task", "unlearn", "--data", str(moved), "--out", str(out)])
    assert res.exit_code == 2 and "a data file is for the bias task" in said(res)
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label,group\nhello,1,0\nworld,yes,1\n")
    res = runner.invoke(app, ["edit", "train", "--task", "bias", "--data", str(bad), "--out", str(out)])
    assert res.exit_code == 2 and "line 3: label 'yes' is not 0 or 1" in said(res)
    assert len(list(out.iterdir())) == 1  # no run directory for the refused runs


def test_text_file_needs_every_group_label_cell_in_every_split(tmp_path):
    from rewire.edit.text import read_text_file

    rows = [("w", y, g, s) for s in ("train", "val", "test") for g in (0, 1) for y in (0, 1)]
    rows.remove(("w", 0, 1, "val"))
    path = _write_rows(tmp_path / "cells.csv", rows, ("text", "label", "group", "split"))
    with pytest.raises(ValueError, match="the val split has no rows of group 1 with label 0"):
        read_text_file(path)
    with pytest.raises(FileNotFoundError):
        read_text_file(tmp_path / "missing.csv")


def test_group_metrics_and_reweighing_by_hand():
    from rewire.edit.text import group_metrics, reweighing

    predicted = np.array([1, 1, 0, 0, 1, 0, 1, 0])
    y = np.array([1, 1, 1, 0, 1, 1, 0, 0])
    g = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    m = group_metrics(predicted, y, g)
    # TPR: group 1 = 2/3, group 0 = 1/2; positive rate: group 1 = 2/4, group 0 = 2/4
    assert float(m["tpr_gap"]) == pytest.approx(1 / 6) and float(m["parity_gap"]) == pytest.approx(0.0)
    assert float(m["accuracy"]) == pytest.approx(5 / 8)  # right at positions 0, 1, 3, 4, 7
    w = reweighing(y, g)
    # cell (g=1, y=1): P(g=1) P(y=1) / P(g=1, y=1) = (1/2)(5/8) / (3/8)
    assert w[0] == pytest.approx(0.5 * 0.625 / 0.375)


def test_bias_world_terms_match_the_model_and_shift_reduces_the_gap():
    import jax

    from rewire.edit.text import TextTask, init_text_params, text_logits, train_text
    from rewire.edit.world import make_bias_params

    task = TextTask.build(0)
    params = train_text(
        init_text_params(jax.random.key(0), task.vocab_size),
        task.x["train"],
        task.y["train"],
        jax.random.key(1),
    )
    y, g = (np.asarray(task.y["fair_val"], np.float32), np.asarray(task.g["fair_val"], np.float32))
    world_params = make_bias_params(params, task.x["fair_val"], y, g)
    config = WorldConfig(world="shift", task="bias")
    env = ShiftWorld(world_params, config)
    check_env(env, skip_render_check=True)
    world = EditWorld(config, world_params.w0.shape)
    utility, gap = world.terms(world_params, world_params.w0)
    predicted = np.asarray(text_logits(params, task.x["fair_val"]) > 0)
    assert float(utility) == pytest.approx((predicted == task.y["fair_val"]).mean())
    assert float(gap) > 0.1  # the spurious cue shows on the fair split


def test_random_forget_task_term_by_hand(pretrained):
    """Random 10%: task term = max(0, acc(forget) - acc(validation)) + |P(loss_f < loss_v) - 0.5|."""
    from rewire.edit.classifier import digits_split, per_example_loss

    params, _ = pretrained
    split = digits_split(0, None)
    config = WorldConfig(world="mask", forget="random")
    world_params = make_params(params, split, config)
    _, task = EditWorld(config).terms(world_params, world_params.w0)
    f = split.forget
    pred = np.asarray(jnp.argmax(logits(params, split.x_train[f]), -1))
    acc_f = (pred == split.y_train[f]).mean()
    acc_v = (np.asarray(jnp.argmax(logits(params, split.x_val), -1)) == split.y_val).mean()
    lf = np.asarray(per_example_loss(params, split.x_train[f], split.y_train[f]))
    lv = np.asarray(per_example_loss(params, split.x_val, split.y_val))
    auc = np.mean([[a < b for b in lv] for a in lf]) + 0.5 * np.mean([[a == b for b in lv] for a in lf])
    assert float(task) == pytest.approx(max(0.0, acc_f - acc_v) + abs(auc - 0.5), abs=1e-3)
    with pytest.raises(ValueError, match="forget mode"):
        WorldConfig(forget="half").validate()


def _blobs_classifier():
    import flax.linen as nn

    x = jax.random.normal(jax.random.key(0), (600, 2)) + jnp.repeat(
        jnp.array([[-3.0, 0], [3, 0], [0, 3]]), 200, 0
    )
    y = jnp.repeat(jnp.arange(3), 200)
    model = nn.Sequential([nn.Dense(16), nn.relu, nn.Dense(3)])
    params = model.init(jax.random.key(1), x)
    opt = optax.adam(0.05)
    state = opt.init(params)

    def loss(p):
        return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, x), y).mean()

    for _ in range(200):
        updates, state = opt.update(jax.grad(loss)(params), state)
        params = optax.apply_updates(params, updates)
    return model, params, x, y


def test_a_flax_classifier_of_ones_own_forgets_a_class(tmp_path):
    import rewire.edit as edit

    model, params, x, y = _blobs_classifier()
    forget = y == 2
    layer = ("params", "layers_2", "kernel")
    problem = edit.Problem(
        model, params, layer, retain=(x[~forget], y[~forget]), forget=(x[forget], y[forget])
    )
    world_params, world = problem.world(edit.Config(world="shift"))
    state, _ = world.reset(world_params)
    _, _, reward, _, _ = world.step(world_params, state, jnp.zeros(world.action_dim))
    assert float(reward) == 0.0  # a zero shift changes nothing
    utility, task = world.terms(world_params, world_params.w0)
    assert float(task) == pytest.approx(problem.measure(params)["forget_accuracy"])
    result = edit.fit(
        problem, edit.Config(world="shift"), edit.PPOConfig(total_steps=20000), out=tmp_path / "r"
    )
    before, after = result.summary["before"], result.summary["after"]
    assert before["forget_accuracy"] > 0.95 and after["forget_accuracy"] < 0.05
    assert after["retain_accuracy"] >= before["retain_accuracy"] - 0.02
    np.testing.assert_array_equal(
        edit.get_layer(result.apply(params), layer), edit.get_layer(result.edited_params, layer)
    )
    assert [row["update"] for row in result.metrics] == list(range(1, 41))
    with pytest.raises(ValueError, match="pass the Problem"):
        edit.load(tmp_path / "r").apply(params)
    with pytest.raises(ValueError, match="no 'Dense_9'"):
        edit.Problem(model, params, ("params", "Dense_9"), retain=(x, y), forget=(x, y))
    with pytest.raises(ValueError, match="2-D arrays"):
        edit.Problem(model, params, ("params", "layers_2", "bias"), retain=(x, y), forget=(x, y))
    with pytest.raises(ValueError, match="not both"):
        edit.Problem(model, params, layer, retain=(x, y))
