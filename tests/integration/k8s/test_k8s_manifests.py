"""The pinned manifests the gpu_drivers and metrics_adapter roles apply: schemas, provenance, pins."""

from __future__ import annotations

import re

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
    assert set(waited) <= served
    assert "v1beta1.external.metrics.k8s.io" in waited
    # The HPA controller may read external metrics; the adapter's own account is the one Workload Identity binds.
    bindings = [o for o in objects if o["kind"] == "ClusterRoleBinding" and o["metadata"]["name"] == "external-metrics-reader"]
    assert bindings[0]["subjects"] == [{"kind": "ServiceAccount", "name": "horizontal-pod-autoscaler",
                                        "namespace": "kube-system"}]
    accounts = [o for o in objects if o["kind"] == "ServiceAccount"]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == accounts[0]["metadata"]["name"]
    assert "annotations" not in accounts[0]["metadata"], "the role adds the Workload Identity annotation"
