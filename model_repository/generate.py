#!/usr/bin/env python
"""Regenerate the sample model repository deterministically.

    python model_repository/generate.py           # rewrite fil/1/xgboost.json and fil_reference.json
    python model_repository/generate.py --check   # rebuild in memory, fail if the committed files differ

The model is a binary XGBoost classifier (32 features, 200 trees of depth 4) trained on a
synthetic data set with fixed seeds and one thread, so the same inputs give the same bytes.
fil_reference.json holds 8 input rows and the probabilities XGBoost itself predicts for them;
the verify role sends those rows to Triton and compares (atol/rtol below) — the FIL backend on
GPU evaluates in float32, hence the tolerance.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import xgboost as xgb

HERE = Path(__file__).resolve().parent
MODEL_DIR = HERE / "fil"
MODEL_FILE = MODEL_DIR / "1" / "xgboost.json"
REFERENCE_FILE = HERE / "fil_reference.json"

NUM_FEATURES = 32
NUM_TREES = 200
MAX_DEPTH = 4
TRAIN_ROWS = 4000
REFERENCE_ROWS = 8
SEED = 20261124
ATOL = 1e-4
RTOL = 1e-4


def training_data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A separable-but-noisy binary problem: a random linear rule plus two interactions."""
    x = rng.normal(size=(TRAIN_ROWS, NUM_FEATURES)).astype(np.float32)
    weights = rng.normal(size=NUM_FEATURES)
    logits = x @ weights + 1.5 * x[:, 0] * x[:, 1] - np.abs(x[:, 2]) + rng.normal(scale=0.5, size=TRAIN_ROWS)
    return x, (logits > 0).astype(np.float32)


def build() -> tuple[bytes, dict]:
    rng = np.random.default_rng(SEED)
    x, y = training_data(rng)
    booster = xgb.train(
        {
            "objective": "binary:logistic",
            "max_depth": MAX_DEPTH,
            "eta": 0.1,
            "tree_method": "exact",
            "nthread": 1,
            "seed": 0,
            "base_score": 0.5,
        },
        xgb.DMatrix(x, label=y),
        num_boost_round=NUM_TREES,
    )
    model_bytes = bytes(booster.save_raw(raw_format="json"))
    # Four decimals survive JSON and float32 unchanged: the server sees exactly these values.
    rows = np.round(rng.normal(size=(REFERENCE_ROWS, NUM_FEATURES)), 4)
    inputs = rows.astype(np.float32)
    positive = booster.predict(xgb.DMatrix(inputs)).astype(np.float64)
    probabilities = np.stack([1.0 - positive, positive], axis=1)
    reference = {
        "model": "fil",
        "description": "xgboost predict_proba for 8 rows; regenerate with model_repository/generate.py",
        "atol": ATOL,
        "rtol": RTOL,
        "inputs": {
            "input__0": {"datatype": "FP32", "shape": list(inputs.shape), "data": rows.tolist()},
        },
        "outputs": {
            "output__0": {
                "datatype": "FP32",
                "shape": list(probabilities.shape),
                "data": np.round(probabilities, 7).tolist(),
            },
        },
    }
    return model_bytes, reference


def reference_text(reference: dict) -> str:
    """JSON with one line per data row, so diffs of the reference stay readable."""
    text = json.dumps(reference, indent=1)
    for tensors in (reference["inputs"], reference["outputs"]):
        for tensor in tensors.values():
            for row in tensor["data"]:
                text = text.replace(json.dumps(row, indent=1).replace("\n", "\n" + " " * 4), json.dumps(row), 1)
    return text + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed files are not what this script builds")
    args = parser.parse_args()
    model_bytes, reference = build()
    text = reference_text(reference)
    if args.check:
        stale = [str(p.relative_to(HERE)) for p, want in ((MODEL_FILE, model_bytes), (REFERENCE_FILE, text.encode()))
                 if not p.is_file() or p.read_bytes() != want]
        if stale:
            print(f"out of date: {', '.join(stale)}; run python model_repository/generate.py", file=sys.stderr)
            return 1
        print("model repository is up to date")
        return 0
    MODEL_FILE.parent.mkdir(parents=True, exist_ok=True)
    MODEL_FILE.write_bytes(model_bytes)
    REFERENCE_FILE.write_text(text)
    print(f"wrote {MODEL_FILE.relative_to(HERE)} ({len(model_bytes)} bytes) and {REFERENCE_FILE.relative_to(HERE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
