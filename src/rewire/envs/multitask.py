"""Goal-conditioned multi-task environments in JAX, each with a scripted noisy expert (used by AMF).

Every family has a finite task set: goals at `num_tasks // 2` angles and two radii. Task i has angle index
i % (num_tasks // 2) and radius index i // (num_tasks // 2). A policy sees x = (state, goal).

Episodes start uniformly in a disc of radius `start_spread` around the nominal start, so one demonstration
per task does not pin a task down. Evaluation uses `EVAL_STARTS` fixed starts per task (the nominal one and
four on the disc's edge).

- `reach2d`: a 2-D single integrator s' = s + clip_norm(a, max_step) from near 0, goals on two circles.
  Expert: a = clip_norm(gain (g - s), max_step) + N(0, noise^2 I).
- `arm2d`: a planar two-link arm whose state is its joint angles; an action is a joint-angle increment.
  Goals lie on two arcs of the reachable annulus (angles in [-150, 150] degrees, so the inverse kinematics
  is continuous in the goal). Expert: a = clip_norm(gain (q*(g) - q), max_step) + noise, with q*(g) the
  elbow-down inverse-kinematics solution. The map goal -> action is nonlinear, so it needs more demos.

Success: the end effector finishes the episode (after `horizon` actions) within `tolerance` of the goal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# policy_fn(state, task index) -> action
TaskPolicy = Callable[[jax.Array, jax.Array], jax.Array]


def clip_norm(a: jax.Array, max_norm: float) -> jax.Array:
    """Scale `a` down to norm `max_norm` when it is longer (a smooth, direction-preserving clip)."""
    norm = jnp.linalg.norm(a, axis=-1, keepdims=True)
    return a * jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))


class TaskInputs:
    """What AMF's models use of any task family: a policy sees x = (state, goal of the task), and its
    actions are clipped. Hooks: `goals` (C, goal_dim), `state_dim`, `goal_dim`, `max_step` (the norm actions
    are clipped to, and the BC loss's unit), `name`."""

    @property
    def num_tasks(self) -> int:
        return int(self.goals.shape[0])

    @property
    def input_dim(self) -> int:
        return self.state_dim + self.goal_dim

    def check_task(self, task: int) -> int:
        """Return `task` if it is a valid task id, else raise a clear error."""
        if not 0 <= int(task) < self.num_tasks:
            raise ValueError(f"unknown task id {task}: {self.name} has tasks 0..{self.num_tasks - 1}")
        return int(task)

    def inputs(self, states: jax.Array, task: jax.Array) -> jax.Array:
        """Policy inputs (state, goal of `task`) for states of shape (..., state_dim)."""
        goal = jnp.broadcast_to(self.goals[task], states.shape[:-1] + (self.goal_dim,))
        return jnp.concatenate([states, goal.astype(states.dtype)], axis=-1)

    def clip_action(self, action: jax.Array) -> jax.Array:
        """An action inside the family's action set: scaled down to norm `max_step`."""
        return clip_norm(action, self.max_step)


class FamilyMethods(TaskInputs):
    """A task family whose episodes run in JAX (inside AMF's jitted round), built on the hooks of
    `TaskInputs` and `action_dim`, `horizon`, `expert_noise`, `step`, `expert_mean`, `task_success`,
    `nominal_start`, `sample_start`, `eval_starts`."""

    def rollout(
        self, policy_fn: TaskPolicy, task: jax.Array, start: jax.Array, key: jax.Array, noise: float = 0.0
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """One episode of `policy_fn` in `task` from `start` with Gaussian action noise: (states (H, S),
        actions (H, A), final state). states[t] is the state the t-th action was taken in."""

        def body(state, k):
            action = policy_fn(state, task) + noise * jax.random.normal(k, (self.action_dim,), state.dtype)
            return self.step(state, action), (state, action)

        final, (states, actions) = jax.lax.scan(body, start, jax.random.split(key, self.horizon))
        return states, actions, final

    def demonstrate(self, task: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """A noisy expert demonstration of `task` from a random start: (states (H, S), actions (H, A))."""
        k_start, k_noise = jax.random.split(key)
        states, actions, _ = self.rollout(
            self.expert_mean, task, self.sample_start(k_start), k_noise, self.expert_noise
        )
        return states, actions

    def success_per_task(self, policy_fn: TaskPolicy) -> jax.Array:
        """Noise-free rollouts of `policy_fn` from every evaluation start of every task: the fraction that
        succeed, per task (C,)."""

        def one(task, start):
            _, _, final = self.rollout(policy_fn, task, start, jax.random.key(0))
            return self.task_success(final, task)

        starts = self.eval_starts
        per_start = jax.vmap(lambda t: jax.vmap(lambda s: one(t, s))(starts))(jnp.arange(self.num_tasks))
        return jnp.mean(per_start.astype(jnp.float32), axis=1)


@dataclass(frozen=True)
class MultiTaskEnv(FamilyMethods):
    """A built-in goal-conditioned family: dynamics, expert and success test (all pure JAX)."""

    name: str
    kind: str  # "reach" or "arm"
    goals_: tuple[tuple[float, float], ...]
    horizon: int
    state_dim: int
    init_state: tuple[float, ...]
    max_step: float
    tolerance: float
    start_spread: float = 0.3
    expert_noise: float = 0.01
    gain: float = 0.5
    links: tuple[float, float] = (0.5, 0.5)

    action_dim = 2
    goal_dim = 2

    @property
    def goals(self) -> jax.Array:
        return jnp.asarray(self.goals_)

    @property
    def num_angles(self) -> int:
        return self.num_tasks // 2

    def step(self, state: jax.Array, action: jax.Array) -> jax.Array:
        return state + clip_norm(action, self.max_step)

    def end_effector(self, state: jax.Array) -> jax.Array:
        if self.kind == "reach":
            return state
        l1, l2 = self.links
        q1, q12 = state[..., 0], state[..., 0] + state[..., 1]
        return jnp.stack([l1 * jnp.cos(q1) + l2 * jnp.cos(q12), l1 * jnp.sin(q1) + l2 * jnp.sin(q12)], -1)

    def target_state(self, goal: jax.Array) -> jax.Array:
        """The state the expert heads for: the goal itself, or the arm's elbow-down IK solution."""
        if self.kind == "reach":
            return goal
        l1, l2 = self.links
        cos_q2 = (jnp.sum(goal**2, -1) - l1**2 - l2**2) / (2 * l1 * l2)
        q2 = jnp.arccos(jnp.clip(cos_q2, -1.0, 1.0))
        q1 = jnp.arctan2(goal[..., 1], goal[..., 0]) - jnp.arctan2(l2 * jnp.sin(q2), l1 + l2 * jnp.cos(q2))
        return jnp.stack([q1, q2], -1)

    def expert_mean(self, state: jax.Array, task: jax.Array) -> jax.Array:
        """The noise-free expert action pi*(s, c)."""
        return clip_norm(self.gain * (self.target_state(self.goals[task]) - state), self.max_step)

    def task_success(self, final_state: jax.Array, task: jax.Array) -> jax.Array:
        distance = jnp.linalg.norm(self.end_effector(final_state) - self.goals[task], axis=-1)
        return distance < self.tolerance

    @property
    def nominal_start(self) -> jax.Array:
        return jnp.asarray(self.init_state, dtype=self.goals.dtype)

    def sample_start(self, key: jax.Array) -> jax.Array:
        """A start drawn uniformly from the disc of radius `start_spread` around the nominal start."""
        k_angle, k_radius = jax.random.split(key)
        angle = jax.random.uniform(k_angle, (), self.goals.dtype, 0, 2 * jnp.pi)
        radius = self.start_spread * jnp.sqrt(jax.random.uniform(k_radius, (), self.goals.dtype))
        return self.nominal_start + radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)])

    @property
    def eval_starts(self) -> jax.Array:
        """The nominal start and four starts on the edge of the start disc."""
        angles = jnp.pi / 4 + jnp.pi / 2 * jnp.arange(EVAL_STARTS - 1)
        ring = self.start_spread * jnp.stack([jnp.cos(angles), jnp.sin(angles)], -1)
        return self.nominal_start + jnp.concatenate([jnp.zeros((1, 2)), ring]).astype(self.goals.dtype)


@dataclass(frozen=True, eq=False)
class TaskFamily(FamilyMethods):
    """A task family of your own for AMF. `tasks` (C, goal_dim): what a policy sees of each task (a goal, a
    one-hot id, parameters); `step(state, action) -> state`; `expert(state, task_row) -> action`, the
    noise-free expert the demonstrations come from (with `expert_noise` Gaussian noise added);
    `success(final_state, task_row) -> bool`; `start` (state_dim,): the nominal start; episodes start at
    `start` plus `start_noise` times a standard normal draw, and are evaluated from `eval_starts` (E,
    state_dim; default: `start` alone). Actions are clipped to norm `max_action`."""

    tasks: Any
    step: Callable[[jax.Array, jax.Array], jax.Array]
    expert: Callable[[jax.Array, jax.Array], jax.Array]
    success: Callable[[jax.Array, jax.Array], jax.Array]
    start: Any
    horizon: int
    max_action: float
    expert_noise: float = 0.01
    start_noise: float = 0.0
    starts: Any = None
    name: str = "task-family"

    def __post_init__(self) -> None:
        tasks, start = np.asarray(self.tasks), np.asarray(self.start)
        if tasks.ndim != 2 or len(tasks) < 2 or start.ndim != 1:
            raise ValueError(
                f"tasks must be (C >= 2, goal_dim) and start (state_dim,); got {tasks.shape}, {start.shape}"
            )
        if self.horizon < 1 or self.max_action <= 0 or self.expert_noise <= 0 or self.start_noise < 0:
            raise ValueError("need horizon >= 1, max_action > 0, expert_noise > 0 and start_noise >= 0")
        if self.starts is not None and np.asarray(self.starts).shape[1:] != start.shape:
            raise ValueError(
                f"eval starts must be (E, {start.shape[0]}), got {np.asarray(self.starts).shape}"
            )
        probe = np.asarray(self.expert(jnp.asarray(start), jnp.asarray(tasks[0])))
        if probe.ndim != 1:
            raise ValueError(f"the expert must return an action vector, got shape {probe.shape}")
        object.__setattr__(self, "action_dim", int(probe.shape[0]))

    @property
    def goals(self) -> jax.Array:
        return jnp.asarray(self.tasks)

    @property
    def state_dim(self) -> int:
        return int(np.shape(self.start)[0])

    @property
    def goal_dim(self) -> int:
        return int(np.shape(self.tasks)[1])

    @property
    def max_step(self) -> float:
        return self.max_action

    def expert_mean(self, state: jax.Array, task: jax.Array) -> jax.Array:
        return clip_norm(self.expert(state, self.goals[task].astype(state.dtype)), self.max_action)

    def task_success(self, final_state: jax.Array, task: jax.Array) -> jax.Array:
        return jnp.asarray(self.success(final_state, self.goals[task].astype(final_state.dtype)), bool)

    @property
    def nominal_start(self) -> jax.Array:
        return jnp.asarray(self.start, dtype=self.goals.dtype)

    def sample_start(self, key: jax.Array) -> jax.Array:
        noise = jax.random.normal(key, (self.state_dim,), self.goals.dtype)
        return self.nominal_start + self.start_noise * noise

    @property
    def eval_starts(self) -> jax.Array:
        starts = self.nominal_start[None] if self.starts is None else self.starts
        return jnp.asarray(starts, self.goals.dtype)


EVAL_STARTS = 5
ENV_IDS = ("reach2d", "arm2d")


def make_multitask(env_id: str, num_tasks: int = 24) -> MultiTaskEnv:
    """Build a task family by id ('reach2d' or 'arm2d') with `num_tasks` tasks (even, at least 4)."""
    if env_id not in ENV_IDS:
        raise ValueError(f"unknown multi-task env {env_id!r}; choose one of {list(ENV_IDS)}")
    if num_tasks < 4 or num_tasks % 2:
        raise ValueError(f"--tasks must be an even number >= 4 (angles x 2 radii), got {num_tasks}")
    n = num_tasks // 2
    if env_id == "reach2d":
        angles, radii = 2 * np.pi * np.arange(n) / n, (0.6, 1.2)
        spec = dict(kind="reach", horizon=20, state_dim=2, init_state=(0.0, 0.0), max_step=0.15)
    else:
        angles, radii = np.deg2rad(np.linspace(-150.0, 150.0, n)), (0.45, 0.85)
        spec = dict(kind="arm", horizon=25, state_dim=2, init_state=(0.0, 0.3), max_step=0.25)
    goals = tuple((r * float(np.cos(t)), r * float(np.sin(t))) for r in radii for t in angles)
    return MultiTaskEnv(name=env_id, goals_=goals, tolerance=0.05, **spec)


SETTINGS = ("mismatch", "control", "full")


def pretraining_demo_tasks(env: MultiTaskEnv, setting: str) -> np.ndarray:
    """The task of each pretraining demonstration (always `num_tasks` of them, so settings share shapes).

    - 'mismatch': the first half of the angles at both radii, about 2 demos each; the other half of the
      circle is never seen (the skew that makes active selection matter).
    - 'control': every other angle around the whole circle at both radii, 2 demos each: the pretraining
      tasks are spread like the uniform target distribution, with no region left out.
    - 'full': one demo of every task. Saturated: every selector starts and stays at full success.
    """
    angles = np.arange(env.num_angles)
    if setting == "mismatch":
        seen = angles[: env.num_angles // 2]
    elif setting == "control":
        seen = angles[::2]
    elif setting == "full":
        seen = angles
    else:
        raise ValueError(f"unknown setting {setting!r}; choose one of {list(SETTINGS)}")
    return np.resize(np.concatenate([seen, seen + env.num_angles]), env.num_tasks)
