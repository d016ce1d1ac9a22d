"""Real registries for the registry tests, each a docker-registry process with its own config under tmp.

- ``source_registry``: Bearer token auth, with the test token service of token_server.py as realm
  (the flow nvcr.io, Docker Hub and Artifact Registry use).
- ``dest_registry``: htpasswd Basic auth (bcrypt hash from the crypt module or the bcrypt package).
- ``open_registry``: no auth.
"""

from __future__ import annotations

import secrets

import pytest

from local_stack.registry import (
    Registry, RegistryMissing, RegistryStartError, bcrypt_hash, start_registry, stop,
)


def start(run_dir, auth=None):
    try:
        return start_registry(run_dir, auth)
    except (RegistryMissing, RegistryStartError) as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def open_registry(tmp_path_factory):
    host, log_file, proc = start(tmp_path_factory.mktemp("registry-open"))
    try:
        yield Registry(host, log_file, proc)
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def dest_registry(tmp_path_factory):
    """htpasswd Basic auth; skipped (with the reason) when no bcrypt hash can be made here."""
    run_dir = tmp_path_factory.mktemp("registry-basic")
    username, password = "pusher", "dest-PASSWORD-" + secrets.token_hex(6)
    hashed = bcrypt_hash(password)
    if hashed is None:
        pytest.skip("no bcrypt implementation (crypt module or bcrypt package) to write the registry's htpasswd")
    htpasswd = run_dir / "htpasswd"
    htpasswd.write_text(f"{username}:{hashed}\n")
    host, log_file, proc = start(run_dir, ("htpasswd", htpasswd))
    try:
        yield Registry(host, log_file, proc, username, password)
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def source_registry(tmp_path_factory):
    """Bearer token auth through the test token service."""
    from integration.registry.token_server import ISSUER, TokenService  # pylint: disable=import-outside-toplevel

    run_dir = tmp_path_factory.mktemp("registry-token")
    username, password = "reader", "source-PASSWORD-" + secrets.token_hex(6)
    tokens = TokenService(run_dir / "token-signer.pem", "triton-fil-test-registry", {username: password}).start()
    host, log_file, proc = start(run_dir, ("token", {
        "realm": tokens.url, "service": tokens.service, "issuer": ISSUER,
        "rootcertbundle": run_dir / "token-signer.pem"}))
    try:
        yield Registry(host, log_file, proc, username, password, token_service=tokens)
    finally:
        stop(proc)
        tokens.stop()
