"""container_image_mirror through ansible-playbook between real registries, counting requests at the server."""

from __future__ import annotations

import json

import pytest

from integration.registry.images import OCI_INDEX, digest_of, make_image, multi_platform, random_layer

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

    missing = ansible(MIRROR_PLAY, extra_vars={**ev, "platform": "linux/s390x"})
    assert missing.rc != 0
    msg = missing.result("mirror")["msg"]
    assert "has no linux/s390x image" in msg and "linux/amd64" in msg and "linux/arm64/v8" in msg


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


@pytest.mark.parametrize("side", ["source", "destination"])
def test_wrong_credential_fails_clearly_and_never_prints_the_password(
        ansible, source_registry, dest_registry, triton_index, side):
    wrong = f"WRONG-{side}-secret-must-not-leak-9431"
    ev = {"source": f"{source_registry.host}/nvidia/tritonserver:24.10-py3",
          "destination": f"{dest_registry.host}/proj/denied", **creds(source_registry, dest_registry),
          f"{side}_password": wrong}
    run = ansible(MIRROR_PLAY, extra_vars=ev, verbosity=3, callback="default")
    assert run.rc != 0
    out = run.stdout + run.stderr
    assert wrong not in out
    assert source_registry.password not in out and dest_registry.password not in out
    user = source_registry.username if side == "source" else dest_registry.username
    assert f"{side} registry" in out and f"user '{user}'" in out and f"{side}_username/{side}_password" in out
    assert "must not leak" not in json.dumps(dest_registry.tags("proj/denied"))


def test_errors_name_the_option(ansible, open_registry):
    bad = ansible(MIRROR_PLAY, extra_vars={"source": "Nvcr.io/Bad Name", "destination": f"{open_registry.host}/x"})
    assert bad.rc != 0 and "source 'Nvcr.io/Bad Name'" in bad.result("mirror")["msg"]
    absent = ansible(MIRROR_PLAY, extra_vars={"source": f"{open_registry.host}/nothing/here:v1",
                                              "destination": f"{open_registry.host}/x"})
    assert absent.rc != 0
    assert "was not found" in absent.result("mirror")["msg"] and "'source'" in absent.result("mirror")["msg"]
    by_digest = ansible(MIRROR_PLAY, extra_vars={"source": f"{open_registry.host}/a:v1",
                                                 "destination": f"{open_registry.host}/x@sha256:" + "0" * 64})
    assert by_digest.rc != 0 and "destination" in by_digest.result("mirror")["msg"]
