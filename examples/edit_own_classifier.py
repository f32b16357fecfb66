"""Make a flax classifier of your own forget one class: a small MLP on three Gaussian blobs; ShiftWorld edits
its last Dense kernel. Usage: edit_own_classifier.py [PPO_STEPS OUT_DIR]"""

import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

import rewire.edit as edit

steps, out = (int(sys.argv[1]), sys.argv[2]) if len(sys.argv) > 2 else (20000, "runs/example-edit")
x = jax.random.normal(jax.random.key(0), (600, 2)) + jnp.repeat(
    jnp.array([[-3.0, 0], [3, 0], [0, 3]]), 200, 0
)
y = jnp.repeat(jnp.arange(3), 200)
model = nn.Sequential([nn.Dense(16), nn.relu, nn.Dense(3)])
params = model.init(jax.random.key(1), x)
opt = optax.adam(0.05)
state = opt.init(params)
for _ in range(200):  # train it: full-batch Adam on the cross-entropy
    loss = lambda p: optax.softmax_cross_entropy_with_integer_labels(model.apply(p, x), y).mean()  # noqa: E731
    updates, state = opt.update(jax.grad(loss)(params), state)
    params = optax.apply_updates(params, updates)

forget = y == 2  # forget class 2, keep classes 0 and 1
problem = edit.Problem(
    model,
    params,
    ("params", "layers_2", "kernel"),
    retain=(x[~forget], y[~forget]),
    forget=(x[forget], y[forget]),
)
result = edit.fit(problem, edit.Config(world="shift"), edit.PPOConfig(total_steps=steps), seed=0, out=out)
print("before:", result.summary["before"], "after:", result.summary["after"])
