"""Task 2, bias mitigation: a seeded generator of sentences about occupations, a bag-of-words classifier,
its group metrics and the two baselines (reweighting, fine-tuning on a balanced subset).

Generator (documented, deterministic for a seed). Label y = 1 for technical occupations, 0 for care
occupations; group g = the gender of the pronoun and first name. A sentence is
"<name> says <pronoun> works as <occupation phrase> <context>". With probability `ambiguous` the occupation
phrase is neutral ("a professional", ...) and the context is shared by both labels, so only the group cue
can predict y. In the biased splits (train, validation, test) g = y with probability `correlation`; in the
fair splits (fair_val, fair_test) g is independent of y, so any reliance on the group shows as a gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rewire.edit.classifier import Recipe, minibatch_adam

NAMES = (("james", "john", "robert", "michael", "david"), ("mary", "linda", "susan", "sarah", "karen"))
PRONOUNS = ("he", "she")
OCCUPATIONS = (
    ("a nurse", "a teacher", "a caregiver", "a counsellor", "a social worker"),
    ("an engineer", "a programmer", "a mechanic", "an electrician", "a physicist"),
)
CONTEXTS = (
    ("at the clinic", "with children", "in the community"),
    ("in the lab", "on the servers", "at the plant"),
)
NEUTRAL = ("a professional", "a specialist", "a staff member")
SHARED_CONTEXT = ("in the city", "every day", "for a large company")
SPLITS = {"train": 2000, "val": 400, "test": 1000, "fair_val": 600, "fair_test": 1000}


@dataclass(frozen=True)
class TextData:
    texts: dict[str, list[str]]
    labels: dict[str, np.ndarray]
    groups: dict[str, np.ndarray]


def generate(seed: int, ambiguous: float = 0.3, correlation: float = 0.9) -> TextData:
    """The seeded occupation data set (see the module docstring)."""
    if not 0 <= ambiguous <= 1 or not 0.5 <= correlation <= 1:
        raise ValueError("ambiguous must be in [0, 1] and correlation in [0.5, 1]")
    rng = np.random.default_rng(seed)
    texts, labels, groups = {}, {}, {}
    for split, n in SPLITS.items():
        y = rng.integers(0, 2, n)
        tie = correlation if not split.startswith("fair") else 0.5
        g = np.where(rng.random(n) < tie, y, 1 - y)
        amb = rng.random(n) < ambiguous
        out = []
        for yi, gi, ai in zip(y, g, amb, strict=True):
            name = rng.choice(NAMES[gi])
            job = rng.choice(NEUTRAL) if ai else rng.choice(OCCUPATIONS[yi])
            context = rng.choice(SHARED_CONTEXT) if ai else rng.choice(CONTEXTS[yi])
            out.append(f"{name} says {PRONOUNS[gi]} works as {job} {context}")
        texts[split], labels[split], groups[split] = out, y, g
    return TextData(texts, labels, groups)


def vocabulary(texts: list[str]) -> dict[str, int]:
    """Words of the training texts; index 0 is the out-of-vocabulary token."""
    words = sorted({w for t in texts for w in t.split()})
    return {w: i + 1 for i, w in enumerate(words)}


def bag_of_words(texts: list[str], vocab: dict[str, int]) -> np.ndarray:
    """Mean one-hot of each text's tokens, (N, V + 1)."""
    out = np.zeros((len(texts), len(vocab) + 1), np.float32)
    for i, t in enumerate(texts):
        for w in t.split():
            out[i, vocab.get(w, 0)] += 1.0
    return out / np.maximum(out.sum(1, keepdims=True), 1.0)


EMBED = 16


def init_text_params(key: jax.Array, vocab_size: int) -> dict:
    k1, k2 = jax.random.split(key)
    return {
        "embed": jax.random.normal(k1, (vocab_size, EMBED)) / jnp.sqrt(vocab_size),
        "out": jax.random.normal(k2, (EMBED,)) / jnp.sqrt(EMBED),
        "bias": jnp.zeros(()),
    }


def text_logits(params: dict, x: jax.Array, embed: jax.Array | None = None) -> jax.Array:
    """logit = w2 . relu(x̄ E) + b2; `embed` overrides E (the edited layer)."""
    e = params["embed"] if embed is None else embed
    return jax.nn.relu(x @ e) @ params["out"] + params["bias"]


def train_text(
    params: dict,
    x: np.ndarray,
    y: np.ndarray,
    key: jax.Array,
    epochs: int = 40,
    lr: float = 3e-3,
    weights: np.ndarray | None = None,
    batch: int = 64,
) -> dict:
    """Weighted binary cross-entropy by minibatch Adam (`classifier.minibatch_adam`)."""
    w = np.ones(len(y), np.float32) if weights is None else weights.astype(np.float32)
    x, y, w = jnp.asarray(x), jnp.asarray(y, jnp.float32), jnp.asarray(w)

    def loss(p, idx):
        return (w[idx] * optax.sigmoid_binary_cross_entropy(text_logits(p, x[idx]), y[idx])).mean()

    return minibatch_adam(params, loss, len(y), Recipe(epochs, lr, batch), key)


def group_metrics(predicted: jax.Array, y: jax.Array, g: jax.Array) -> dict[str, jax.Array]:
    """accuracy, TPR gap |TPR_1 - TPR_0| and demographic-parity gap |P(ŷ=1|g=1) - P(ŷ=1|g=0)|."""
    predicted, y, g = (jnp.asarray(a, jnp.float32) for a in (predicted, y, g))

    def rate(mask):
        return (predicted * mask).sum() / jnp.maximum(mask.sum(), 1.0)

    return {
        "accuracy": (predicted == y).mean(),
        "tpr_gap": jnp.abs(rate(y * g) - rate(y * (1 - g))),
        "parity_gap": jnp.abs(rate(g) - rate(1 - g)),
    }


def reweighing(y: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Kamiran & Calders: w(g, y) = P(g) P(y) / P(g, y)."""
    w = np.empty(len(y), np.float32)
    for gv in (0, 1):
        for yv in (0, 1):
            cell = (g == gv) & (y == yv)
            w[cell] = (g == gv).mean() * (y == yv).mean() / max(cell.mean(), 1e-12)
    return w


def balanced_subset(y: np.ndarray, g: np.ndarray, seed: int) -> np.ndarray:
    """Indices of a subset with equally many examples in every (group, label) cell."""
    rng = np.random.default_rng(seed)
    cells = [np.flatnonzero((g == a) & (y == b)) for a in (0, 1) for b in (0, 1)]
    size = min(len(c) for c in cells)
    return np.sort(np.concatenate([rng.choice(c, size, replace=False) for c in cells]))


@dataclass(frozen=True)
class TextTask:
    """The generated data as model inputs: bag-of-words per split, labels, groups."""

    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    g: dict[str, np.ndarray]
    vocab_size: int

    @classmethod
    def build(cls, seed: int, ambiguous: float = 0.3, correlation: float = 0.9) -> TextTask:
        data = generate(seed, ambiguous, correlation)
        vocab = vocabulary(data.texts["train"])
        x = {k: bag_of_words(v, vocab) for k, v in data.texts.items()}
        return cls(x, data.labels, data.groups, len(vocab) + 1)

    def group_metrics(self, params: dict, split: str, embed: jax.Array | None = None) -> dict[str, float]:
        """`group_metrics` of the model's predictions on one split."""
        predicted = text_logits(params, self.x[split], embed) > 0
        return {k: float(v) for k, v in group_metrics(predicted, self.y[split], self.g[split]).items()}

    def metrics(self, params: dict, embed: jax.Array | None = None) -> dict[str, float]:
        """Fair-test accuracy, TPR gap and parity gap, and the accuracy on the biased test split."""
        out = self.group_metrics(params, "fair_test", embed)
        biased = text_logits(params, self.x["test"], embed) > 0
        return out | {"biased_test_accuracy": float((biased == self.y["test"]).mean())}


def reweighting(task: TextTask, key: jax.Array) -> dict:
    """Retrain from scratch on the training split with Kamiran-Calders weights."""
    k_init, k_train = jax.random.split(key)
    weights = reweighing(task.y["train"], task.g["train"])
    init = init_text_params(k_init, task.vocab_size)
    return train_text(init, task.x["train"], task.y["train"], k_train, weights=weights)


def balanced_finetune(original: dict, task: TextTask, key: jax.Array, seed: int) -> tuple[dict, dict]:
    """Fine-tune on a (group, label)-balanced subset of the training split; epochs in {10, 20, 40, 80} x lr
    in {3e-3, 1e-2}, keeping the smallest fair-validation TPR gap among settings whose fair-validation
    accuracy is within 0.02 of the original's (else the most accurate)."""
    idx = balanced_subset(task.y["train"], task.g["train"], seed)

    def on_fair_val(p):
        m = task.group_metrics(p, "fair_val")
        return m["accuracy"], m["tpr_gap"]

    floor = on_fair_val(original)[0] - 0.02
    best, best_rank, chosen = original, None, {}
    for epochs in (10, 20, 40, 80):
        for lr in (3e-3, 1e-2):
            p = train_text(original, task.x["train"][idx], task.y["train"][idx], key, epochs, lr)
            acc, gap = on_fair_val(p)
            rank = (acc >= floor, -gap if acc >= floor else acc)
            if best_rank is None or rank > best_rank:
                best, best_rank, chosen = p, rank, {"epochs": epochs, "lr": lr, "subset": int(len(idx))}
    return best, chosen
