"""The pinned manifests the gpu_drivers and metrics_adapter roles apply: schemas, provenance, pins."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from k8s_checks import REPO, images, load_docs, manifest_header, schema_problems

MANIFESTS = {
    "gpu_drivers/cos": (REPO / "roles/gpu_drivers/files/nvidia-driver-installer-cos.yaml",
                        "GoogleCloudPlatform/container-engine-accelerators",
                        "nvidia-driver-installer/cos/daemonset-preloaded.yaml"),
    "gpu_drivers/ubuntu": (REPO / "roles/gpu_drivers/files/nvidia-driver-installer-ubuntu.yaml",
                           "GoogleCloudPlatform/container-engine-accelerators",
                           "nvidia-driver-installer/ubuntu/daemonset-preloaded.yaml"),
    "metrics_adapter": (REPO / "roles/metrics_adapter/files/custom-metrics-stackdriver-adapter.yaml",
                        "GoogleCloudPlatform/k8s-stackdriver",
                        "custom-metrics-stackdriver-adapter/deploy/production/adapter_new_resource_model.yaml"),
}
IDS = sorted(MANIFESTS)
# Pinned: a digest, or a tag that is not a moving one. Upstream pins the preloaded installer images by tag
# (they come with the node image, imagePullPolicy Never/IfNotPresent) and the rest by tag or digest.
MOVING_TAGS = {"latest", "master", "main", "stable"}


@pytest.mark.parametrize("name", IDS)
def test_manifest_validates_against_the_kubernetes_schemas(name):
    objects = load_docs(MANIFESTS[name][0].read_text())
    assert objects
    assert [p for obj in objects for p in schema_problems(obj)] == []


@pytest.mark.parametrize("name", IDS)
def test_manifest_records_its_upstream_source_and_version(name):
    path, repo, upstream_file = MANIFESTS[name]
    header = manifest_header(path)
    assert f"https://github.com/{repo}" in header
    assert upstream_file in header
    assert re.search(r"commit\s+[0-9a-f]{40}\b", header), "the upstream commit must be recorded"
    assert "Local changes:" in header


# Kinds without a namespace (the cluster-scoped resources of the Kubernetes API the manifests use).
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "APIService", "CustomResourceDefinition",
                  "PriorityClass", "Node", "PersistentVolume", "StorageClass"}


@pytest.mark.parametrize("name", IDS)
def test_cluster_scoped_objects_have_no_namespace(name):
    objects = load_docs(MANIFESTS[name][0].read_text())
    assert [f"{o['kind']}/{o['metadata']['name']}" for o in objects
            if o["kind"] in CLUSTER_SCOPED and "namespace" in o["metadata"]] == []


@pytest.mark.parametrize("name", IDS)
def test_manifest_images_are_pinned(name):
    found = images(load_docs(MANIFESTS[name][0].read_text()))
    assert found
    for image in found:
        if "@sha256:" in image:
            assert re.search(r"@sha256:[0-9a-f]{64}$", image), image
            continue
        name_part, tag = image.rsplit(":", 1) if ":" in image else ("", "")
        assert name_part and "/" not in tag and tag not in MOVING_TAGS, f"{image} is not pinned"


def test_driver_installers_skip_nodes_with_gke_managed_drivers():
    for key in ("gpu_drivers/cos", "gpu_drivers/ubuntu"):
        daemonset = load_docs(MANIFESTS[key][0].read_text())[0]
        terms = daemonset["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        expressions = {(e["key"], e["operator"]) for t in terms for e in t["matchExpressions"]}
        assert ("cloud.google.com/gke-accelerator", "Exists") in expressions
        assert ("cloud.google.com/gke-gpu-driver-version", "DoesNotExist") in expressions
        tolerations = daemonset["spec"]["template"]["spec"]["tolerations"]
        assert {"operator": "Exists"} in tolerations


def test_adapter_serves_what_the_role_waits_for():
    objects = load_docs(MANIFESTS["metrics_adapter"][0].read_text())
    served = {o["metadata"]["name"] for o in objects if o["kind"] == "APIService"}
    waited = yaml.safe_load((REPO / "roles/metrics_adapter/defaults/main.yml").read_text())["metrics_adapter_apiservices"]
    # The role waits for every APIService the manifest registers, v1beta2.custom.metrics.k8s.io included
    # (its versionPriority makes it the preferred version of its group).
    assert set(waited) == served
    assert "v1beta1.external.metrics.k8s.io" in waited
    # The HPA controller may read external metrics; the adapter's own account is the one Workload Identity binds.
    bindings = [o for o in objects if o["kind"] == "ClusterRoleBinding" and o["metadata"]["name"] == "external-metrics-reader"]
    assert bindings[0]["subjects"] == [{"kind": "ServiceAccount", "name": "horizontal-pod-autoscaler",
                                        "namespace": "kube-system"}]
    accounts = [o for o in objects if o["kind"] == "ServiceAccount"]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == accounts[0]["metadata"]["name"]
    assert "annotations" not in accounts[0]["metadata"], "the role adds the Workload Identity annotation"


# ---------------------------------------------------------------------------------------------- provenance
#
# upstream_pins.json records, for each manifest, the upstream commit and blob it was copied from and the
# sha256 of upstream's documents in canonical form (below). Offline, the tests undo our documented local
# changes on our file and must arrive at exactly that digest: the objects we apply are upstream's, and the
# header names the same commit. With TRITON_FIL_UPSTREAM_GIT (a directory holding git clones or mirrors of
# the upstream repositories) the same records are checked against upstream itself.

PINS_FILE = Path(__file__).resolve().with_name("upstream_pins.json")
PINS = json.loads(PINS_FILE.read_text())["manifests"]
UPSTREAM_GIT = os.environ.get("TRITON_FIL_UPSTREAM_GIT", "")


def upstream_documents(text):
    """Upstream's documents as PyYAML's safe loader reads them (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def documents_sha256(documents):
    """sha256 of the documents as canonical JSON: sorted keys, no whitespace, UTF-8."""
    return hashlib.sha256(json.dumps(documents, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode()).hexdigest()


def _into_v1_list(documents):
    return [{"apiVersion": "v1", "kind": "List", "items": documents}]


def _out_of_v1_list(documents):
    assert len(documents) == 1 and documents[0].get("apiVersion") == "v1" and documents[0].get("kind") == "List", \
        "the local change v1-list means one v1 List document"
    assert set(documents[0]) == {"apiVersion", "kind", "items"}, "the v1 List must carry nothing but its items"
    return documents[0]["items"]


# Our documented local changes that alter the parsed documents, as (apply, undo). The others (the header in
# place of upstream's comments, the document start, indented sequences) leave the parsed documents unchanged.
LOCAL_CHANGES = {"v1-list": (_into_v1_list, _out_of_v1_list)}


def apply_local_changes(documents, changes):
    for change in changes:
        documents = LOCAL_CHANGES[change][0](documents)
    return documents


def undo_local_changes(documents, changes):
    for change in reversed(changes):
        documents = LOCAL_CHANGES[change][1](documents)
    return documents


def header_fields(path):
    """repo, file, commit, blob and images as the manifest's header names them."""
    header = manifest_header(path)
    fields = {"images": re.findall(r"^#\s+image\s+(\S+)$", header, re.M)}
    for key, pattern in (("repo", r"^# Upstream: https://github\.com/(\S+)$"), ("file", r"^#\s+file\s+(\S+)$"),
                         ("commit", r"^#\s+commit\s+([0-9a-f]{40})$"), ("blob", r"^#\s+blob\s+([0-9a-f]{40})\b")):
        found = re.findall(pattern, header, re.M)
        assert len(found) == 1, f"{path.name}: the header must name exactly one {key} ({pattern})"
        fields[key] = found[0]
    return fields


def test_every_manifest_has_an_upstream_pin():
    assert sorted(PINS) == IDS
    for name, pin in PINS.items():
        path, repo, upstream_file = MANIFESTS[name]
        assert (REPO / pin["path"]) == path and pin["repo"] == repo and pin["file"] == upstream_file
        assert re.fullmatch(r"[0-9a-f]{40}", pin["commit"]) and re.fullmatch(r"[0-9a-f]{40}", pin["blob"])
        assert re.fullmatch(r"[0-9a-f]{64}", pin["documents_sha256"])
        assert set(pin["local_changes"]) <= set(LOCAL_CHANGES)


@pytest.mark.parametrize("name", IDS)
def test_header_names_the_pinned_upstream_commit_blob_and_images(name):
    path, pin = MANIFESTS[name][0], PINS[name]
    fields = header_fields(path)
    assert fields["repo"] == pin["repo"]
    assert fields["file"] == pin["file"]
    assert fields["commit"] == pin["commit"], f"{path.name}: header commit {fields['commit']}, pinned {pin['commit']}"
    assert fields["blob"] == pin["blob"]
    assert fields["images"] == pin["images"] == images(load_docs(path.read_text())), \
        "the header lists the manifest's images, which are upstream's"


@pytest.mark.parametrize("name", IDS)
def test_manifest_is_upstream_at_the_pinned_commit_with_only_the_documented_local_changes(name):
    path, pin = MANIFESTS[name][0], PINS[name]
    ours = upstream_documents(path.read_text())
    assert documents_sha256(undo_local_changes(ours, pin["local_changes"])) == pin["documents_sha256"], (
        f"{path.name} differs from upstream {pin['repo']} {pin['file']} at {pin['commit']} beyond the local "
        f"changes {pin['local_changes']}: re-copy it (see how_to_update in {PINS_FILE.name})")


def test_local_changes_are_reversible_and_visible():
    upstream = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}]
    local = apply_local_changes(copy.deepcopy(upstream), ["v1-list"])
    assert load_docs(yaml.safe_dump(local[0])) == upstream
    assert undo_local_changes(local, ["v1-list"]) == upstream
    assert documents_sha256(upstream) != documents_sha256(local)
    # A changed value changes the digest: the comparison sees more than the set of kinds and names.
    edited = copy.deepcopy(upstream)
    edited[0]["metadata"]["labels"] = {"a": "b"}
    assert documents_sha256(edited) != documents_sha256(upstream)
    with pytest.raises(AssertionError):
        undo_local_changes(upstream, ["v1-list"])


# Images whose registry serves only a Docker schema 1 manifest. containerd 2.0 removed schema 1 support, and
# GKE nodes run containerd 2.0 from GKE 1.33 on (cloud.google.com/kubernetes-engine/docs/deprecations/
# migrate-containerd-2), so a Pod with one of them never starts there. Evidence per image:
# - pause:2.0: `crane manifest registry.k8s.io/pause:2.0` has schemaVersion 1
#   (GoogleCloudPlatform/cloud-learning-platform PR #249); upstream replaced gcr.io/google-containers/pause:2.0
#   with gke.gcr.io/pause:3.8 by digest for this reason (container-engine-accelerators 22f1e653).
# - pause:3.0: `crane manifest gcr.io/google-containers/pause:3.0` has schemaVersion 1
#   (GoogleCloudPlatform/runtimes-common PR #835); pause-amd64:3.0 likewise (kubernetes/kubernetes#56253).
# The same repositories are reachable under several names (gcr.io/google_containers, k8s.gcr.io).
SCHEMA1_ONLY = {("pause", "2.0"), ("pause", "3.0"), ("pause-amd64", "3.0")}
LEGACY_PAUSE_REGISTRIES = ("gcr.io/google-containers/", "gcr.io/google_containers/", "k8s.gcr.io/",
                           "registry.k8s.io/")


def schema1_only(image):
    """True for a reference to one of the schema-1-only images above, under any of its registry names."""
    reference = image.split("@", 1)[0]
    for prefix in LEGACY_PAUSE_REGISTRIES:
        if reference.startswith(prefix):
            repository, tag = (reference[len(prefix):].split(":", 1) + [""])[:2]
            return (repository, tag) in SCHEMA1_ONLY
    return False


def test_schema1_rule_knows_the_image_upstream_dropped():
    assert schema1_only("gcr.io/google-containers/pause:2.0")
    assert schema1_only("k8s.gcr.io/pause:2.0") and schema1_only("gcr.io/google_containers/pause-amd64:3.0")
    assert not schema1_only("gke.gcr.io/pause:3.8@sha256:" + "0" * 64)
    assert not schema1_only("registry.k8s.io/pause:3.9")


def _yaml_files():
    for top in ("roles", "playbooks", "inventories"):
        for path in sorted((REPO / top).rglob("*")):
            if path.is_file() and (path.suffix in (".yml", ".yaml") or path.name.endswith(".yaml.tpl")):
                yield path


def test_no_manifest_uses_a_docker_schema1_only_image():
    for name in IDS:
        found = [i for i in images(load_docs(MANIFESTS[name][0].read_text())) if schema1_only(i)]
        assert not found, f"{name}: {found} cannot be pulled by containerd 2 (GKE 1.33+)"
    # Anything else the collection deploys: image references outside comments in its YAML.
    offenders = []
    for path in _yaml_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
            offenders += [f"{path.relative_to(REPO)}:{number}: {ref}"
                          for ref in re.findall(r"[a-z0-9.\-]+\.[a-z]+/[\w./-]+:[\w.-]+", code) if schema1_only(ref)]
    assert offenders == []


@pytest.mark.parametrize("name", IDS)
def test_images_are_pinned_by_digest_where_upstream_pins_them(name):
    ours, upstream = images(load_docs(MANIFESTS[name][0].read_text())), PINS[name]["images"]
    assert len(ours) == len(upstream), f"{name}: containers {ours}, upstream's {upstream}"
    for mine, theirs in zip(ours, upstream):
        if "@sha256:" in theirs:
            assert mine == theirs, f"{name}: upstream pins {theirs} by digest, the manifest has {mine}"


# ---------------------------------------------------------------------------------------------- against upstream

def upstream_git_dir(repo):
    """The git directory of a clone or mirror of repo ("owner/name") under TRITON_FIL_UPSTREAM_GIT, or None."""
    owner, name = repo.split("/")
    base = Path(UPSTREAM_GIT)
    for candidate in (base / f"{owner}+{name}" / "repo", base / f"{owner}+{name}", base / owner / name, base / name):
        if candidate.is_dir():
            return candidate
    return None


def git(directory, *args):
    proc = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, check=False, timeout=60)
    assert proc.returncode == 0, f"git {' '.join(args)} in {directory}: {proc.stderr.decode(errors='replace')}"
    return proc.stdout


@pytest.mark.skipif(not UPSTREAM_GIT, reason="set TRITON_FIL_UPSTREAM_GIT to a directory of upstream clones")
@pytest.mark.parametrize("name", IDS)
def test_pin_matches_upstream_git(name):
    pin = PINS[name]
    directory = upstream_git_dir(pin["repo"])
    if directory is None:
        pytest.skip(f"no clone of {pin['repo']} under {UPSTREAM_GIT}")
    exists = subprocess.run(["git", "-C", str(directory), "cat-file", "-e", f"{pin['commit']}^{{commit}}"],
                            capture_output=True, check=False, timeout=60).returncode == 0
    assert exists, f"{pin['commit']} is not a commit of {pin['repo']} (clone {directory})"
    touching = git(directory, "log", "--format=%H", pin["branch"], "--", pin["file"]).decode().split()
    assert pin["commit"] in touching, f"{pin['commit']} is not a commit of {pin['branch']} that touches {pin['file']}"
    assert git(directory, "rev-parse", f"{pin['commit']}:{pin['file']}").decode().strip() == pin["blob"]
    text = git(directory, "show", f"{pin['commit']}:{pin['file']}").decode()
    documents = upstream_documents(text)
    assert documents_sha256(documents) == pin["documents_sha256"]
    assert images(load_docs(text)) == pin["images"]
    assert apply_local_changes(documents, pin["local_changes"]) == upstream_documents(
        MANIFESTS[name][0].read_text())
    assert touching[0] == pin["commit"], (
        f"{pin['repo']} has a newer {pin['file']}: {touching[0]} (pinned {pin['commit']}); re-pin it")
