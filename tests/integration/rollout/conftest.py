"""Two tritonservers on one bucket (local_stack/stack.py --replicas 2), like two pods of one release.

The repository the tests roll out is a copy of the sample (model_repository/), changed by the tests; the
stack's fake-gcs-server logs every request, so writes are counted at the bucket, and the module reports the
load/unload calls it made at the servers.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from local_stack.stack import LocalStack
from rollout_support import BucketLog
from testlib import REPO


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("rollout-stack")
    saved = os.environ.get("TRITON_FIL_STACK_GCS_LOG_LEVEL")
    os.environ["TRITON_FIL_STACK_GCS_LOG_LEVEL"] = "info"  # fake-gcs-server logs every request
    stack = LocalStack(run_dir, bucket="triton-fil-rollout", replicas=2)
    try:
        env = stack.up()
    finally:
        if saved is None:
            os.environ.pop("TRITON_FIL_STACK_GCS_LOG_LEVEL")
        else:
            os.environ["TRITON_FIL_STACK_GCS_LOG_LEVEL"] = saved
    env["TRITON_FIL_STACK_ENV"] = str(run_dir / "env.json")
    try:
        yield {"env": env, "run_dir": run_dir, "stack": stack, "servers": json.loads(env["TRITON_FIL_SERVERS"]),
               "gcs": BucketLog(env["TRITON_FIL_GCS_ENDPOINT"], run_dir / "fake-gcs-server.log")}
    finally:
        stack.down()


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A copy of the sample repository (fil version 1 and its reference) for the tests to change."""
    root = tmp_path_factory.mktemp("repo") / "model_repository"
    shutil.copytree(REPO / "model_repository", root, ignore=shutil.ignore_patterns("generate.py", "__pycache__"))
    return root
