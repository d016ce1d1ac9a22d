#!/usr/bin/env python
"""Regenerate the sample model repository deterministically.

    python model_repository/generate.py           # rewrite fil/ and fil_reference.json
    python model_repository/generate.py --check   # rebuild in memory, fail if the committed files differ
    python model_repository/generate.py --trees 300 --version 2   # a retrained model as version 2
    python model_repository/generate.py --trees 300 --version 2 --dest /tmp/repo   # ... into a copy

A retrained model goes into a new version folder; fil_reference.json then describes it, and
model_rollout serves it once it answered like that reference on every server (`make demo` again).

The model is a binary XGBoost classifier (32 features, 200 trees of depth 4) trained on a
synthetic data set with fixed seeds and one thread, so the same inputs give the same bytes.
Everything else is what rapids.triton_fil.fil_model makes from that trained file (the same code,
plugins/module_utils/triton/fil_model.py): fil/config.pbtxt and fil/configs/cpu.pbtxt for the
collection's default release, and fil_reference.json with 8 input rows and the probabilities
XGBoost itself predicts for them. The verify role sends those rows to Triton and compares
(atol/rtol below) — the FIL backend on GPU evaluates in float32, hence the tolerance.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import xgboost as xgb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "collections"))
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import fil_model  # noqa: E402  pylint: disable=wrong-import-position

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


def build(trees: int = NUM_TREES, version: int = 1) -> dict[Path, bytes]:
    """Every file of the sample, by path (trees and version other than the defaults: a retrained model)."""
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
        num_boost_round=trees,
    )
    # Four decimals survive JSON and float32 unchanged: the server sees exactly these values.
    rows = np.round(rng.normal(size=(REFERENCE_ROWS, NUM_FEATURES)), 4)
    with tempfile.TemporaryDirectory() as tmp:
        model_file = Path(tmp) / "xgboost.json"
        model_file.write_bytes(bytes(booster.save_raw(raw_format="json")))
        rows_file = Path(tmp) / "rows.npy"
        np.save(rows_file, rows)
        made = fil_model.plan({
            "model_file": str(model_file), "model_format": "auto", "output_format": "auto", "name": "fil",
            "version": version, "release": None, "image": None, "predict_proba": True, "threshold": 0.5,
            "max_batch_size": 32768, "instance_count": 1, "dynamic_batching": True,
            "max_queue_delay_microseconds": 100, "cpu_variant": True, "reference_rows": REFERENCE_ROWS,
            "reference_data": str(rows_file), "atol": ATOL, "rtol": RTOL,
        })
    files = {HERE / relpath: data for relpath, data in made["files"].items()}
    files[REFERENCE_FILE] = made["reference"]
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed files are not what this script builds")
    parser.add_argument("--trees", type=int, default=NUM_TREES, help=f"boosting rounds (default {NUM_TREES})")
    parser.add_argument("--version", type=int, default=1, help="version folder to write the model into (default 1)")
    parser.add_argument("--dest", type=Path, default=HERE, help="repository folder to write into (default: this one)")
    args = parser.parse_args()
    if args.check and ((args.trees, args.version) != (NUM_TREES, 1) or args.dest.resolve() != HERE):
        parser.error("--check compares the committed sample (the default --trees, --version and --dest)")
    files = {args.dest.resolve() / path.relative_to(HERE): data for path, data in build(args.trees, args.version).items()}
    if args.check:
        stale = [str(p.relative_to(HERE)) for p, want in files.items() if not p.is_file() or p.read_bytes() != want]
        if stale:
            print(f"out of date: {', '.join(sorted(stale))}; run python model_repository/generate.py", file=sys.stderr)
            return 1
        print("model repository is up to date")
        return 0
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    print("wrote " + ", ".join(f"{p.relative_to(args.dest.resolve())} ({len(d)} bytes)" for p, d in sorted(files.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
