"""Notebook checks: pass / fail by value, the checks.json content, reruns replacing a notebook's entries."""

import json
import math

import numpy as np
import pytest
import torch

from ssdlib import checks


def entries(tmp_path):
    return json.loads((tmp_path / checks.CHECKS_FILE).read_text())


def test_passing_checks_are_recorded_as_plain_floats(tmp_path):
    c = checks.Checks(tmp_path, "01_a")
    assert c.at_least("knn", np.float32(0.75), 0.6)
    assert c.at_most("drop", np.float64(0.01), 0.03)
    assert c.above("gain", torch.tensor(0.02), 0.0)
    assert c.below("loss", 3, 4.5)
    assert c.holds("finite", np.bool_(True), value=41, threshold=41, detail="epochs")
    assert c.conclude() is None  # a notebook cell ending with it echoes nothing
    assert checks.read(tmp_path) == c.checks
    data = entries(tmp_path)
    assert [d["name"] for d in data] == ["knn", "drop", "gain", "loss", "finite"]
    assert data[0] == {
        "notebook": "01_a",
        "name": "knn",
        "value": 0.75,
        "threshold": 0.6,
        "relation": ">=",
        "passed": True,
        "detail": "",
    }
    assert data[2]["value"] == pytest.approx(0.02) and data[3]["value"] == 3.0
    assert data[4] == {
        "notebook": "01_a",
        "name": "finite",
        "value": 41.0,
        "threshold": 41.0,
        "relation": "holds",
        "passed": True,
        "detail": "epochs",
    }
    assert all(type(d["value"]) is float for d in data)  # noqa: E721 (json gives float only for plain floats)


def test_boundaries_and_values_are_compared_as_given():
    c = checks.Checks("unused", "nb")
    assert c.at_least("equal", 0.6, 0.6) and c.at_most("equal_max", 0.03, 0.03)
    assert not c.above("strict", 0.0, 0.0) and not c.below("strict_below", 1.0, 1.0)
    # float32(0.6) is 0.60000002...: compared exactly, it passes >= 0.6 and fails <= 0.6
    assert c.at_least("f32", np.float32(0.6), 0.6) and not c.at_most("f32_max", np.float32(0.6), 0.6)
    # 0.5999999 is not rounded up to 0.6 (float32 rounding would make it pass)
    assert not c.at_least("just_below", 0.5999999, 0.6)
    assert not c.at_least("nan", math.nan, 0.5) and c.checks[-1].value is None


def test_failures_raise_one_assertion_naming_each_with_value_and_threshold(tmp_path):
    c = checks.Checks(tmp_path, "02_b")
    c.at_least("ssd_near_auroc", 0.62, 0.7, detail="SSD on near")
    c.at_least("classifier_accuracy", 0.95, 0.9)
    c.at_most("ssod_accuracy_drop", 0.05, 0.03)
    c.holds("ssod_trails_knn_on_textures", False, value=0.2, threshold=0.4)
    with pytest.raises(AssertionError) as err:
        c.conclude()
    text = str(err.value)
    assert text.startswith("3 of 4 checks of 02_b failed")
    assert "ssd_near_auroc = 0.62 is below 0.7: SSD on near" in text
    assert "ssod_accuracy_drop = 0.05 is above 0.03" in text
    assert "ssod_trails_knn_on_textures does not hold (value 0.2, threshold 0.4)" in text
    assert "classifier_accuracy" not in text
    data = entries(tmp_path)  # written before raising: the passing check is on record too
    assert [(d["name"], d["passed"]) for d in data] == [
        ("ssd_near_auroc", False),
        ("classifier_accuracy", True),
        ("ssod_accuracy_drop", False),
        ("ssod_trails_knn_on_textures", False),
    ]


def test_rerun_replaces_the_notebooks_entries_and_keeps_the_others_in_notebook_order(tmp_path):
    first = checks.Checks(tmp_path, "02_b")
    first.at_least("x", 0.1, 0.5)
    first.at_least("y", 1.0, 0.5)
    with pytest.raises(AssertionError):
        first.conclude()
    other = checks.Checks(tmp_path, "01_a")
    other.at_least("z", 1.0, 0.5)
    other.conclude()
    again = checks.Checks(tmp_path, "02_b")
    again.at_least("x", 0.9, 0.5)
    again.conclude()
    assert [(d["notebook"], d["name"], d["passed"]) for d in entries(tmp_path)] == [
        ("01_a", "z", True),
        ("02_b", "x", True),
    ]
    assert not list(tmp_path.glob("*.tmp"))
    assert checks.summary(tmp_path) == "2 checks, all passed"


def test_summary_names_failures_and_missing_file(tmp_path):
    assert checks.summary(tmp_path) == "no checks recorded"
    c = checks.Checks(tmp_path, "03_c")
    c.at_least("ok", 1, 0)
    c.above("ssdk_near_gain", -0.01, 0.0)
    with pytest.raises(AssertionError):
        c.conclude()
    assert checks.summary(tmp_path) == "2 checks, 1 failed: 03_c: ssdk_near_gain = -0.01 is not above 0"


def test_mistakes_are_refused_with_the_fix(tmp_path):
    c = checks.Checks(tmp_path, "nb")
    with pytest.raises(ValueError, match="states no checks"):
        c.conclude()
    c.at_least("a", 1, 0)
    with pytest.raises(ValueError, match="stated twice"):
        c.at_most("a", 1, 2)
    with pytest.raises(ValueError, match="threshold is nan"):
        c.at_least("b", 1, math.nan)
    with pytest.raises(TypeError, match="must be a number"):
        c.at_least("c", "high", 0.5)
    (tmp_path / checks.CHECKS_FILE).write_text("not json")
    with pytest.raises(ValueError, match="delete it"):
        c.conclude()


def test_unenforced_checks_are_recorded_and_reported_but_do_not_raise(tmp_path, caplog):
    c = checks.Checks(tmp_path, "01", enforce=False)
    c.at_least("knn", 0.2, 0.6)
    c.at_least("acc", 0.9, 0.5)
    c.conclude()
    assert [(x.name, x.passed) for x in checks.read(tmp_path)] == [("knn", False), ("acc", True)]
    assert "1 of 2 checks of 01 failed" in caplog.text and "not raised" in caplog.text
    assert checks.summary(tmp_path).startswith("2 checks, 1 failed")
