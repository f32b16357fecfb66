"""Cal-QL on a Gymnasium env and offline data of your own: slide a point from -1 to +1 (reward -|x - 1| per
step, 40 steps); the data are a noisy controller's episodes. Usage: calql_own_env.py [OFFLINE_STEPS OUT]"""

import sys

import gymnasium as gym
import numpy as np

import rewire


class Slide(gym.Env):
    observation_space = gym.spaces.Box(-2.0, 2.0, (1,))
    action_space = gym.spaces.Box(-1.0, 1.0, (1,))

    def reset(self, seed=None, options=None):
        self.x, self.t = -1.0 + 0.1 * np.random.default_rng(seed).standard_normal(), 0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x, self.t = float(np.clip(self.x + 0.1 * action[0], -2, 2)), self.t + 1
        return np.array([self.x], np.float32), -abs(self.x - 1.0), False, self.t >= 40, {}


steps, out = (int(sys.argv[1]), sys.argv[2]) if len(sys.argv) > 2 else (3000, "runs/example-calql")
rng, env, rows = np.random.default_rng(0), Slide(), []
for episode in range(20):  # the offline data: 20 episodes of a noisy proportional controller
    obs, _ = env.reset(seed=episode)
    for _ in range(40):
        action = np.clip([2.0 * (1.0 - obs[0]) + rng.normal(0, 0.5)], -1, 1).astype(np.float32)
        next_obs, reward, _, truncated, _ = env.step(action)
        rows.append((obs, action, reward, truncated))
        obs = next_obs
obs, actions, rewards, timeouts = (np.array(column) for column in zip(*rows, strict=True))
data = rewire.data.from_arrays(obs, actions, rewards, terminals=np.zeros(len(rows)), timeouts=timeouts)
config = rewire.calql.Config(seeds=2, offline_steps=steps, online_steps=steps // 3, eval_episodes=5)
result = rewire.calql.fit(data, Slide(), config, out=out, horizon=40)
policy = result.policy("calql/seed0")
print("calql seed 0 return:", rewire.evaluate(policy, Slide(), episodes=5)["return"].mean())
print("saved policy acts:", rewire.calql.CalQLPolicy.load(policy.save(f"{out}/policy.ckpt")).act(obs[0]))
