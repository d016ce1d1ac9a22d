"""The GKE simulator holds the modules to Google's contract: check that it rejects what Google rejects."""

from __future__ import annotations

import time

import pytest
import requests

from simulators.gke import GkeSimulator

HEADERS = {"Authorization": "Bearer test"}
CREATE = "/v1/projects/p/locations/us-central1-a/clusters"


@pytest.fixture
def sim():
    simulator = GkeSimulator(op_seconds=0.05).serve()
    yield simulator
    simulator.close()


def post(sim, path, body, headers=None):
    return requests.post(sim.url + path, json=body, headers=HEADERS if headers is None else headers, timeout=5)


@pytest.mark.parametrize("body,expected", [
    ({"cluster": {"name": "c", "addonsConfig": {"istioConfig": {"disabled": False}}}},
     'Unknown name "istioConfig" at \'cluster.addons_config\': Cannot find field.'),
    ({"cluster": {"name": "c", "initialNodeCount": "three"}}, "Invalid value at 'cluster.initial_node_count' (TYPE_INT64)"),
    ({"cluster": {"name": "c", "releaseChannel": {"channel": "FAST"}}}, "(TYPE_ENUM), \"FAST\""),
    ({"cluster": {"name": "c", "workloadIdentityConfig": {"workloadPool": True}}}, "(TYPE_STRING), true"),
    ({"cluster": {"name": "c", "nodePools": {"name": "x"}}}, "Invalid value at 'cluster.node_pools'"),
])
def test_request_bodies_are_validated_against_the_discovery_document(sim, body, expected):
    response = post(sim, CREATE, body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and expected in error["message"], error["message"]
    assert sim.schema_rejections and sim.clusters == {}


def test_operations_progress_and_errors_are_google_shaped(sim):
    assert post(sim, CREATE, {"cluster": {"name": "c"}}, headers={}).json()["error"]["status"] == "UNAUTHENTICATED"
    op = post(sim, CREATE, {"cluster": {"name": "c", "initialNodeCount": 1}}).json()
    assert op["status"] == "PENDING" and op["operationType"] == "CREATE_CLUSTER"
    again = post(sim, CREATE, {"cluster": {"name": "c"}})
    assert again.status_code == 409 and again.json()["error"]["status"] == "ALREADY_EXISTS"
    busy = requests.put(sim.url + CREATE + "/c", json={"update": {"desiredReleaseChannel": {"channel": "STABLE"}}},
                        headers=HEADERS, timeout=5)
    assert busy.status_code == 400 and busy.json()["error"]["status"] == "FAILED_PRECONDITION"
    time.sleep(0.1)
    done = requests.get(f"{sim.url}/v1/projects/p/locations/us-central1-a/operations/{op['name']}",
                        headers=HEADERS, timeout=5).json()
    assert done["status"] == "DONE" and "error" not in done
    cluster = requests.get(sim.url + CREATE + "/c", headers=HEADERS, timeout=5).json()
    assert cluster["status"] == "RUNNING" and cluster["nodePools"][0]["name"] == "default-pool"
    update = {"desiredReleaseChannel": {"channel": "STABLE"}, "desiredLocations": ["us-central1-a"]}
    two = requests.put(sim.url + CREATE + "/c", json={"update": update}, headers=HEADERS, timeout=5)
    assert two.status_code == 400 and "Exactly one update" in two.json()["error"]["message"]
    missing = requests.get(sim.url + CREATE + "/nope", headers=HEADERS, timeout=5)
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"
