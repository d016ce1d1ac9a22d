"""artifact_registry_repository through ansible-playbook against the discovery-validated simulator."""

from __future__ import annotations

import pytest

from local_stack.simulators.artifact_registry import ArtifactRegistrySimulator

NAME = "projects/test-project/locations/us-central1/repositories/triton"

LIFECYCLE_PLAY = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    rapids.triton_fil.artifact_registry_repository:
      location: us-central1
      project: test-project
      auth_kind: anonymous
      api_endpoint: "{{ endpoint }}"
  tasks:
    - name: plan
      rapids.triton_fil.artifact_registry_repository:
        name: triton
        description: Triton images
        labels: {app: triton-fil}
      check_mode: true
    - name: create
      rapids.triton_fil.artifact_registry_repository:
        name: triton
        description: Triton images
        labels: {app: triton-fil}
    - name: again
      rapids.triton_fil.artifact_registry_repository:
        name: triton
        description: Triton images
        labels: {app: triton-fil}
    - name: update
      rapids.triton_fil.artifact_registry_repository:
        name: triton
        description: Triton images
        labels: {app: triton-fil, team: ml}
        immutable_tags: true
    - name: other format
      rapids.triton_fil.artifact_registry_repository:
        name: triton
        format: PYTHON
      ignore_errors: true
    - name: bad name
      rapids.triton_fil.artifact_registry_repository:
        name: Triton_Images
      ignore_errors: true
    - name: kept
      rapids.triton_fil.artifact_registry_repository:
        name: full
        state: absent
      ignore_errors: true
    - name: gone
      rapids.triton_fil.artifact_registry_repository:
        name: full
        state: absent
        force: true
    - name: gone again
      rapids.triton_fil.artifact_registry_repository:
        name: full
        state: absent
"""


@pytest.fixture
def ar_sim():
    sim = ArtifactRegistrySimulator()
    yield sim
    sim.close()


def test_create_idempotent_update_and_guarded_delete(ansible, ar_sim):
    full = "projects/test-project/locations/us-central1/repositories/full"
    ar_sim.repositories[full] = {"name": full, "format": "DOCKER", "sizeBytes": "1234"}
    run = ansible(LIFECYCLE_PLAY, extra_vars={"endpoint": ar_sim.url}, diff=True)
    assert run.rc == 0, run.stdout
    assert run.result("plan")["changed"] is True
    created = run.result("create")
    assert created["changed"] is True and created["name"] == NAME
    assert created["registry_uri"] == "us-central1-docker.pkg.dev/test-project/triton"
    assert run.result("again")["changed"] is False
    updated = run.result("update")
    assert updated["changed"] is True
    assert sorted(c["field"] for c in updated["changes"]) == ["docker_config.immutable_tags", "labels"]
    assert "format cannot change" in run.result("other format")["msg"]
    assert "name 'Triton_Images' is not a repository id" in run.result("bad name")["msg"]
    # Only create, update and the forced delete wrote: check-mode, repeated and refused tasks sent nothing.
    writes = [(m, q) for m, _p, q in ar_sim.writes()]
    assert writes[:2] == [("POST", {"repositoryId": ["triton"]}),
                          ("PATCH", {"updateMask": ["labels,docker_config.immutable_tags"]})]
    assert [m for m, _q in writes[2:]] == ["DELETE"]
    repo = ar_sim.repositories[NAME]
    assert repo["format"] == "DOCKER" and repo["labels"] == {"app": "triton-fil", "team": "ml"}
    assert repo["dockerConfig"] == {"immutableTags": True}

    assert "holds 1234 bytes" in run.result("kept")["msg"] and "force=true" in run.result("kept")["msg"]
    assert run.result("gone")["changed"] is True and full not in ar_sim.repositories
    assert run.result("gone again")["changed"] is False
