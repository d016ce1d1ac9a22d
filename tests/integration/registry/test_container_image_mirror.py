"""container_image_mirror through ansible-playbook between real registries, counting requests at the server."""

from __future__ import annotations

import pytest

from local_stack.images import OCI_INDEX, digest_of, make_image, multi_platform, random_layer

MIRROR_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: mirror
      rapids.triton_fil.container_image_mirror:
        source: "{{ source }}"
        destination: "{{ destination }}"
        platform: "{{ platform | default('all') }}"
        source_username: "{{ source_username | default(omit) }}"
        source_password: "{{ source_password | default(omit) }}"
        destination_username: "{{ destination_username | default(omit) }}"
        destination_password: "{{ destination_password | default(omit) }}"
        chunk_size: "{{ chunk_size | default(omit) }}"
        mount_from: "{{ mount_from | default(omit) }}"
        auth_kind: anonymous
"""


def creds(source_registry, dest_registry):
    return {"source_username": source_registry.username, "source_password": source_registry.password,
            "destination_username": dest_registry.username, "destination_password": dest_registry.password}


@pytest.fixture(scope="module")
def triton_index(source_registry):
    """A two-platform index in the token-auth source registry, as nvcr.io serves tritonserver."""
    index = multi_platform(layer_sizes=(3000, 5000))
    source_registry.push_image("nvidia/tritonserver", "24.10-py3", index)
    return index


def test_mirror_index_then_noop(ansible, source_registry, dest_registry, triton_index):
    ev = {"source": f"{source_registry.host}/nvidia/tritonserver:24.10-py3",
          "destination": f"{dest_registry.host}/proj/triton/triton_fil", **creds(source_registry, dest_registry)}
    blobs = triton_index.blobs  # 2 configs + shared base + 2x2 own layers = 7

    dest_registry.mark()
    plan = ansible(MIRROR_PLAY, extra_vars=ev, check=True, diff=True)
    assert plan.rc == 0, plan.stdout
    res = plan.result("mirror")
    assert res["changed"] is True and res["blobs_planned"] == len(blobs) == 7
    assert res["bytes_planned"] == sum(len(b.data) for b in blobs)
    assert res["blobs_copied"] == 0 and res["digest"] == triton_index.digest
    assert res["diff"]["before"]["digest"] is None and res["diff"]["after"]["digest"] == triton_index.digest
    assert dest_registry.writes() == [], "check mode must not write"

    dest_registry.mark()
    first = ansible(MIRROR_PLAY, extra_vars=ev, diff=True)
    assert first.rc == 0, first.stdout
    res = first.result("mirror")
    assert res["changed"] is True
    assert res["blobs_copied"] == 7 and res["blobs_skipped"] == 0 and res["manifests_copied"] == 3
    assert res["bytes_copied"] == sum(len(b.data) for b in blobs)
    assert res["digest"] == triton_index.digest == digest_of(triton_index.manifest)
    assert res["ref"] == f"{dest_registry.host}/proj/triton/triton_fil@{triton_index.digest}"
    assert res["tag"] == "24.10-py3" and res["media_type"] == OCI_INDEX
    assert sorted(res["platforms"]) == ["linux/amd64", "linux/arm64/v8"]
    assert len(dest_registry.blob_uploads_finished()) == 7
    body, content_type = dest_registry.manifest("proj/triton/triton_fil", "24.10-py3")
    assert body == triton_index.manifest and content_type == OCI_INDEX, "manifest bytes are copied as served"
    for blob in blobs:
        assert dest_registry.has_blob("proj/triton/triton_fil", blob.digest)

    source_registry.mark()
    dest_registry.mark()
    second = ansible(MIRROR_PLAY, extra_vars=ev, diff=True)
    assert second.rc == 0 and second.changed == 0, second.stdout
    res = second.result("mirror")
    assert res["blobs_copied"] == 0 and res["bytes_copied"] == 0 and res["digest"] == triton_index.digest
    assert dest_registry.requests(), "the destination must have been asked"
    assert dest_registry.writes() == [], "an up-to-date mirror sends nothing"
    assert not [r for r in source_registry.requests() if "/blobs/" in r[1]], "no blob is read from the source"


def test_partial_destination_receives_only_missing_blobs(ansible, source_registry, dest_registry):
    image = make_image(layer_sizes=(1000, 2000, 3000, 4000))
    source_registry.push_image("team/partial", "v1", image)
    present = image.layers[:2]
    for blob in present:
        dest_registry.push_blob("mirror/partial", blob.data)
    ev = {"source": f"{source_registry.host}/team/partial:v1", "destination": f"{dest_registry.host}/mirror/partial",
          **creds(source_registry, dest_registry)}
    dest_registry.mark()
    run = ansible(MIRROR_PLAY, extra_vars=ev)
    assert run.rc == 0, run.stdout
    res = run.result("mirror")
    missing = [image.config, *image.layers[2:]]
    assert res["blobs_skipped"] == 2 and res["blobs_copied"] == 3
    assert res["bytes_copied"] == sum(len(b.data) for b in missing)
    finished = dest_registry.blob_uploads_finished()
    assert sorted(p.split("digest=")[1].replace("%3A", ":") for _m, p, _s in finished) == \
        sorted(b.digest for b in missing)
    assert dest_registry.manifest("mirror/partial", "v1")[0] == image.manifest


def test_platform_copies_only_that_manifest(ansible, source_registry, dest_registry, triton_index):
    amd64 = triton_index.images[0]
    ev = {"source": f"{source_registry.host}/nvidia/tritonserver:24.10-py3",
          "destination": f"{dest_registry.host}/proj/amd64-only:24.10-py3", "platform": "linux/amd64",
          **creds(source_registry, dest_registry)}
    dest_registry.mark()
    run = ansible(MIRROR_PLAY, extra_vars=ev)
    assert run.rc == 0, run.stdout
    res = run.result("mirror")
    assert res["digest"] == amd64.digest and res["source_digest"] == triton_index.digest
    assert res["platforms"] == ["linux/amd64"] and res["manifests_copied"] == 1
    assert res["blobs_copied"] == len(amd64.blobs) == 4
    assert dest_registry.manifest("proj/amd64-only", "24.10-py3")[0] == amd64.manifest
    arm64 = triton_index.images[1]
    assert not dest_registry.has_blob("proj/amd64-only", arm64.config.digest)
    assert dest_registry.manifest("proj/amd64-only", arm64.digest)[0] is None


def test_chunked_upload_and_cross_repository_mount(ansible, source_registry, dest_registry):
    big = random_layer(300 * 1024)
    image = make_image(layers=[big, random_layer(500)], oci=True)
    source_registry.push_image("team/big", "v2", image)
    ev = {"source": f"{source_registry.host}/team/big:v2", "destination": f"{dest_registry.host}/a/big",
          "chunk_size": 100 * 1024, **creds(source_registry, dest_registry)}
    dest_registry.mark()
    run = ansible(MIRROR_PLAY, extra_vars=ev)
    assert run.rc == 0, run.stdout
    patches = [r for r in dest_registry.writes() if r[0] == "PATCH"]
    assert len(patches) == -(-len(big.data) // (100 * 1024)), "the big layer goes up in chunk_size pieces"
    assert dest_registry.has_blob("a/big", big.digest)

    # Same registry, other repository: blobs are mounted, not sent.
    dest_registry.mark()
    same = {"source": f"{dest_registry.host}/a/big:v2", "destination": f"{dest_registry.host}/b/big",
            "source_username": dest_registry.username, "source_password": dest_registry.password,
            "destination_username": dest_registry.username, "destination_password": dest_registry.password}
    run = ansible(MIRROR_PLAY, extra_vars=same)
    assert run.rc == 0, run.stdout
    res = run.result("mirror")
    assert res["blobs_mounted"] == 3 and res["blobs_copied"] == 0 and res["bytes_copied"] == 0
    assert [r for r in dest_registry.writes() if r[0] == "PATCH"] == []
    assert all("mount=" in p for m, p, _s in dest_registry.writes() if m == "POST")


WRONG_PLAY = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    rapids.triton_fil.container_image_mirror:
      source: "{{ source }}"
      destination: "{{ destination }}"
      source_username: "{{ source_username }}"
      destination_username: "{{ destination_username }}"
      auth_kind: anonymous
  tasks:
    - name: wrong source password
      rapids.triton_fil.container_image_mirror:
        source_password: "{{ wrong_source }}"
        destination_password: "{{ destination_password }}"
      ignore_errors: true
    - name: wrong destination password
      rapids.triton_fil.container_image_mirror:
        source_password: "{{ source_password }}"
        destination_password: "{{ wrong_destination }}"
      ignore_errors: true
"""


def test_wrong_credential_fails_clearly_and_never_prints_the_password(
        ansible, source_registry, dest_registry, triton_index):
    ev = {"source": f"{source_registry.host}/nvidia/tritonserver:24.10-py3",
          "destination": f"{dest_registry.host}/proj/denied", **creds(source_registry, dest_registry),
          "wrong_source": "WRONG-source-secret-must-not-leak-9431",
          "wrong_destination": "WRONG-destination-secret-must-not-leak-9431"}
    dest_registry.mark()
    run = ansible(WRONG_PLAY, extra_vars=ev, verbosity=3, callback="default")
    out = run.stdout + run.stderr
    assert run.rc == 0 and out.count("...ignoring") == 2, out[-3000:]
    for secret in (ev["wrong_source"], ev["wrong_destination"], source_registry.password, dest_registry.password):
        assert secret not in out
    assert "source registry" in out and "refused the credentials of user 'reader'" in out
    assert "check source_username/source_password" in out
    assert "destination registry" in out and "rejected user 'pusher'" in out
    assert "check destination_username/destination_password" in out
    assert dest_registry.writes() == [] and dest_registry.tags("proj/denied") == []


ERRORS_PLAY = """
- hosts: localhost
  gather_facts: false
  module_defaults:
    rapids.triton_fil.container_image_mirror:
      auth_kind: anonymous
  tasks:
    - name: bad source
      rapids.triton_fil.container_image_mirror:
        source: Nvcr.io/Bad Name
        destination: "{{ open }}/x"
      ignore_errors: true
    - name: absent source
      rapids.triton_fil.container_image_mirror:
        source: "{{ open }}/nothing/here:v1"
        destination: "{{ open }}/x"
      ignore_errors: true
    - name: destination digest
      rapids.triton_fil.container_image_mirror:
        source: "{{ open }}/a:v1"
        destination: "{{ open }}/x@sha256:{{ '0' * 64 }}"
      ignore_errors: true
    - name: missing platform
      rapids.triton_fil.container_image_mirror:
        source: "{{ source }}"
        source_username: "{{ source_username }}"
        source_password: "{{ source_password }}"
        destination: "{{ open }}/y"
        platform: linux/s390x
      ignore_errors: true
"""


def test_errors_name_the_option(ansible, open_registry, source_registry, triton_index):
    run = ansible(ERRORS_PLAY, extra_vars={
        "open": open_registry.host, "source": f"{source_registry.host}/nvidia/tritonserver:24.10-py3",
        "source_username": source_registry.username, "source_password": source_registry.password})
    assert run.rc == 0, run.stdout
    assert "source 'Nvcr.io/Bad Name'" in run.result("bad source")["msg"]
    msg = run.result("absent source")["msg"]
    assert "was not found" in msg and "'source'" in msg
    assert "destination" in run.result("destination digest")["msg"]
    msg = run.result("missing platform")["msg"]
    assert "has no linux/s390x image" in msg and "linux/amd64" in msg and "linux/arm64/v8" in msg
