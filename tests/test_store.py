"""rewire's file format, atomic writes, configs from JSON and staged run directories."""

import dataclasses
import json
import pickle
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rewire import store
from rewire.amf.core import AMFConfig
from rewire.calql.trainer import FinetuneConfig
from rewire.edit.agents import PPOConfig
from rewire.edit.world import WorldConfig
from rewire.hades.core import HadesConfig, default_config
from rewire.runs import config_from_json, create_run_dir, to_jsonable
from rewire.unlearn.session import Setup


class Marker:
    """Unpickling this creates `path`: proof that a loader executed the file."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def tree():
    return {
        "w": jnp.arange(6.0).reshape(2, 3),
        "step": jnp.int32(7),
        "flag": jnp.bool_(True),
        "nested": [jnp.zeros(2, jnp.uint32), {"x": jnp.float32(1.5)}],
        "key": jax.random.key(3),
    }


def test_round_trip_restores_structure_dtypes_and_keys(tmp_path):
    path = store.write(tmp_path / "a.ckpt", "test/kind", store.flatten(tree(), "t"), {"n": 1, "x": [1.5]})
    got = store.read(path, "test/kind")
    assert got.kind == "test/kind" and got.meta == {"n": 1, "x": [1.5]}
    assert set(got.arrays) == {"t/w", "t/step", "t/flag", "t/nested/0", "t/nested/1/x", "t/key"}
    back = store.restore(jax.eval_shape(tree), got.group("t"), path)
    np.testing.assert_array_equal(back["w"], np.arange(6.0).reshape(2, 3))
    assert back["step"].dtype == np.int32 and back["step"] == 7 and back["nested"][0].dtype == np.uint32
    assert jax.random.key_data(back["key"]).tolist() == jax.random.key_data(jax.random.key(3)).tolist()
    with np.load(path, allow_pickle=False) as z:  # NumPy reads it as an NPZ archive
        np.testing.assert_array_equal(z["t/w"], np.arange(6.0).reshape(2, 3))


def test_same_arrays_same_bytes_and_no_temporaries_left(tmp_path):
    a = store.write(tmp_path / "a.ckpt", "k", {"x": np.arange(4)}, {"m": 1}).read_bytes()
    b = store.write(tmp_path / "b.ckpt", "k", {"x": np.arange(4)}, {"m": 1}).read_bytes()
    assert a == b
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ckpt", "b.ckpt"]
    (tmp_path / ".a.ckpt.0123456789abcdef.tmp").write_bytes(b"half")  # a write killed mid-way
    assert [p.name for p in store.remove_temporaries(tmp_path)] == [".a.ckpt.0123456789abcdef.tmp"]


def test_a_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps(Marker(marker)))
    with pytest.raises(store.StoreError, match="not a rewire file"):
        store.read(path)
    assert not marker.exists()
    # a pickled object array inside an otherwise valid archive is refused too
    with zipfile.ZipFile(path, "w") as archive:
        header = {"format": "rewire", "version": 1, "kind": "k", "meta": {}}
        archive.writestr("rewire.json", json.dumps(header | {"arrays": {"x": {"dtype": "|O", "shape": [1]}}}))
        with archive.open("x.npy", "w") as member:
            np.lib.format.write_array(member, np.array([Marker(marker)], dtype=object), allow_pickle=True)
    with pytest.raises(store.StoreError, match="dtype object"):
        store.read(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[:0], "not a ZIP archive"),
        (lambda b: b[:40], "not a ZIP archive"),
        (lambda b: b[: len(b) // 2], "not a ZIP archive"),
        (lambda b: b[:-5], "not a ZIP archive"),
        (lambda b: bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8)), "not a ZIP"),
    ],
)
def test_damaged_files_are_refused_with_their_name(tmp_path, damage, message):
    good = store.write(tmp_path / "good.ckpt", "k", {"x": np.arange(100.0)}).read_bytes()
    path = tmp_path / "bad.ckpt"
    path.write_bytes(damage(good))
    with pytest.raises(store.StoreError, match=message) as err:
        store.read(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_headers_that_lie_are_refused(tmp_path):
    path = tmp_path / "x.ckpt"

    def archive(header, members):
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("rewire.json", json.dumps(header))
            for name, array in members.items():
                with z.open(f"{name}.npy", "w") as m:
                    np.lib.format.write_array(m, array)

    base = {"format": "rewire", "version": 1, "kind": "k", "meta": {}}
    cases = [
        (base | {"format": "other", "arrays": {}}, {}, "names no rewire format"),
        (base | {"version": 99, "arrays": {}}, {}, "version 99"),
        (base | {"arrays": {"x": {"dtype": "<f8", "shape": [10**12]}}}, {"x": np.zeros(3)}, "declared"),
        (base | {"arrays": {"x": {"dtype": "<f8", "shape": [3]}}}, {}, "missing from the archive"),
        (base | {"arrays": {}}, {"x": np.zeros(3)}, "undeclared"),
        (base | {"kind": 5, "arrays": {}}, {}, "lacks its kind"),
    ]
    for header, members, message in cases:
        archive(header, members)
        with pytest.raises(store.StoreError, match=message):
            store.read(path)
    archive(base | {"arrays": {}}, {})
    with pytest.raises(store.StoreError, match="a 'k' file, expected 'other'"):
        store.read(path, "other")
    with pytest.raises(store.StoreError, match="is a directory"):
        store.read(tmp_path)


def test_restore_checks_names_shapes_and_dtypes(tmp_path):
    template = {"a": jnp.zeros(3), "b": jnp.int32(0)}
    with pytest.raises(store.StoreError, match="'b' is missing"):
        store.restore(template, {"a": np.zeros(3, np.float32)}, "f")
    with pytest.raises(store.StoreError, match=r"'a' is float32\[4\], expected float32\[3\]"):
        store.restore(template, {"a": np.zeros(4, np.float32), "b": np.int32(0)}, "f")
    with pytest.raises(store.StoreError, match="'b' is int64"):
        store.restore(template, {"a": np.zeros(3, np.float32), "b": np.int64(0)}, "f")
    with pytest.raises(store.StoreError, match="unexpected arrays"):
        store.restore(template, {"a": np.zeros(3, np.float32), "b": np.int32(0), "c": np.ones(1)}, "f")
    with pytest.raises(ValueError, match="does not store"):
        store.write(tmp_path / "o.ckpt", "k", {"o": np.array([object()])})
    with pytest.raises(ValueError, match="plain path"):
        store.write(tmp_path / "o.ckpt", "k", {"../up": np.zeros(1)})


@pytest.mark.parametrize(
    "config",
    [
        FinetuneConfig(),
        default_config("Pendulum-v1"),
        HadesConfig(rollout_steps=None),
        AMFConfig(targets=(0, 3)),
        AMFConfig(),
        Setup(rho=None),
        WorldConfig(world="shift", observe_weights=False),
        PPOConfig(hidden=(32, 16)),
    ],
)
def test_configs_round_trip_through_json(config):
    text = json.dumps(to_jsonable(config), allow_nan=False)
    assert config_from_json(type(config), json.loads(text)) == config


def test_config_from_json_names_what_is_wrong():
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['colour'\]"):
        config_from_json(Setup, {"colour": 1})
    with pytest.raises(ValueError, match="Setup.states: expected int, got 'four'"):
        config_from_json(Setup, {"states": "four"})
    with pytest.raises(ValueError, match=r"FinetuneConfig.agent.actor_hidden: expected a list"):
        config_from_json(FinetuneConfig, {"agent": {"actor_hidden": 64}})
    assert config_from_json(Setup, {}) == Setup()  # missing fields take their defaults
    assert dataclasses.is_dataclass(config_from_json(FinetuneConfig, {"agent": {}}).agent)


def test_run_directories_appear_whole_or_not_at_all(tmp_path):
    def fill(d):
        (d / "config.json").write_text("{}")

    made = create_run_dir(tmp_path, "x", fill)
    assert made.parent == tmp_path and (made / "config.json").exists()
    again = create_run_dir(tmp_path, "x", fill)  # same second: suffixed, not merged
    assert again != made and (again / "config.json").exists()

    def refuse(d):
        (d / "half").write_text("written")
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        create_run_dir(tmp_path, "x", refuse)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([made.name, again.name])
    dead = tmp_path / ".x-20000101-000000.partial-999999999"  # a staging directory of a killed process
    dead.mkdir()
    create_run_dir(tmp_path, "y", fill)
    assert not dead.exists()
