import json
import math

import numpy as np

from rewire.calql.trainer import FinetuneConfig
from rewire.runs import record_run, write_json


def test_configs_and_non_finite_values_serialise(tmp_path):
    path = write_json(
        tmp_path / "r.json",
        {
            "config": FinetuneConfig(),
            "x": [math.nan, np.float32(1.5), np.float32("nan")],
            "lo": -math.inf,
            "arr": np.arange(3),
        },
    )
    data = json.loads(path.read_text())
    assert data["config"]["agent"]["clip_diff_min"] == "-inf" and data["lo"] == "-inf"
    assert data["x"] == [None, 1.5, None] and data["arr"] == [0, 1, 2]


def test_run_record_holds_config_seed_and_versions(tmp_path):
    record_run(tmp_path, FinetuneConfig(seed=7), 7)
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["seed"] == 7 and data["config"]["seed"] == 7 and "jax" in data["versions"]
