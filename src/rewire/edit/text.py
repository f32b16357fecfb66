"""Task 2, bias mitigation: a seeded generator of sentences about occupations, a bag-of-words classifier,
its group metrics and the two baselines (reweighting, fine-tuning on a balanced subset).

Generator (documented, deterministic for a seed). Label y = 1 for technical occupations, 0 for care
occupations; group g = the gender of the pronoun and first name. A sentence is
"<name> says <pronoun> works as <occupation phrase> <context>". With probability `ambiguous` the occupation
phrase is neutral ("a professional", ...) and the context is shared by both labels, so only the group cue
can predict y. In the biased splits (train, validation, test) g = y with probability `correlation`; in the
fair splits (fair_val, fair_test) g is independent of y, so any reliance on the group shows as a gap.

A user's own data comes from a CSV or JSON Lines file (`read_text_file`): text, label and group per row, and
optionally the split. The agent edits on `fair_val` and the metrics are taken on `fair_test` when the data
has them, else on `val` and `test`.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rewire.edit.classifier import Recipe, minibatch_adam
from rewire.store import input_file

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
# The fair splits are large because on them the ambiguous sentences are coin flips: with 1,000 fair-test
# sentences the accuracy of a group-using and of a group-free classifier differed by 1.2 points (s.d.) by
# sampling alone; with 5,000 by about 0.5.
SPLITS = {"train": 2000, "val": 400, "test": 1000, "fair_val": 2000, "fair_test": 5000}
FILE_SPLITS = ("train", "val", "test", "fair_val", "fair_test")
STRATIFIED = (("train", 0.6), ("val", 0.2), ("test", 0.2))  # a file without a split field
MAX_VOCAB = 1000  # the edited layer is (vocabulary x 16); PPO observes all of it


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


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return re.findall(r"\w+", text.lower())


def _binary(value: object, name: str, where: str) -> int:
    if isinstance(value, str):
        value = value.strip()
    if value in (0, 1, "0", "1"):
        return int(value)
    raise ValueError(f"{where}: {name} {value!r} is not 0 or 1")


def _records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, fields) per row of a CSV file with a header, or of a JSON Lines file; a file that is
    not UTF-8 text, or not CSV, raises a `ValueError` naming it."""
    try:
        yield from _parse_records(path)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason})") from None
    except csv.Error as err:
        raise ValueError(f"{path}: not a CSV file ({err})") from None


def _parse_records(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open(newline="", encoding="utf-8") as f:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(f)
            missing = {"text", "label", "group"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(
                    f"{path}: the header needs the columns {sorted(missing)} (it has {reader.fieldnames})"
                )
            for row in reader:
                yield reader.line_num, row
            return
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}, line {number}: not valid JSON ({err.msg})") from err
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {number}: not a JSON object")
            yield number, row


def _stratified_splits(labels: np.ndarray, groups: np.ndarray, seed: int) -> np.ndarray:
    """Split names per row: `STRATIFIED` shares inside each (group, label) cell, seeded."""
    names = np.empty(len(labels), object)
    rng = np.random.default_rng(seed)
    bounds = np.cumsum([share for _, share in STRATIFIED])[:-1]
    for cell in (np.flatnonzero((groups == g) & (labels == y)) for g in (0, 1) for y in (0, 1)):
        parts = np.split(rng.permutation(cell), np.round(bounds * len(cell)).astype(int))
        for (name, _), part in zip(STRATIFIED, parts, strict=True):
            names[part] = name
    return names


def _check_splits(
    path: Path, present: list[str], names: np.ndarray, labels: np.ndarray, groups: np.ndarray
) -> None:
    if not {"train", "val", "test"} <= set(present) or ("fair_val" in present) != ("fair_test" in present):
        raise ValueError(
            f"{path}: needs train, val and test rows (and fair_val with fair_test, or neither); has {present}"
        )
    for name in present:
        for g in (0, 1):
            for y in (0, 1):
                if not ((names == name) & (groups == g) & (labels == y)).any():
                    raise ValueError(
                        f"{path}: the {name} split has no rows of group {g} with label {y}; the bias metrics "
                        "and baselines need all four (group, label) cells"
                    )


def read_text_file(path: str | os.PathLike, seed: int = 0) -> TextData:
    """A user's data set for the bias task: a CSV file with a header, or a JSON Lines file (.jsonl), with
    fields `text`, `label` (0/1), `group` (0/1) and optionally `split` (train, val, test, and fair_val with
    fair_test as a pair). Without a split field the rows are split 60/20/20 into train, val and test inside
    each (group, label) cell, seeded. Every split needs all four cells. Errors name the file and line."""
    path = input_file(path, "a text data set")
    if path.suffix.lower() not in (".csv", ".jsonl"):
        raise ValueError(f"{path}: a text data set must be .csv or .jsonl")
    rows, first_split = [], None
    for number, row in _records(path):
        where = f"{path}, line {number}"
        text = row.get("text")
        if not isinstance(text, str) or not tokens(text):
            raise ValueError(f"{where}: the text is missing or has no words")
        split = row.get("split") or None
        if first_split is None:
            first_split = split is not None
        if (split is not None) != first_split:
            raise ValueError(
                f"{where}: give every row a split or none (the first row "
                + ("has one)" if first_split else "has none)")
            )
        if split is not None and split not in FILE_SPLITS:
            raise ValueError(f"{where}: split {split!r} is not one of {list(FILE_SPLITS)}")
        label, group = (_binary(row.get(name), name, where) for name in ("label", "group"))
        rows.append((text, label, group, split))
    if not rows:
        raise ValueError(f"{path}: no rows")
    texts, labels, groups = zip(*(r[:3] for r in rows), strict=True)
    labels, groups = np.array(labels), np.array(groups)
    names = np.array([r[3] for r in rows]) if first_split else _stratified_splits(labels, groups, seed)
    present = [name for name in FILE_SPLITS if (names == name).any()]
    _check_splits(path, present, names, labels, groups)
    return TextData(
        {n: [t for t, m in zip(texts, names == n, strict=True) if m] for n in present},
        {n: labels[names == n] for n in present},
        {n: groups[names == n] for n in present},
    )


def write_text_file(data: TextData, path: str | os.PathLike) -> Path:
    """Write `data` in the format `read_text_file` reads (.csv or .jsonl, with the split field)."""
    path = Path(path)
    rows = [
        {"text": t, "label": int(y), "group": int(g), "split": split}
        for split, texts in data.texts.items()
        for t, y, g in zip(texts, data.labels[split], data.groups[split], strict=True)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        if path.suffix.lower() == ".csv":
            writer = csv.DictWriter(f, ["text", "label", "group", "split"])
            writer.writeheader()
            writer.writerows(rows)
        elif path.suffix.lower() == ".jsonl":
            f.writelines(json.dumps(row) + "\n" for row in rows)
        else:
            raise ValueError(f"{path}: write a .csv or .jsonl file")
    return path


def vocabulary(texts: list[str], max_words: int = MAX_VOCAB) -> dict[str, int]:
    """The `max_words` most frequent words of the training texts (ties alphabetical), indexed in
    alphabetical order from 1; index 0 is the out-of-vocabulary token."""
    counts = Counter(w for t in texts for w in tokens(t))
    kept = sorted(counts, key=lambda w: (-counts[w], w))[:max_words]
    return {w: i + 1 for i, w in enumerate(sorted(kept))}


def bag_of_words(texts: list[str], vocab: dict[str, int]) -> np.ndarray:
    """Mean one-hot of each text's tokens, (N, V + 1)."""
    out = np.zeros((len(texts), len(vocab) + 1), np.float32)
    for i, t in enumerate(texts):
        for w in tokens(t):
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
    def from_data(cls, data: TextData) -> TextTask:
        vocab = vocabulary(data.texts["train"])
        x = {k: bag_of_words(v, vocab) for k, v in data.texts.items()}
        return cls(x, data.labels, data.groups, len(vocab) + 1)

    @classmethod
    def build(cls, seed: int, ambiguous: float = 0.3, correlation: float = 0.9) -> TextTask:
        """The generated occupation data."""
        return cls.from_data(generate(seed, ambiguous, correlation))

    @property
    def edit_split(self) -> str:
        """What the editors' reward and the baselines' selection see."""
        return "fair_val" if "fair_val" in self.x else "val"

    @property
    def report_split(self) -> str:
        return "fair_test" if "fair_test" in self.x else "test"

    def group_metrics(self, params: dict, split: str, embed: jax.Array | None = None) -> dict[str, float]:
        """`group_metrics` of the model's predictions on one split."""
        predicted = text_logits(params, self.x[split], embed) > 0
        return {k: float(v) for k, v in group_metrics(predicted, self.y[split], self.g[split]).items()}

    def metrics(self, params: dict, embed: jax.Array | None = None) -> dict[str, float]:
        """Accuracy, TPR gap and parity gap on the report split; with fair splits, also the accuracy on the
        biased test split."""
        out = self.group_metrics(params, self.report_split, embed)
        if self.report_split == "test":
            return out
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
    in {3e-3, 1e-2}, keeping the smallest TPR gap on the edit split among settings whose accuracy there is
    within 0.02 of the original's (else the most accurate)."""
    idx = balanced_subset(task.y["train"], task.g["train"], seed)

    def on_edit_split(p):
        m = task.group_metrics(p, task.edit_split)
        return m["accuracy"], m["tpr_gap"]

    floor = on_edit_split(original)[0] - 0.02
    best, best_rank, chosen = original, None, {}
    for epochs in (10, 20, 40, 80):
        for lr in (3e-3, 1e-2):
            p = train_text(original, task.x["train"][idx], task.y["train"][idx], key, epochs, lr)
            acc, gap = on_edit_split(p)
            rank = (acc >= floor, -gap if acc >= floor else acc)
            if best_rank is None or rank > best_rank:
                best, best_rank, chosen = p, rank, {"epochs": epochs, "lr": lr, "subset": int(len(idx))}
    return best, chosen
