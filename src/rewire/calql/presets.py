"""Named Cal-QL settings: the benchmark's tuned presets (`PRESETS`: quick, full, demo), each a
`FinetuneConfig` for the point mazes; `maze` is the quick one."""

from __future__ import annotations

import dataclasses

from rewire.calql import cql
from rewire.calql.trainer import FinetuneConfig

# The small-CPU protocol (README, "Cal-QL"), sized for 2 cores. The agent settings come from a
# sweep on the U-maze (README, "Where rewire departs from the papers"): without importance sampling and with
# a fixed alpha of 25, CQL's critic sits under the Monte-Carlo floor on about a third of policy samples at
# the switch (the tuning gate the README describes), and faster targets and learning rates fit the small
# update budget; two updates per online step let the actor move within the first 20% of fine-tuning, where a
# dip is measured.
TUNED = cql.CQLConfig(
    cql_weight=25.0, importance_sampling=False, tau=0.01, critic_lr=1e-3, actor_lr=1e-3, cql_n_actions=4
)
QUICK = FinetuneConfig(
    offline_steps=10_000, online_steps=5_000, utd=2, eval_every=250, offline_eval_every=2_500, agent=TUNED
)
PRESETS: dict[str, FinetuneConfig] = {
    "quick": QUICK,
    "full": dataclasses.replace(
        QUICK,
        offline_steps=20_000,
        online_steps=10_000,
        agent=dataclasses.replace(TUNED, cql_n_actions=10, batch_size=256),
    ),
    "demo": dataclasses.replace(
        QUICK, offline_steps=8_000, online_steps=3_000, offline_eval_every=2_000, seeds=2
    ),
}
# gymnasium-robotics' PointMaze (`rewire bench calql --env PointMaze_Medium-v3`): the quick agent and budget,
# evaluated on 200 episodes in the dip's window (the switch and the first 1,000 steps, every 250) and on 20
# after it. The dip is the switch's score minus the window's lowest, so evaluation noise alone makes one:
# for a flat success of 0.5 its mean is 0.13 with 20 episodes per evaluation and 0.04 with 200 (binomial
# simulation, README "Cal-QL").
PRESETS["mujoco"] = dataclasses.replace(QUICK, early_eval_episodes=200)
maze = QUICK
