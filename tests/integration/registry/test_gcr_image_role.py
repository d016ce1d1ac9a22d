"""The gcr_image role end to end: AR repository (simulator), mirror between real registries, the digest fact."""

from __future__ import annotations

import pytest

from local_stack.images import multi_platform
from local_stack.simulators.artifact_registry import ArtifactRegistrySimulator

ROLE_PLAY = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: rapids.triton_fil.gcr_image
  post_tasks:
    - name: fact
      ansible.builtin.debug:
        var: triton_fil_image
"""


@pytest.fixture
def ar_sim():
    sim = ArtifactRegistrySimulator()
    yield sim
    sim.close()


def test_role_mirrors_and_hands_over_the_digest(ansible, source_registry, dest_registry, ar_sim):
    index = multi_platform(layer_sizes=(2500,), oci=False)  # a Docker manifest list
    source_registry.push_image("nvidia/tritonserver", "24.10-role", index)
    amd64 = index.images[0]
    ev = {
        "gcp_project": "local-project", "gcp_auth_kind": "anonymous",
        "gcr_image_source": f"{source_registry.host}/nvidia/tritonserver:24.10-role",
        "gcr_image_source_username": source_registry.username,
        "gcr_image_source_password": source_registry.password,
        "gcr_image_registry": dest_registry.host, "gcr_image_tag": "24.10-role", "gcr_image_poll_interval": 1,
        "gcr_image_destination_username": dest_registry.username,
        "gcr_image_destination_password": dest_registry.password,
        "gcr_image_insecure_registries": [dest_registry.host],
        "gcr_image_create_repository": "always", "gcr_image_repository_location": "us-central1",
        "gcr_image_artifact_registry_endpoint": ar_sim.url,
    }
    dest_registry.mark()
    check = ansible(ROLE_PLAY, extra_vars=ev, check=True, diff=True)
    assert check.rc == 0, check.stdout
    assert check.result("fact")["triton_fil_image"]["digest"] == amd64.digest
    assert dest_registry.writes() == [] and ar_sim.writes() == []

    first = ansible(ROLE_PLAY, extra_vars=ev)
    assert first.rc == 0, first.stdout
    repository = f"{dest_registry.host}/local-project/triton/triton_fil"
    assert first.result("fact")["triton_fil_image"] == {
        "repository": repository, "tag": "24.10-role", "digest": amd64.digest, "ref": f"{repository}@{amd64.digest}"}
    assert "projects/local-project/locations/us-central1/repositories/triton" in ar_sim.repositories
    assert dest_registry.manifest("local-project/triton/triton_fil", "24.10-role")[0] == amd64.manifest

    dest_registry.mark()
    ar_sim.requests.clear()
    second = ansible(ROLE_PLAY, extra_vars=ev)
    assert second.rc == 0 and second.changed == 0, second.stdout
    assert second.result("fact")["triton_fil_image"]["ref"] == f"{repository}@{amd64.digest}"
    assert dest_registry.writes() == [] and ar_sim.writes() == []


def test_role_build_mode_without_daemon_points_to_mirror(ansible, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    run = ansible(ROLE_PLAY, extra_vars={
        "gcr_image_mode": "build", "gcr_image_build_context": str(tmp_path), "gcr_image_registry": "127.0.0.1:1",
        "gcr_image_project": "p", "gcr_image_docker_host": f"unix://{tmp_path}/docker.sock",
        "gcp_auth_kind": "anonymous", "gcr_image_poll_interval": 1})
    assert run.rc != 0
    # The build runs in the background; its error surfaces where the role waits for it.
    msg = run.result("Wait for the image copy (each retry line is one poll)")["msg"]
    assert "docker_host=unix://" in msg and "gcr_image_mode: mirror" in msg
