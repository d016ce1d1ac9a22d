"""container_image_build against a real Docker Engine API: podman's (local_stack/podman.py), with the real registries.

The Dockerfile starts FROM an image pulled from the local registry, runs a RUN step that writes a build
argument into a file, and COPYs a file from the context; the image goes to the htpasswd registry and is
pinned by digest. The layers that arrive there are read back and checked byte for byte.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from local_stack.images import shell_base_image
from local_stack.podman import PodmanMissing, PodmanStartError, start_podman

# Two or three ansible-playbook runs per case: ~15 s each on a 2-core machine.
pytestmark = pytest.mark.slow

SECRET_NOTE = "the htpasswd password is never printed"

BUILD_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: build
      rapids.triton_fil.container_image_build:
        path: "{{ context }}"
        dockerfile: "{{ dockerfile | default('Dockerfile') }}"
        build_args: "{{ build_args }}"
        name: "{{ name }}"
        tag: "{{ tag | default('v1') }}"
        docker_host: "{{ docker_host }}"
        registry_username: "{{ username }}"
        registry_password: "{{ password }}"
        auth_kind: anonymous
"""


@pytest.fixture(scope="module")
def podman(tmp_path_factory, open_registry, dest_registry):
    try:
        engine = start_podman(tmp_path_factory.mktemp("podman"), [open_registry.host, dest_registry.host])
    except (PodmanMissing, PodmanStartError) as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="module")
def base_image(open_registry):
    image = shell_base_image()
    open_registry.push_image("local/shell-base", "1", image)
    return f"{open_registry.host}/local/shell-base:1"


@pytest.fixture
def context(tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "ARG BASE_IMAGE\n"
        "FROM ${BASE_IMAGE}\n"
        "ARG FIL_VERSION=unset\n"
        'RUN echo "fil backend $FIL_VERSION" > /built.txt\n'
        "COPY model.txt /models/model.txt\n")
    (ctx / "model.txt").write_text("a model file from the build context\n")
    (ctx / "Failing.Dockerfile").write_text("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo about to fail; exit 3\n")
    return ctx


def layer_files(dest_registry, repository, digest):
    """{path: bytes} of every regular file in the image's layers, read from the registry."""
    body, _type = dest_registry.manifest(repository, digest)
    files = {}
    for layer in json.loads(body)["layers"]:
        _status, _headers, data = dest_registry.call("GET", f"/v2/{repository}/blobs/{layer['digest']}", repository)
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    files[member.name.lstrip("./")] = tar.extractfile(member).read()
    return files


def test_build_push_pin_then_noop(ansible, podman, base_image, dest_registry, context):
    ev = {"context": str(context), "docker_host": podman.docker_host, "name": f"{dest_registry.host}/proj/fil",
          "build_args": {"BASE_IMAGE": base_image, "FIL_VERSION": "24.10"},
          "username": dest_registry.username, "password": dest_registry.password}

    plan = ansible(BUILD_PLAY, extra_vars=ev, check=True, diff=True)
    assert plan.rc == 0 and plan.result("build")["changed"] is True, plan.stdout
    assert plan.result("build")["image_id"] is None and dest_registry.tags("proj/fil") == []

    dest_registry.mark()
    first = ansible(BUILD_PLAY, extra_vars=ev, verbosity=3)
    assert first.rc == 0, first.stdout[-3000:]
    res = first.result("build")
    assert res["changed"] is True and res["pushed"] is True and res["digest"].startswith("sha256:")
    assert res["ref"] == f"{dest_registry.host}/proj/fil@{res['digest']}"
    assert dest_registry.password not in first.stdout + first.stderr, SECRET_NOTE
    body, _type = dest_registry.manifest("proj/fil", "v1")
    assert body is not None and dest_registry.manifest("proj/fil", res["digest"])[0] == body, "the tag is the digest"
    config_digest = json.loads(body)["config"]["digest"]
    assert res["image_id"] == config_digest, "the pushed config is the built image"
    files = layer_files(dest_registry, "proj/fil", res["digest"])
    assert files["built.txt"] == b"fil backend 24.10\n", "the RUN step ran with the build argument"
    assert files["models/model.txt"] == b"a model file from the build context\n", "COPY took the context's file"
    assert files["bin/sh"][:4] == b"\x7fELF", "FROM the image pulled from the local registry"

    dest_registry.mark()
    second = ansible(BUILD_PLAY, extra_vars=ev, diff=True)
    assert second.rc == 0 and second.changed == 0, second.stdout[-3000:]
    again = second.result("build")
    assert again["pushed"] is False and again["digest"] == res["digest"] and again["image_id"] == res["image_id"]
    assert dest_registry.writes() == [], "an unchanged build pushes nothing"

    check = ansible(BUILD_PLAY, extra_vars=ev, check=True)
    assert check.rc == 0 and check.result("build")["changed"] is False

    bumped = ansible(BUILD_PLAY, extra_vars={**ev, "build_args": {**ev["build_args"], "FIL_VERSION": "24.11"}})
    assert bumped.rc == 0, bumped.stdout[-3000:]
    new = bumped.result("build")
    assert new["changed"] is True and new["pushed"] is True and new["digest"] != res["digest"]
    assert layer_files(dest_registry, "proj/fil", new["digest"])["built.txt"] == b"fil backend 24.11\n"


def test_a_failing_build_fails_clearly_and_pushes_nothing(ansible, podman, base_image, dest_registry, context):
    ev = {"context": str(context), "dockerfile": "Failing.Dockerfile", "docker_host": podman.docker_host,
          "name": f"{dest_registry.host}/proj/broken", "build_args": {"BASE_IMAGE": base_image},
          "username": dest_registry.username, "password": dest_registry.password}
    dest_registry.mark()
    run = ansible(BUILD_PLAY, extra_vars=ev)
    assert run.rc != 0
    msg = run.result("build")["msg"]
    assert "container_image_build: docker build of" in msg and "Failing.Dockerfile" in msg
    assert "exit 3" in msg and "fix the Dockerfile or build_args" in msg
    assert dest_registry.writes() == [] and dest_registry.tags("proj/broken") == []
