"""AMF on a task family of your own: a 1-D point that must stop at one of eight targets. The expert pushes
towards the target; pretraining saw only targets 0-3. Usage: amf_own_family.py [BUDGET OUT_DIR]"""

import sys

import jax.numpy as jnp

import rewire.amf as amf

budget, out = (int(sys.argv[1]), sys.argv[2]) if len(sys.argv) > 2 else (16, "runs/example-amf")
family = amf.TaskFamily(
    tasks=jnp.linspace(-1.0, 1.0, 8)[:, None],  # what the policy sees of a task: its target
    step=lambda state, action: state + action,
    expert=lambda state, target: 0.5 * (target - state),
    success=lambda final, target: jnp.abs(final - target)[0] < 0.05,
    start=jnp.zeros(1),
    horizon=10,
    max_action=0.3,
    start_noise=0.1,
    starts=jnp.array([[-0.1], [0.0], [0.1]]),
)
config = amf.Config(budget=budget, batch=2, model="gp")
for selector in ("amf", "uniform"):
    result = amf.fit(
        family, config, seed=0, selector=selector, pretrain_tasks=[0, 1, 2, 3], out=f"{out}/{selector}"
    )
    success, asked = result.summary["success_median"], result.summary["tasks_per_seed"][0]
    print(f"{selector}: success {success[0]:.2f} -> {success[-1]:.2f}, asked for tasks {asked}")
