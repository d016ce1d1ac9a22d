"""container_image_mirror's copy path against real registries: streamed blobs with bounded memory, mounts
discovered in other repositories of the destination registry, plain HTTP straight away, google-auth not loaded."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc

from local_stack.images import make_image, random_layer

from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.client import Credentials, RegistryClient
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.mirror import (
    PIECE, PREFETCH_DEPTH, BlobLocations, Mirror,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.reference import parse_reference

from integration.registry.test_container_image_mirror import MIRROR_PLAY


def _mirror(source_registry, dest_registry, src, dst, **kwargs):
    src_ref, dst_ref = parse_reference(src, "source"), parse_reference(dst, "destination")
    source = RegistryClient(src_ref.registry, role="source",
                            credentials=Credentials(source_registry.username, source_registry.password))
    destination = RegistryClient(dst_ref.registry, role="destination",
                                 credentials=Credentials(dest_registry.username, dest_registry.password))
    return Mirror(source, destination, src_ref, dst_ref, **kwargs)


def test_a_large_blob_is_streamed_with_bounded_memory(source_registry, dest_registry):
    """A 40 MiB layer crosses with a few MiB of Python allocations at most (the old copy held 32 MiB chunks)."""
    big = random_layer(40 * 1024 * 1024)
    image = make_image(layers=[big, random_layer(4096)])
    source_registry.push_image("stream/big", "v1", image)
    mirror = _mirror(source_registry, dest_registry, f"{source_registry.host}/stream/big:v1",
                     f"{dest_registry.host}/stream/big-copy", parallelism=2)
    del image  # the test's own copy of the bytes is not the module's
    dest_registry.mark()
    tracemalloc.start()
    try:
        result = mirror.run(check_mode=False)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result["blobs_copied"] == 3 and result["bytes_copied"] > 40 * 1024 * 1024
    bound = (PREFETCH_DEPTH + 4) * PIECE * 2  # queue + the piece in flight, for each of two parallel blobs
    assert peak < bound, f"peak Python allocations {peak / 2**20:.1f} MiB, bound {bound / 2**20:.0f} MiB"
    writes = dest_registry.writes()
    patches = [w for w in writes if w[0] == "PATCH"]
    assert len(patches) == 1, "the big layer goes up in one streamed PATCH (chunk_size 0)"
    assert dest_registry.has_blob("stream/big-copy", big.digest)


def test_mount_from_a_repository_an_earlier_mirror_left(ansible, source_registry, dest_registry, tmp_path):
    """Copy into repository A, then into B of the same registry: B mounts every blob from A (known from the
    blob-location cache, confirmed with HEAD) and uploads nothing; with the cache off, mount_from does it."""
    image = make_image(layer_sizes=(3000, 7000, 11000))
    source_registry.push_image("team/mounted", "v1", image)
    cache = tmp_path / "locations.json"
    base = {"source": f"{source_registry.host}/team/mounted:v1", "source_username": source_registry.username,
            "source_password": source_registry.password, "destination_username": dest_registry.username,
            "destination_password": dest_registry.password}
    env = {"TRITON_FIL_BLOB_CACHE": str(cache)}

    first = ansible(MIRROR_PLAY, extra_vars={**base, "destination": f"{dest_registry.host}/first/app"}, env=env)
    assert first.rc == 0 and first.result("mirror")["blobs_copied"] == 4, first.stdout
    known = json.loads(cache.read_text())["registries"][dest_registry.host]
    assert all(known[b.digest][0] == "first/app" for b in image.blobs)

    plan = ansible(MIRROR_PLAY, extra_vars={**base, "destination": f"{dest_registry.host}/second/app"}, env=env,
                   check=True)
    assert plan.rc == 0 and plan.result("mirror")["blobs_planned"] == 4
    assert json.loads(cache.read_text())["registries"][dest_registry.host][image.config.digest] == ["first/app"], \
        "check mode leaves the cache alone"

    dest_registry.mark()
    second = ansible(MIRROR_PLAY, extra_vars={**base, "destination": f"{dest_registry.host}/second/app"}, env=env)
    assert second.rc == 0, second.stdout
    res = second.result("mirror")
    assert res["blobs_mounted"] == 4 and res["blobs_copied"] == 0 and res["bytes_copied"] == 0
    requests = dest_registry.requests()
    assert [r for r in requests if r[0] == "HEAD" and r[1].startswith("/v2/first/app/blobs/")], "asked A first"
    assert not [r for r in requests if r[0] in ("PATCH",) or (r[0] == "PUT" and "/blobs/uploads/" in r[1])]
    assert all("mount=" in p and "from=first%2Fapp" in p for m, p, _s in requests if m == "POST")
    assert dest_registry.manifest("second/app", "v1")[0] == image.manifest

    dest_registry.mark()
    third = ansible(MIRROR_PLAY, extra_vars={**base, "destination": f"{dest_registry.host}/third/app",
                                             "mount_from": ["nowhere/app", "first/app"]},
                    env={"TRITON_FIL_BLOB_CACHE": ""})
    assert third.rc == 0, third.stdout
    assert third.result("mirror")["blobs_mounted"] == 4 and third.result("mirror")["blobs_copied"] == 0


def test_a_stale_cache_entry_is_only_a_hint(source_registry, dest_registry, tmp_path):
    """A cache naming a repository that lacks the blob costs one HEAD; the blob is then uploaded."""
    image = make_image(layer_sizes=(5000,))
    source_registry.push_image("team/stale", "v1", image)
    cache = tmp_path / "locations.json"
    cache.write_text(json.dumps({"version": 1, "registries": {
        dest_registry.host: {b.digest: ["gone/app"] for b in image.blobs}}}))
    mirror = _mirror(source_registry, dest_registry, f"{source_registry.host}/team/stale:v1",
                     f"{dest_registry.host}/fresh/app", locations=BlobLocations(str(cache)))
    dest_registry.mark()
    result = mirror.run(check_mode=False)
    assert result["blobs_copied"] == 2 and result["blobs_mounted"] == 0
    heads = [r for r in dest_registry.requests() if r[0] == "HEAD" and "/v2/gone/app/blobs/" in r[1]]
    assert len(heads) == 2 and all(r[2] == 404 for r in heads)
    assert not [p for m, p, _s in dest_registry.requests() if m == "POST" and "mount=" in p]
    assert json.loads(cache.read_text())["registries"][dest_registry.host][image.config.digest][0] == "fresh/app"


def test_insecure_and_loopback_registries_get_plain_http_first(open_registry):
    client = RegistryClient(open_registry.host)
    client.ping()
    assert client.calls == [("GET", "/v2/", 200)] and client.base == f"http://{open_registry.host}", \
        "one request, no TLS attempt first"


def test_google_auth_is_imported_only_for_google_registries(open_registry):
    """The module and a whole copy between non-Google registries never import google.auth."""
    image = make_image(layer_sizes=(1000,))
    open_registry.push_image("lazy/app", "v1", image)
    code = f"""
import sys
import ansible_collections.rapids.triton_fil.plugins.modules.container_image_mirror
import ansible_collections.rapids.triton_fil.plugins.modules.container_image_build
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.client import google_token_source
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.mirror import run_mirror
params = dict(source="{open_registry.host}/lazy/app:v1", destination="{open_registry.host}/lazy/copy",
              platform="all", chunk_size=0, parallelism=2, auth_kind="application", insecure_registries=[],
              request_timeout=30, max_retries=2, mount_from=[], blob_cache="")
result = run_mirror(params, False, google_token_source(params, "x"))
assert result["blobs_mounted"] == 2, result
print(sorted(m for m in sys.modules if m.startswith("google")))
"""
    from testlib import REPO  # pylint: disable=import-outside-toplevel
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          env={"PYTHONPATH": str(REPO / "collections"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]", f"imported: {proc.stdout}"
