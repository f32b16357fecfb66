"""Exact unlearning on an MDP of your own: a 3-state chain where only the far end pays.
Usage: python examples/unlearn_own_mdp.py [EPISODES OUT_DIR]"""

import sys

import numpy as np

import rewire.unlearn as unlearn

episodes, out = (int(sys.argv[1]), sys.argv[2]) if len(sys.argv) > 2 else (2000, "runs/example-unlearn")

# Action 0 stays, action 1 moves right with probability 0.8; the right end pays reward 1 on average 0.9.
stay, right = np.eye(3), np.array([[0.2, 0.8, 0], [0, 0.2, 0.8], [0, 0, 1]])
transitions = np.stack([stay, right], axis=1)  # (S, A, S)
reward_mean = np.zeros((3, 2))
reward_mean[2] = 0.9
mdp = unlearn.TabularMDP.stationary(transitions, reward_mean, initial=[1, 0, 0], horizon=4)

learner = unlearn.fit(mdp, unlearn.Config(episodes=episodes, rho=0.2), seed=0, out=out)
print(f"cumulative regret after {learner.t_now} users: {learner.cumulative_regret()[-1]:.1f}")

for report in learner.delete([17, episodes // 2]):  # exact, committed atomically to out
    print(f"user {report['user']}: replayed {report['recomputed']} of {report['episodes_played']} episodes")
print("replay audit passed:", learner.audit())
reopened = unlearn.load(out)
print(f"{out} reopens with {reopened.t_now} users, {len(reopened.metrics)} metric rows")
