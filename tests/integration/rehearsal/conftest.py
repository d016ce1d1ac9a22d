"""One GKE rehearsal stack (local_stack/rehearsal.py) shared by the tests of this folder.

The control plane is real (kube-apiserver, controller-manager, scheduler, etcd, kwok); site.yml runs once
as the cluster's creator (``converged``) and the tests go on from the deployment it leaves.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from local_stack.rehearsal import Rehearsal
from rehearsal_lib import site
from testlib import REPO


@pytest.fixture(scope="session")
def rehearsal(tmp_path_factory):
    stack = Rehearsal(tmp_path_factory.mktemp("rehearsal"))
    env = stack.up()
    env["TRITON_FIL_STACK_ENV"] = str(Path(env["TRITON_FIL_RUN_DIR"]) / "env.json")
    env["PATH"] = os.pathsep.join([str(REPO / ".venv" / "bin"), str(REPO / ".tools" / "bin"), os.environ["PATH"]])
    try:
        yield env
    finally:
        stack.down()


@pytest.fixture(scope="session")
def converged(rehearsal):
    """site.yml once, as the cluster's creator: the deployment every test of this folder starts from."""
    first = site(rehearsal)
    assert first.rc == 0, first.stdout[-6000:]
    return first
