"""One local stack (fake-gcs-server + supervised tritonserver) shared by the pipeline tests."""

from __future__ import annotations

import pytest

from local_stack.stack import LocalStack


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory):
    stack = LocalStack(tmp_path_factory.mktemp("stack"))
    env = stack.up()
    try:
        yield env
    finally:
        stack.down()
