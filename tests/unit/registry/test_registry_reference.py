"""Image reference parsing: Docker Hub defaults, registries with ports, tags and digests, clear errors."""

from __future__ import annotations

import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.reference import (
    InvalidReference, is_google_registry, is_loopback, parse_reference,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, registry, repository, tag, digest, api_host", [
    ("ubuntu", "docker.io", "library/ubuntu", None, None, "registry-1.docker.io"),
    ("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", None, "registry-1.docker.io"),
    ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None, "registry-1.docker.io"),
    ("index.docker.io/library/ubuntu", "docker.io", "library/ubuntu", None, None, "registry-1.docker.io"),
    ("nvcr.io/nvidia/tritonserver:24.10-py3", "nvcr.io", "nvidia/tritonserver", "24.10-py3", None, "nvcr.io"),
    ("localhost:5000/a/b", "localhost:5000", "a/b", None, None, "localhost:5000"),
    ("localhost/a", "localhost", "a", None, None, "localhost"),
    ("127.0.0.1:5000/x:v1", "127.0.0.1:5000", "x", "v1", None, "127.0.0.1:5000"),
    (f"gcr.io/proj/img@{DIGEST}", "gcr.io", "proj/img", None, DIGEST, "gcr.io"),
    (f"us-central1-docker.pkg.dev/p/r/triton_fil:24.10@{DIGEST}", "us-central1-docker.pkg.dev", "p/r/triton_fil",
     "24.10", DIGEST, "us-central1-docker.pkg.dev"),
    ("[::1]:5000/a/b:c", "[::1]:5000", "a/b", "c", None, "[::1]:5000"),
    ("a__b/c-d.e/f---g", "docker.io", "a__b/c-d.e/f---g", None, None, "registry-1.docker.io"),
])
def test_parse(text, registry, repository, tag, digest, api_host):
    ref = parse_reference(text)
    got = (ref.registry, ref.repository, ref.tag, ref.digest, ref.api_host)
    assert got == (registry, repository, tag, digest, api_host)
    assert ref.ref == (digest or tag)
    assert ref.with_digest(DIGEST) == f"{registry}/{repository}@{DIGEST}"


def test_str_round_trips():
    for text in ("nvcr.io/nvidia/tritonserver:24.10-py3", f"gcr.io/p/i:t@{DIGEST}", "docker.io/library/ubuntu"):
        assert str(parse_reference(text)) == text
    assert str(parse_reference("ubuntu")) == "docker.io/library/ubuntu"


@pytest.mark.parametrize("text, fragment", [
    ("", "is empty"),
    ("https://gcr.io/p/i", "drop 'https://'"),
    ("gcr.io/p/i@sha256:abc", "invalid digest"),
    ("gcr.io/p/i@md5:" + "a" * 32, "invalid digest"),
    ("gcr.io/p/i:-bad", "invalid tag"),
    ("gcr.io/p/i:" + "t" * 129, "invalid tag"),
    ("gcr.io/Proj/img", "repository names are lowercase"),
    ("gcr.io/p//i", "invalid repository component ''"),
    ("a/b c", "invalid repository component 'b c'"),
    ("bad_host.example:port/x", "invalid registry host"),
])
def test_invalid_references_name_the_option(text, fragment):
    with pytest.raises(InvalidReference) as err:
        parse_reference(text, "gcr_image_source")
    assert "gcr_image_source" in str(err.value) and fragment in str(err.value)


@pytest.mark.parametrize("host, google", [
    ("gcr.io", True), ("eu.gcr.io", True), ("us-central1-docker.pkg.dev", True), ("europe-docker.pkg.dev", True),
    ("nvcr.io", False), ("registry-1.docker.io", False), ("pkg.dev", False), ("evilgcr.io", False),
    ("docker.pkg.dev.example.com", False),
])
def test_google_registries(host, google):
    assert is_google_registry(host) is google


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1:5000", True), ("127.1.2.3", True), ("localhost:80", True), ("[::1]:5000", True), ("::1", True),
    ("10.0.0.1:5000", False), ("gcr.io", False), ("localhost.example.com", False),
])
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback
