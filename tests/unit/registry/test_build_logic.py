"""container_image_build's idempotence rules with a fake Docker client and registry (no daemon here)."""

from __future__ import annotations

import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.registry import build
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.client import Credentials, RegistryError

NAME = "us-central1-docker.pkg.dev/p/triton/triton_fil"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


class FakeImage:
    def __init__(self, image_id, repo_digests=()):
        self.id = image_id
        self.attrs = {"RepoDigests": list(repo_digests)}

    def reload(self):
        pass


class FakeImages:
    def __init__(self, local, built, push_digest):
        self.local, self.built, self.push_digest = local, built, push_digest
        self.builds, self.pushes = [], []

    def get(self, _tag):
        if self.local is None:
            raise build.docker.errors.ImageNotFound("no such image")
        return self.local

    def build(self, **kwargs):
        self.builds.append(kwargs)
        return self.built, iter(())

    def push(self, name, tag, **kwargs):
        self.pushes.append((name, tag, kwargs["auth_config"]))
        return iter([{"status": "Pushed"}, {"aux": {"Tag": tag, "Digest": self.push_digest, "Size": 1}}])


class FakeDocker:
    def __init__(self, images):
        self.images = images


class FakeRegistry:
    def __init__(self, digest):
        self.digest = digest
        self.credentials = Credentials("oauth2accesstoken", password_source=lambda: "ya29.token")

    def manifest_digest(self, _repository, _tag):
        return self.digest

    def get_manifest(self, _repository, _ref):
        return None  # a manifest elsewhere: its config is not this image's (the real registry: test_build_podman.py)


@pytest.fixture
def params(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return {"name": NAME, "tag": "24.10", "path": str(tmp_path), "dockerfile": "Dockerfile", "build_args": None,
            "target": None, "platform": None, "pull": False, "nocache": False, "push": True,
            "docker_host": "unix:///var/run/docker.sock", "build_timeout": 60}


def wire(monkeypatch, images, remote_digest):
    monkeypatch.setattr(build, "connect", lambda host, timeout: FakeDocker(images))
    monkeypatch.setattr(build, "make_client", lambda *a, **k: FakeRegistry(remote_digest))


def test_first_build_pushes_with_the_google_token(monkeypatch, params):
    images = FakeImages(local=None, built=FakeImage("sha256:img1"), push_digest=DIGEST_A)
    wire(monkeypatch, images, remote_digest=None)
    result = build.run_build(params, False, None)
    assert result["changed"] is True and result["pushed"] is True
    assert result["digest"] == DIGEST_A and result["ref"] == f"{NAME}@{DIGEST_A}"
    assert images.pushes == [(NAME, "24.10", {"username": "oauth2accesstoken", "password": "ya29.token"})]
    assert result["diff"]["before"] == {"image_id": None, "digest": None}


def test_unchanged_build_already_pushed_is_a_noop(monkeypatch, params):
    same = FakeImage("sha256:img1", [f"{NAME}@{DIGEST_A}"])
    images = FakeImages(local=same, built=same, push_digest=DIGEST_A)
    wire(monkeypatch, images, remote_digest=DIGEST_A)
    result = build.run_build(params, False, None)
    assert result["changed"] is False and result["pushed"] is False and images.pushes == []
    assert result["ref"] == f"{NAME}@{DIGEST_A}"


def test_remote_tag_moved_elsewhere_pushes_again(monkeypatch, params):
    same = FakeImage("sha256:img1", [f"{NAME}@{DIGEST_A}"])
    images = FakeImages(local=same, built=same, push_digest=DIGEST_A)
    wire(monkeypatch, images, remote_digest=DIGEST_B)
    result = build.run_build(params, False, None)
    assert result["changed"] is True and result["pushed"] is True and result["digest"] == DIGEST_A


def test_check_mode_builds_nothing(monkeypatch, params):
    images = FakeImages(local=FakeImage("sha256:img1", [f"{NAME}@{DIGEST_A}"]), built=None, push_digest=None)
    wire(monkeypatch, images, remote_digest=DIGEST_A)
    assert build.run_build(params, True, None)["changed"] is False
    wire(monkeypatch, images, remote_digest=DIGEST_B)
    assert build.run_build(params, True, None)["changed"] is True
    assert images.builds == [] and images.pushes == []


def test_push_error_names_the_credentials(monkeypatch, params):
    images = FakeImages(local=None, built=FakeImage("sha256:img1"), push_digest=None)
    images.push = lambda *a, **k: iter([{"error": "denied", "errorDetail": {"message": "denied: permission"}}])
    wire(monkeypatch, images, remote_digest=None)
    with pytest.raises(RegistryError) as err:
        build.run_build(params, False, None)
    assert "denied: permission" in str(err.value) and "Google credentials" not in str(err.value)
    assert "ya29.token" not in str(err.value)


def test_name_with_tag_is_refused(params):
    with pytest.raises(RegistryError) as err:
        build.run_build({**params, "name": NAME + ":v1"}, False, None)
    assert "give the tag in 'tag'" in str(err.value)
