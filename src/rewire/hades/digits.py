"""Supervised dataset distillation with the HaDES machinery on scikit-learn's bundled digits (8x8 pixels).

A few synthetic images per class (started at the class means, labels fixed round-robin) are evolved so that
a fresh classifier trained on them by full-batch SGD has a low cross-entropy on the whole training split; the
result is the test accuracy of fresh classifiers trained on the ES mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from rewire.es import ESConfig, ScoreFn
from rewire.hades.bc import Learner, bc_loss, init_many, initializer, policy_module, train_bc
from rewire.hades.evolution import Evolution
from rewire.loop import Loop

CLASSES = 10


@dataclass(frozen=True)
class DigitsConfig:
    images_per_class: int = 1
    generations: int = 150
    inits: int = 2
    es: ESConfig = field(default_factory=lambda: ESConfig("openes", popsize=64, sigma=0.05, lr=0.01))
    learner: Learner = field(
        default_factory=lambda: Learner(hidden=(128,), activation="relu", lr=0.1, steps=300, optimizer="sgd")
    )
    test_fraction: float = 0.3

    def validate(self) -> None:
        if not 1 <= self.images_per_class <= 50:
            raise ValueError(f"images per class {self.images_per_class}: choose 1 to 50")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError("test_fraction must be in (0, 1)")
        self.es.validate()
        self.learner.validate()


def load_digits_split(test_fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Stratified train/test split of the bundled digits; pixels scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return tuple(train_test_split(x, y, test_size=test_fraction, stratify=y, random_state=seed))


def labels_for(num_images: int) -> jax.Array:
    """Round-robin labels: image i belongs to class i mod 10."""
    return jnp.arange(num_images) % CLASSES


def class_means(x: np.ndarray, y: np.ndarray, images_per_class: int) -> np.ndarray:
    means = np.stack([x[y == c].mean(0) for c in range(CLASSES)])
    return np.tile(means, (images_per_class, 1))  # row i is the mean of class i mod 10


def make_digits_score(learner: Learner, x_train: np.ndarray, y_train: np.ndarray) -> ScoreFn:
    """Score of a synthetic image set: minus the train-split cross-entropy of a classifier trained on it."""
    module = policy_module(learner, CLASSES, continuous=False)
    x, targets = jnp.asarray(x_train), jax.nn.one_hot(jnp.asarray(y_train), CLASSES)

    def score(images, params, eval_key):
        onehot = jax.nn.one_hot(labels_for(images["states"].shape[0]), CLASSES)
        params, _ = train_bc(learner, module, params, images["states"], onehot)
        accuracy = jnp.mean(jnp.argmax(module.apply(params, x), -1) == jnp.asarray(y_train))
        return -bc_loss(module, params, x, targets), {"train_accuracy": accuracy}

    return score


def test_accuracy(
    images: np.ndarray,
    learner: Learner,
    x_test: np.ndarray,
    y_test: np.ndarray,
    key: jax.Array,
    inits: int = 16,
) -> np.ndarray:
    """Test accuracy of `inits` fresh classifiers trained on `images` (labels round-robin)."""
    module = policy_module(learner, CLASSES, continuous=False)
    onehot = jax.nn.one_hot(labels_for(images.shape[0]), CLASSES)

    def one(params):
        params, _ = train_bc(learner, module, params, jnp.asarray(images), onehot)
        return jnp.mean(jnp.argmax(module.apply(params, jnp.asarray(x_test)), -1) == jnp.asarray(y_test))

    params = init_many(module, x_test.shape[1], jax.random.split(key, inits))
    return np.asarray(jax.jit(jax.vmap(one))(params))


def distill_digits(config: DigitsConfig, seed: int, quiet: bool = False) -> dict:
    """Evolve the images and report test accuracy against class-mean and random-real-image baselines."""
    config.validate()
    x_train, x_test, y_train, y_test = load_digits_split(config.test_fraction, seed)
    start = {"states": jnp.asarray(class_means(x_train, y_train, config.images_per_class))}
    score = make_digits_score(config.learner, x_train, y_train)
    init_fn = initializer(policy_module(config.learner, CLASSES, continuous=False), x_train.shape[1])
    evo = Evolution(
        config.es, start, score, config.inits, seed, init_fn=init_fn, generations=config.generations
    )
    watch = Loop(evo, quiet=quiet, description="digits").run()
    images = np.asarray(evo.mean()["states"])
    key = jax.random.fold_in(jax.random.key(seed), 7)
    rng = np.random.default_rng(seed)
    n = CLASSES * config.images_per_class
    real = np.stack([x_train[rng.choice(np.flatnonzero(y_train == i % CLASSES))] for i in range(n)])
    baselines = {"class_means": np.asarray(start["states"]), "random_real": real}
    return {
        "images_per_class": config.images_per_class,
        "test_accuracy": float(np.median(test_accuracy(images, config.learner, x_test, y_test, key))),
        "baselines": {
            name: float(np.median(test_accuracy(b, config.learner, x_test, y_test, key)))
            for name, b in baselines.items()
        },
        "history": evo.history,
        "generations_per_s": watch.rate,
        "images": images,
    }
