"""The registry fixture's own contract: a missing docker-registry package fails with the fix."""

from __future__ import annotations

import pytest

from local_stack import registry as localregistry


def test_missing_package_fails_saying_make_bootstrap(monkeypatch, tmp_path):
    monkeypatch.setattr(localregistry, "REGISTRY_BINARY", "docker-registry-not-installed")
    with pytest.raises(localregistry.RegistryMissing) as err:
        localregistry.start_registry(tmp_path)
    assert "run `make bootstrap`" in str(err.value) and "docker-registry" in str(err.value)
