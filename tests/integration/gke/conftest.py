"""A fresh GKE simulator (Container API v1, discovery-validated) per test."""

from __future__ import annotations

import pytest

from simulators.gke import GkeSimulator


@pytest.fixture
def gke():
    sim = GkeSimulator(op_seconds=0.3).serve()
    try:
        yield sim
    finally:
        sim.close()
    # Every body the modules sent is a valid Container API v1 request per Google's discovery document.
    assert sim.schema_rejections == [], f"request bodies rejected by the discovery schema: {sim.schema_rejections}"
