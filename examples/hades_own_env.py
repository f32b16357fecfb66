"""HaDES on a gymnax-style env of your own, Centre (push a drifting point back to 0: reward -|x| per step,
50 steps, actions left or right), with a flax policy of your own. Usage: hades_own_env.py [GENERATIONS OUT]"""

import sys

import flax.linen as nn
import jax
from flax import struct
from gymnax.environments import environment, spaces

import rewire.hades as hades


@struct.dataclass
class State(environment.EnvState):
    x: jax.Array


class Centre(environment.Environment):
    default_params = environment.EnvParams(max_steps_in_episode=50)

    def step_env(self, key, state, action, params):
        x = state.x + 0.2 * action - 0.1 + 0.05 * jax.random.normal(key)
        return x[None], State(time=state.time + 1, x=x), -abs(x), False, {}

    def reset_env(self, key, params):
        return (x := jax.random.uniform(key, (1,), minval=-1, maxval=1)), State(time=0, x=x[0])

    def action_space(self, params):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(-float("inf"), float("inf"), (1,))


generations, out = (int(sys.argv[1]), sys.argv[2]) if len(sys.argv) > 2 else (40, "runs/example-hades")
config = hades.Config(size=2, generations=generations, es=hades.ESConfig(popsize=16))
logits = nn.Sequential([nn.Dense(16), nn.tanh, nn.Dense(2)])
result = hades.fit(Centre(), config, seed=0, out=out, policy=logits)
print("states", result.dataset["states"].ravel(), "return", result.summary["return_median"], result.plot())
