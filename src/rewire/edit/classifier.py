"""The classifier being edited, its data, its training recipes (pretraining and the unlearning baselines)
and its metrics.

Digits (scikit-learn's bundled 8x8 images): test 30% and validation 10% of the rest are held out before
pretraining; the forget set is one class, or a seeded random 10%, of the training split. The model is an
MLP 64 -> 128 -> 64 -> 10 (ReLU); editing acts on its head (the last Dense layer, bias included).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rewire.nets import MLP

CLASSES = 10
HIDDEN = (128, 64)


@dataclass(frozen=True)
class Split:
    """Arrays of one task: train (with the forget mask), validation and test."""

    x_train: np.ndarray
    y_train: np.ndarray
    forget: np.ndarray  # bool over the training split
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    forget_class: int | None

    @property
    def retain(self) -> np.ndarray:
        return ~self.forget


def digits_split(seed: int, forget_class: int | None = 7, forget_fraction: float = 0.1) -> Split:
    """Stratified test (30%) and validation (10% of the rest) splits; the forget set is `forget_class` of
    the training split, or (forget_class None) a seeded random `forget_fraction` of it."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if forget_class is not None and not 0 <= forget_class < CLASSES:
        raise ValueError(f"forget class {forget_class}: choose 0..9")
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.1, stratify=y_rest, random_state=seed
    )
    if forget_class is None:
        rng = np.random.default_rng(seed)
        forget = np.zeros(len(y_train), bool)
        forget[rng.choice(len(y_train), round(forget_fraction * len(y_train)), replace=False)] = True
    else:
        forget = y_train == forget_class
    return Split(x_train, y_train, forget, x_val, y_val, x_test, y_test, forget_class)


def model() -> MLP:
    return MLP(HIDDEN, CLASSES, "relu", out_gain=1.0, with_features=True)


def init_params(key: jax.Array) -> dict:
    return model().init(key, jnp.zeros((1, 64)))["params"]


def logits(params: dict, x: jax.Array) -> jax.Array:
    return model().apply({"params": params}, x)[0]


def features(params: dict, x: jax.Array) -> jax.Array:
    """The head's input (last hidden layer)."""
    return model().apply({"params": params}, x)[1]


def head(params: dict) -> jax.Array:
    """The head as one matrix [W; b], shape (65, 10): features augmented with a constant 1."""
    last = params[f"Dense_{len(HIDDEN)}"]
    return jnp.concatenate([last["kernel"], last["bias"][None]], axis=0)


def with_head(params: dict, weights: jax.Array) -> dict:
    name = f"Dense_{len(HIDDEN)}"
    return {**params, name: {"kernel": weights[:-1], "bias": weights[-1]}}


def per_example_loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y)


def accuracy(params: dict, x: np.ndarray, y: np.ndarray) -> float:
    if len(y) == 0:
        return float("nan")
    return float((jnp.argmax(logits(params, x), -1) == y).mean())


@dataclass(frozen=True)
class Recipe:
    """Minibatch Adam on a weighted objective: `sign` +1 minimises cross-entropy, -1 maximises it."""

    epochs: int = 60
    lr: float = 1e-3
    batch: int = 64
    sign: float = 1.0


def minibatch_adam(
    params: dict, loss: Callable[[dict, jax.Array], jax.Array], n: int, recipe: Recipe, key: jax.Array
) -> dict:
    """`recipe.epochs` shuffled passes of minibatch Adam over n examples, all in one jitted `lax.scan`;
    `loss(params, indices)` is the minibatch objective (shared by the digits and the text classifiers)."""
    if n == 0:
        raise ValueError("nothing to train on")
    steps_per_epoch = max(1, n // recipe.batch)
    opt = optax.adam(recipe.lr)

    def epoch(carry, k):
        order = jax.random.permutation(k, n)[: steps_per_epoch * recipe.batch].reshape(steps_per_epoch, -1)

        def step(carry, idx):
            p, s = carry
            upd, s = opt.update(jax.grad(loss)(p, idx), s, p)
            return (optax.apply_updates(p, upd), s), None

        return jax.lax.scan(step, carry, order)[0], None

    run = jax.jit(lambda p, keys: jax.lax.scan(epoch, (p, opt.init(p)), keys)[0][0])
    return run(params, jax.random.split(key, recipe.epochs))


def train(params: dict, x: np.ndarray, y: np.ndarray, recipe: Recipe, key: jax.Array) -> dict:
    """Cross-entropy (times `recipe.sign`) on (x, y) by `minibatch_adam`."""
    x, y = jnp.asarray(x), jnp.asarray(y)

    def loss(p, idx):
        return recipe.sign * per_example_loss(p, x[idx], y[idx]).mean()

    return minibatch_adam(params, loss, len(y), recipe, key)


def loss_mia_auc(
    params: dict, members: np.ndarray, members_y: np.ndarray, others: np.ndarray, others_y: np.ndarray
) -> float:
    """Loss-threshold membership inference: AUC = P(loss(member) < loss(non-member)) (Mann-Whitney, ties
    count half). 0.5: the forget set looks like data the model never saw."""
    a = np.asarray(per_example_loss(params, members, members_y))
    b = np.asarray(per_example_loss(params, others, others_y))
    if len(a) == 0 or len(b) == 0:
        return float("nan")
    less = (a[:, None] < b[None, :]).mean()
    ties = (a[:, None] == b[None, :]).mean()
    return float(less + 0.5 * ties)


def unlearning_metrics(params: dict, split: Split) -> dict[str, float]:
    """forget, retain and test accuracy, and the loss MIA of the forget set against unseen data (test
    images of the forget class, or the whole test split in random mode)."""
    if split.forget_class is None:
        unseen_x, unseen_y = split.x_test, split.y_test
    else:
        keep = split.y_test == split.forget_class
        unseen_x, unseen_y = split.x_test[keep], split.y_test[keep]
    f = split.forget
    return {
        "forget_acc": accuracy(params, split.x_train[f], split.y_train[f]),
        "retain_acc": accuracy(params, split.x_train[~f], split.y_train[~f]),
        "test_acc": accuracy(params, split.x_test, split.y_test),
        "mia_auc": loss_mia_auc(params, split.x_train[f], split.y_train[f], unseen_x, unseen_y),
    }
