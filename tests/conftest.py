"""Shared pytest fixtures: the collection on sys.path, an ansible-playbook runner."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
for path in (REPO / "collections", REPO / "tests", REPO):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from testlib import run_playbook  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture
def ansible(tmp_path):
    """run_playbook bound to this test's tmp_path."""

    def _run(playbook, **kwargs):
        kwargs.setdefault("tmp_path", tmp_path)
        return run_playbook(playbook, **kwargs)

    return _run
