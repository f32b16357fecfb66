"""Meta-World manipulation tasks as an AMF task family (Bagatella et al., Sec. 5: four Meta-World tasks with
scripted experts). The simulators are MuJoCo, stepped on the host; everything else of AMF stays in JAX.

The paper's four tasks (`TASK_SETS["paper"]`) are a cup pushed to two positions and a faucet opened and
closed. Meta-World's `push-v3` pushes a cylindrical cup-like puck to a goal; `push-v3@left` and
`push-v3@right` fix that goal at x = -0.1 and x = +0.1 (y = 0.9, the far edge of the env's goal box), so the
two tasks differ only in where the cup must go. `faucet-open-v3` and `faucet-close-v3` turn the faucet's
handle either way. Any other Meta-World v3 env runs with its own object and goal variation
(`TASK_SETS["mt10"]`, or a comma-separated list of env names).

A policy sees the 39-dimensional observation (hand, gripper, objects, the previous frame, the goal) plus a
one-hot task id. Episodes last `HORIZON` steps, which the experts finish within (README "AMF"); success is
the env's own `success` flag at any step. Starts are the env's random object and goal placements, drawn
from seeded streams: a fixed set of `eval_starts` per task for evaluation, one more per task for the
policy's proxy rollouts, and a fresh one per demonstration. Demonstrations are Meta-World's scripted policy
plus Gaussian action noise of std `expert_noise`, clipped to the action box [-1, 1]^4.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass

import jax
import jax.numpy as jnp
import numpy as np

from rewire.envs.multitask import TaskInputs

HORIZON = 100  # the scripted experts finish these tasks within 80 steps at noise 0.1 (README "AMF")
EXPERT_NOISE = 0.1
WAVE = 64  # simulators alive at once (about 23 MB each); more episodes run in waves of this size
STATE_DIM, ACTION_DIM = 39, 4
# The fixed goals of the paper's two push tasks: (x, y, z) of the goal, the last 3 entries of push-v3's
# random reset vector (object x, y, z, goal x, y, z). The cup starts at y <= 0.7, so it is always >= 0.2 away.
VARIANTS = {"push-v3@left": ("push-v3", (-0.1, 0.9, 0.01)), "push-v3@right": ("push-v3", (0.1, 0.9, 0.01))}
MT10 = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)
TASK_SETS = {"paper": ("push-v3@left", "push-v3@right", "faucet-open-v3", "faucet-close-v3"), "mt10": MT10}
STREAMS = {"eval": 0, "proxy": 1, "demo": 2, "pretrain": 3}  # the seeded start streams, kept apart

# act(observations (m, 39), the episodes they belong to (m,), indices into the call's list) -> actions (m, 4)
HostPolicy = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class MetaWorldSettings:
    """AMF's Meta-World family in a config: the task set (`parse_tasks`), evaluation starts per task, the
    seed of the evaluation and proxy starts every run shares, pretraining demonstrations per pretrained
    task in the `full` setting (the `mismatch` setting spends as many on half the tasks), the episode
    length and the experts' action noise."""

    tasks: str = "paper"
    eval_starts: int = 5
    start_seed: int = 0
    pretrain_per_task: int = 10
    horizon: int = HORIZON
    expert_noise: float = EXPERT_NOISE

    def family(self) -> MetaWorldFamily:
        return MetaWorldFamily(**asdict(self))


@dataclass(frozen=True)
class MetaWorldTask:
    """One task: a Meta-World v3 env, and optionally a fixed goal (the last 3 entries of its reset vector)."""

    name: str
    env_name: str
    goal: tuple[float, float, float] | None = None


def parse_tasks(spec: str) -> tuple[MetaWorldTask, ...]:
    """A task set by name (`TASK_SETS`) or a comma-separated list of env names and `VARIANTS`."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    names = TASK_SETS.get(spec) or tuple(n.strip() for n in spec.split(",") if n.strip())
    tasks = []
    for name in names:
        env_name, goal = VARIANTS.get(name, (name, None))
        if env_name not in ALL_V3_ENVIRONMENTS:
            raise ValueError(
                f"unknown Meta-World task {name!r}; give a task set {sorted(TASK_SETS)}, Meta-World v3 env "
                f"names (e.g. push-v3) or {sorted(VARIANTS)}"
            )
        tasks.append(MetaWorldTask(name, env_name, goal))
    if len(tasks) < 2 or len({t.name for t in tasks}) != len(tasks):
        raise ValueError(f"tasks {spec!r}: need at least two distinct tasks")
    return tuple(tasks)


def _scripted_expert(env_name: str):
    from metaworld.policies import ENV_POLICY_MAP

    return ENV_POLICY_MAP[env_name]()


class MetaWorldFamily(TaskInputs):
    """The family's AMF hooks (`inputs`, `goals`, dimensions, `clip_action`) and its host-side episodes.

    Its arguments are `MetaWorldSettings`' fields (`settings` holds them). `start_seed` drives the start
    streams; the same seed gives the same starts, demonstrations and evaluations."""

    host = True  # episodes run on the host, not inside jit
    name = "metaworld"
    state_dim, action_dim = STATE_DIM, ACTION_DIM
    max_step = 1.0  # actions live in [-1, 1]^4; the BC loss is in these units

    def __init__(
        self,
        tasks: str | tuple[MetaWorldTask, ...] = "paper",
        eval_starts: int = 5,
        start_seed: int = 0,
        pretrain_per_task: int = 10,
        horizon: int = HORIZON,
        expert_noise: float = EXPERT_NOISE,
    ):
        if min(eval_starts, horizon, pretrain_per_task) < 1 or expert_noise < 0:
            raise ValueError("need eval_starts, horizon and pretrain_per_task >= 1 and expert_noise >= 0")
        self.tasks = parse_tasks(tasks) if isinstance(tasks, str) else tuple(tasks)
        spec = tasks if isinstance(tasks, str) else ",".join(t.name for t in self.tasks)
        # the config entry that rebuilds this family (a resumed run makes it again from config.json)
        self.settings = MetaWorldSettings(
            spec, eval_starts, start_seed, pretrain_per_task, horizon, expert_noise
        )
        self.seed, self.num_eval_starts, self.horizon = start_seed, eval_starts, horizon
        self.expert_noise, self.pretrain_per_task = expert_noise, pretrain_per_task
        self._pool: dict[str, list] = {}
        self._experts = {t.env_name: _scripted_expert(t.env_name) for t in self.tasks}
        self._starts: dict[tuple[str, int, int], np.ndarray] = {}

    # -- the hooks AMF's models use (`TaskInputs`) -----------------------------------------------------
    @property
    def goal_dim(self) -> int:
        return self.num_tasks

    @property
    def goals(self) -> jax.Array:
        """The task encoding a policy sees: one-hot task ids."""
        return jnp.eye(len(self.tasks))

    def clip_action(self, action: jax.Array) -> jax.Array:
        return jnp.clip(action, -1.0, 1.0)  # Meta-World's action box

    # -- simulators and starts ------------------------------------------------------------------------
    def _env(self, env_name: str, index: int):
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

        pool = self._pool.setdefault(env_name, [])
        while len(pool) <= index:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pool.append(ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{env_name}-goal-observable"](seed=0))
        return pool[index]

    def start(self, task: int, stream: str, index: int, seed: int | None = None) -> np.ndarray:
        """The `index`-th start (the env's random reset vector) of `task` in `stream` (`STREAMS`): drawn
        by the env's own sampler (which rejects placements it cannot use), seeded by (seed, stream, task,
        index), with the task's fixed goal if it has one. `seed`: a run's seed for its demonstrations; the
        family's seed (default) for the evaluation and proxy starts every run shares."""
        spec = self.tasks[self.check_task(task)]
        seed = self.seed if seed is None else seed
        cache = (seed, stream, task, index)
        if cache not in self._starts:
            env = self._env(spec.env_name, 0)
            env._freeze_rand_vec, env.seeded_rand_vec = False, True
            entropy = np.random.SeedSequence([seed, STREAMS[stream], task, index])
            env.seed(int(entropy.generate_state(1)[0]))
            env.reset()
            vector = np.array(env._last_rand_vec, np.float64)
            if spec.goal is not None:
                vector[-3:] = spec.goal
            self._starts[cache] = vector
        return self._starts[cache]

    def demonstrations(
        self, tasks: list[int], stream: str, indices: list[int], seeds: list[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Noisy expert demonstrations: episode i of task `tasks[i]` starts at `start(tasks[i], stream,
        indices[i], seeds[i])`, and its action noise is seeded by the same four numbers, so a demonstration
        is the same whichever run or wave asks for it. Returns states (n, H, 39) and actions (n, H, 4)."""
        starts = [self.start(t, stream, i, s) for t, i, s in zip(tasks, indices, seeds, strict=True)]
        noise = [(s, STREAMS[stream], t, i) for t, i, s in zip(tasks, indices, seeds, strict=True)]
        states, actions, _ = self.episodes(None, tasks, starts, noise)
        return states, actions

    def pretraining_demo_tasks(self, setting: str) -> np.ndarray:
        """The task of each pretraining demonstration, `pretrain_per_task` x C of them in every setting:
        'full' spreads them over every task; 'mismatch' over every other task (for the paper's set: the
        cup pushed left and the faucet opened), so each unseen task has a seen sibling."""
        if setting == "full":
            seen = np.arange(self.num_tasks)
        elif setting == "mismatch":
            seen = np.arange(0, self.num_tasks, 2)
        else:
            raise ValueError(f"unknown setting {setting!r} for {self.name}; choose 'mismatch' or 'full'")
        return np.resize(seen, self.pretrain_per_task * self.num_tasks)

    def eval_start_ids(self) -> list[tuple[int, int]]:
        """(task, start index) of every evaluation episode."""
        return [(t, i) for t in range(self.num_tasks) for i in range(self.num_eval_starts)]

    # -- episodes ---------------------------------------------------------------------------------------
    def episodes(
        self,
        act: HostPolicy | None,
        tasks: list[int],
        starts: list[np.ndarray],
        noise_seeds: list[tuple[int, ...]] | None = None,
        until_success: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`len(tasks)` episodes of `HORIZON` steps, in waves of at most `WAVE` simulators stepped in
        lockstep: the policy `act` (None: the scripted expert, plus seeded Gaussian noise of std
        `expert_noise` per episode from `noise_seeds`). Returns states (n, H, 39) (states[t] is where the
        t-th action was taken), actions (n, H, 4) and each episode's first step with the env's `success`
        flag (n,; H if none). `until_success`: stop each episode at that step (its later states and actions
        stay 0), which is all an evaluation needs."""
        n = len(tasks)
        states = np.zeros((n, self.horizon, STATE_DIM))
        actions = np.zeros((n, self.horizon, ACTION_DIM))
        first_success = np.full(n, self.horizon)
        for lo in range(0, n, WAVE):
            idx = list(range(lo, min(n, lo + WAVE)))
            used: dict[str, int] = {}
            envs, obs = [], []
            for i in idx:
                env_name = self.tasks[tasks[i]].env_name
                env = self._env(env_name, used.get(env_name, 0))
                used[env_name] = used.get(env_name, 0) + 1
                env._freeze_rand_vec, env._last_rand_vec = True, np.array(starts[i])
                obs.append(env.reset()[0])
                envs.append(env)
            rngs = None if act is not None else [np.random.default_rng(list(noise_seeds[i])) for i in idx]
            experts = [self._experts[self.tasks[tasks[i]].env_name] for i in idx]
            for t in range(self.horizon):
                live = [j for j, i in enumerate(idx) if not (until_success and first_success[i] < t)]
                if not live:
                    break
                o = np.stack(obs)
                if act is None:
                    with warnings.catch_warnings():  # the scripted policies warn about their own gains
                        warnings.simplefilter("ignore")
                        a = np.stack([e.get_action(x) for e, x in zip(experts, o, strict=True)])
                    a = a + self.expert_noise * np.stack([r.normal(size=ACTION_DIM) for r in rngs])
                else:
                    a = np.asarray(act(o, np.asarray(idx)), np.float64)
                a = np.clip(a, -1.0, 1.0)
                rows = [idx[j] for j in live]
                states[rows, t], actions[rows, t] = o[live], a[live]
                for j in live:
                    out = envs[j].step(a[j])
                    obs[j] = out[0]
                    if out[4]["success"] and first_success[idx[j]] == self.horizon:
                        first_success[idx[j]] = t
        return states, actions, first_success
