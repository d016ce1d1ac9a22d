"""The committed sample model is what model_repository/generate.py builds, and its reference is XGBoost's answer."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from testlib import REPO

xgb = pytest.importorskip("xgboost")


def test_generator_reproduces_the_committed_files():
    out = subprocess.run([sys.executable, str(REPO / "model_repository" / "generate.py"), "--check"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stdout


def test_reference_outputs_are_the_models_predictions():
    reference = json.loads((REPO / "model_repository" / "fil_reference.json").read_text())
    rows = np.asarray(reference["inputs"]["input__0"]["data"], dtype=np.float32)
    assert rows.shape == (8, 32) == tuple(reference["inputs"]["input__0"]["shape"])
    booster = xgb.Booster()
    booster.load_model(str(REPO / "model_repository" / "fil" / "1" / "xgboost.json"))
    positive = booster.predict(xgb.DMatrix(rows))
    expected = np.asarray(reference["outputs"]["output__0"]["data"])
    np.testing.assert_allclose(expected[:, 1], positive, atol=1e-6)
    np.testing.assert_allclose(expected.sum(axis=1), 1.0, atol=1e-6)
    assert positive.min() < 0.5 < positive.max() and np.ptp(positive) > 0.5  # both classes, not a constant model


def test_committed_binaries_stay_small():
    sizes = {p.name: p.stat().st_size for p in (REPO / "model_repository").rglob("*") if p.is_file()}
    assert max(sizes.values()) < 2 * 1024 * 1024, sizes
