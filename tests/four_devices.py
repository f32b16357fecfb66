"""Tiny runs of every system on 1 device and on 4 forced CPU devices (XLA_FLAGS set by the caller,
`tests/test_devices.py`); prints RESULT and a JSON of the comparisons."""

import json
from dataclasses import replace

import jax
import numpy as np

from rewire.amf.core import AMFConfig
from rewire.amf.models import NNSettings
from rewire.amf.run import AMFRun
from rewire.calql import cql
from rewire.calql.trainer import FinetuneConfig, Finetuner
from rewire.data.generate import scripted_dataset
from rewire.edit.agents import PPO, PPOConfig
from rewire.edit.run import EditorTraining, pretrain, problem, task_data
from rewire.edit.world import EditWorld, WorldConfig
from rewire.envs import make_spec
from rewire.envs.control import make_control
from rewire.envs.metaworld import MetaWorldSettings
from rewire.es import ESConfig
from rewire.hades.bc import Learner
from rewire.hades.core import TaskDataset, default_config
from rewire.hades.multitask import evaluate_multitask, layout_for, train_multitask
from rewire.hades.run import build_hades
from rewire.loop import Loop
from rewire.unlearn.session import Setup
from rewire.unlearn.verify import Verifier


def close(a, b, rtol: float) -> bool:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return all(np.allclose(x, y, rtol=rtol, atol=1e-6) for x, y in pairs)


def numbers(x) -> list[float]:
    if isinstance(x, dict):
        return [v for k in sorted(x) for v in numbers(x[k])]
    if isinstance(x, list | tuple):
        return [v for item in x for v in numbers(item)]
    return [float(x)] if isinstance(x, int | float) else []


def calql() -> dict:
    agent = cql.CQLConfig(actor_hidden=(8,), critic_hidden=(8,), batch_size=8, cql_n_actions=2)
    config = FinetuneConfig(
        env_id="PointMaze-open-v0",
        seeds=2,
        offline_steps=50,
        offline_block=50,
        online_steps=50,
        chunk=50,
        eval_every=50,
        offline_eval_every=50,
        eval_episodes=2,
        probe_size=16,
        agent=agent,
    )
    data = scripted_dataset(make_spec(config.env_id), 2, seed=0)
    one, four = (Finetuner(config, data, devices=d) for d in (1, 4))
    for trainer in (one, four):
        Loop(trainer, quiet=True).run()
    return {
        "evals_equal": one.results() == four.results(),
        "params_close": close(one.states.params, four.states.params, 1e-4),
        "split_over_4": four.states.params["log_alpha"].sharding.num_devices == 4,
    }


def hades() -> dict:
    config = replace(default_config("CartPole-v1"), generations=2, es=ESConfig(popsize=8), rollout_steps=30)
    one, four = (build_hades(config, 0, devices=d) for d in (1, 4))
    for run in (one, four):
        run.loop(quiet=True).run()
    # zero-shot multi-task policies: trained and evaluated with the fresh policies split over devices
    rng = np.random.default_rng(0)
    tasks = []
    for env_id in ("CartPole-v1", "Acrobot-v1"):
        task = make_control(env_id)
        states = {"states": rng.normal(size=(6, task.obs_dim)).astype(np.float32)}
        tasks.append(TaskDataset(task, states, np.zeros(task.obs_dim), np.ones(task.obs_dim), Learner()))
    layout = layout_for(tasks)
    learner = Learner(hidden=(16, 16), steps=8)
    trained = [train_multitask(tasks, learner, jax.random.key(1), 4, layout, d) for d in (1, 4)]
    module, params = trained[0][0], trained[0][1]
    key = jax.random.key(2)
    returns = [evaluate_multitask(tasks, layout, module, params, key, 2, False, d) for d in (1, 4)]
    first_layer = trained[1][1]["params"]["net"]["Dense_0"]["kernel"]
    return {
        "fitness_equal": one.evolution.history == four.evolution.history,
        "mean_close": close(one.evolution.mean(), four.evolution.mean(), 1e-5),
        "multitask_params_close": close(trained[0][1], trained[1][1], 1e-4),
        "multitask_returns_equal": all(np.array_equal(a, b) for a, b in zip(*returns, strict=True)),
        "multitask_split_over_4": first_layer.sharding.num_devices == 4,
    }


def amf() -> dict:
    config = AMFConfig(tasks=8, budget=2, batch=2)
    one, four = (AMFRun(config, ["mismatch"], [0, 1], ["amf", "uniform"], devices=d) for d in (1, 4))
    # Meta-World's episodes run on the host; the runs' policies, selection and refits sit on the mesh
    host = AMFConfig(
        env="metaworld",
        model="nn",
        budget=2,
        batch=1,
        nn=NNSettings(hidden=(8, 8), pretrain_steps=10, finetune_steps=5, batch_size=16),
        metaworld=MetaWorldSettings(
            tasks="reach-v3,push-v3@right", eval_starts=1, pretrain_per_task=1, horizon=20
        ),
    )
    host_one, host_four = (AMFRun(host, ["mismatch"], [0, 1], ["amf", "uniform"], devices=d) for d in (1, 4))
    for run in (one, four, host_one, host_four):
        Loop(run, quiet=True).run()
    return {
        "results_equal": one.results() == four.results(),
        "metaworld_results_equal": host_one.results() == host_four.results(),
        "metaworld_split_over_4": host_four.state.key.sharding.num_devices == 4,
    }


def edit() -> dict:
    split = task_data("unlearn", 0, 7)
    params, _ = problem("unlearn", pretrain("unlearn", split, 0), split, WorldConfig(), 0)
    ppo = PPO(EditWorld(WorldConfig(), params.w0.shape), PPOConfig(total_steps=500))
    one, two = (EditorTraining(ppo, params, jax.random.key(0), devices=d) for d in (1, 2))  # 10 envs
    for training in (one, two):
        Loop(training, quiet=True).run()
    return {
        "agent_close": close(one.state.agent, two.state.agent, 1e-4),
        "returns_close": bool(np.allclose(one.returns, two.returns, rtol=1e-4)),
    }


def unlearn() -> dict:
    setup = Setup(states=2, actions=2, horizon=2, episodes=8, rho=0.9)
    one, four = (Verifier(setup, 20, seed=0, devices=d).run() for d in (1, 4))
    decisions = one["exact"]["passed"] == four["exact"]["passed"] and all(
        one["controls"][c]["rejected"] == four["controls"][c]["rejected"] for c in one["controls"]
    )
    # float64 projections differ by ~1e-15 between layouts, which can break a tie between two trials of a
    # continuous statistic and so move that statistic's rank-test p-value; the decisions must not move
    a, b = np.asarray(numbers(one)), np.asarray(numbers(four))
    moved = float(np.mean(~np.isclose(a, b, rtol=1e-9, atol=1e-12)))
    smallest = [one["exact"][k] == four["exact"][k] for k in ("min_p", "min_adjusted_p")]
    return {"decisions_equal": decisions, "min_p_equal": all(smallest), "under_2%_of_p_moved": moved < 0.02}


if __name__ == "__main__":
    assert len(jax.devices()) == 4
    systems = {"calql": calql, "hades": hades, "amf": amf, "edit": edit, "unlearn": unlearn}
    print("RESULT " + json.dumps({name: run() for name, run in systems.items()}))
