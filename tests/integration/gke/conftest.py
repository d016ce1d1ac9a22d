"""A fresh GKE simulator (Container API v1, discovery-validated) per test."""

from __future__ import annotations

import pytest

from local_stack.controlplane.google_identity import GoogleIdentity
from local_stack.simulators.gke import GkeSimulator


@pytest.fixture
def gke():
    sim = GkeSimulator(op_seconds=0.3).serve()
    try:
        yield sim
    finally:
        sim.close()
    # Every body the modules sent is a valid Container API v1 request per Google's discovery document.
    assert sim.schema_rejections == [], f"request bodies rejected by the discovery schema: {sim.schema_rejections}"


@pytest.fixture
def google_identity(tmp_path):
    """Google's token endpoint and GKE's token review for service account keys made here."""
    identity = GoogleIdentity(tmp_path / "identity").serve()
    try:
        yield identity
    finally:
        identity.close()
