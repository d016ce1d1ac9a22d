# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Preflight rules: the problems a deployment's settings would hit later, found before anything is written.

Each rule names the variables it reads (an explicit list: renaming a variable without updating the
rule is caught by a test, never silently unchecked), the roles that must be in the run for it to apply,
and a check that yields (variable, message) pairs; every message says what is wrong and how to fix it.
Argument-spec checks (types, choices, required) come first and are not repeated here: a rule only
sees variables whose values passed their role's spec, and whose values are known before the run
(not derived from a fact a role of the run sets later).

docs/roles.md lists, for every variable, the rules that check it (scripts/role_docs.py reads RULES).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.client import check_bucket_name
from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight import gpus
from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight.targets import (
    DEFAULT_TARGET, TARGETS, roles_for,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.registry.reference import (
    InvalidReference, is_google_registry, parse_reference,
)

PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
REGION_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
ZONE_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
# GKE cluster names (container.v1 discovery document, Cluster.name: "up to 40 characters ... Lowercase
# letters, numbers, and hyphens only. Must start with a letter. Must end with a number or a letter";
# hashicorp/terraform-provider-google validates the same in resource_container_cluster.go). Node pool
# names are held to the same: GKE limits them to 40 characters too (thorchain cluster-launcher MR 67:
# "google_container_node_pool.name is limited to 40 symbols by GCP") and labels nodes with them.
GKE_NAME_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?$")
# Helm release names: helm/helm pkg/chartutil/validate_name.go (ValidateReleaseName: at most 53
# characters, [a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*). The triton chart names
# its Service after the release, and Service names are RFC 1035 labels (kubernetes
# pkg/apis/core/validation: ValidateServiceName = NameIsDNS1035Label): a letter first, no dots.
HELM_RELEASE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Namespaces are RFC 1123 labels (ValidateNamespaceName), service accounts RFC 1123 subdomains.
DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# IAM service account IDs (iam.v1 discovery document, CreateServiceAccountRequest.accountId: 6-30
# characters matching [a-z]([-a-z0-9]*[a-z0-9])).
ACCOUNT_ID_RE = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
# The distribution reference grammar (as plugins/module_utils/registry/reference.py parses it).
REGISTRY_HOST_RE = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
                              r"(?::[0-9]+)?$")
REPOSITORY_COMPONENT_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
PROMETHEUS_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
# GKE node boot disks (container.v1 discovery document, NodeConfig.diskSizeGb: "The smallest allowed
# disk size is 15 GB for node pools running GKE versions 1.36.3-gke.1480000 or later. Or, for earlier
# versions, the smallest allowed disk size is 12 GB"): the release channel picks the version, so 15.
MIN_BOOT_DISK_GB = 15
# Master authorized networks: "up to 50 external networks" (container.v1, MasterAuthorizedNetworksConfig).
MAX_AUTHORIZED_NETWORKS = 50
# Regional clusters put each node pool in three zones of the region unless node locations are given
# (GKE docs, "Regional clusters": "the default configuration, which replicates each node pool across
# three zones of the control plane's region").
REGIONAL_DEFAULT_ZONES = 3
# tritonserver flags the triton chart sets itself (roles/triton_helm/files/triton/templates/
# deployment.yaml.tpl; a test keeps this list equal to the template's args), each with the variable
# that sets it.
CHART_FLAGS = {
    "--model-repository": "gcs_models_bucket / gcs_models_prefix (triton_helm_model_repository_uri)",
    "--http-port": "the chart's server.httpPort",
    "--grpc-port": "the chart's server.grpcPort",
    "--metrics-port": "the chart's server.metricsPort",
    "--allow-metrics": "the chart (metrics feed the autoscaler)",
    "--allow-gpu-metrics": "the chart",
    "--log-verbose": "triton_helm_log_verbose",
    "--model-control-mode": "triton_helm_model_control_mode",
    "--load-model": "triton_helm_load_models",
}


class Rule:
    """One check over an explicit list of variables; applies when all its roles are in the run."""

    def __init__(self, name, summary, variables, check, roles=(), targets=TARGETS, source=""):
        self.name = name
        self.summary = summary
        self.variables = tuple(variables)
        self.check = check
        self.roles = tuple(roles)
        self.targets = tuple(targets)
        self.source = source

    def applies(self, roles, target):
        return target in self.targets and all(role in roles for role in self.roles)

    def __repr__(self):
        return f"Rule({self.name!r})"


RULES = []


def rule(name, summary, variables, roles=(), targets=TARGETS, source=""):
    def register(check):
        RULES.append(Rule(name, summary, variables, check, roles, targets, source))
        return check
    return register


class Settings:
    """The values a rule may read: only variables present, valid by their spec and known before the run."""

    def __init__(self, values, roles, target, sources=None):
        self.values = dict(values)
        self.roles = tuple(roles)
        self.target = target
        self.sources = dict(sources or {})

    def has(self, name):
        return self.values.get(name) is not None

    def get(self, name, default=None):
        value = self.values.get(name)
        return default if value is None else value

    def given(self, name):
        """Set in the inventory (or extra vars), not taken from a role default."""
        return self.has(name) and self.sources.get(name, "inventory") == "inventory"


def _int(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _region_of(location):
    return location[:-2] if ZONE_RE.match(location) else location


def node_zones(settings):
    """(zones the GPU pool's nodes run in, how many) — zones may be unknown (None) for a regional default."""
    location = settings.get("gke_cluster_location", "")
    zones = [z for z in settings.get("gke_cluster_node_locations") or [] if isinstance(z, str)]
    if zones:
        return zones, len(zones)
    if ZONE_RE.match(location):
        return [location], 1
    return None, REGIONAL_DEFAULT_ZONES


# --------------------------------------------------------------------------------- Google names
@rule("gcp-project-id", "Project ID format (not the display name or number)", ["gcp_project"],
      targets=("gke", "kubernetes"),
      source="cloudresourcemanager.v1 discovery document, Project.projectId")
def rule_project(s):
    project = s.get("gcp_project")
    if project and not PROJECT_RE.match(str(project)):
        yield ("gcp_project", f"{project!r} is not a project ID — use the 6-30 character ID (lowercase letters, "
                              "digits, hyphens, a letter first), not the display name or number")


@rule("gcp-location", "Region and zone names, and a zone inside its region",
      ["gcp_region", "gcp_zone", "gke_cluster_location"])
def rule_location(s):
    region = s.get("gcp_region")
    if region and not REGION_RE.match(str(region)):
        yield ("gcp_region", f"{region!r} is not a region — use a name like 'us-central1'")
        region = None
    zone = s.get("gcp_zone")
    if zone:
        problem = _zone_problem(zone, region, f"is not in gcp_region {region!r} — pick a zone of that region")
        if problem:
            yield ("gcp_zone", problem)
    location = str(s.get("gke_cluster_location", ""))
    if region and "gke_cluster" in s.roles and (ZONE_RE.match(location) or REGION_RE.match(location)) \
            and _region_of(location) != region:
        yield ("gke_cluster_location", f"{location!r} is not in gcp_region {region!r} — put the cluster in "
                                       f"{region} (or a zone of it), or correct gcp_region")


@rule("gke-location", "Cluster location is a zone or a region; node zones lie in its region",
      ["gke_cluster_location", "gke_cluster_node_locations"], roles=("gke_cluster",),
      source="terraform-provider-google resource_container_cluster.go (node_locations: zones of the cluster's region)")
def rule_cluster_location(s):
    location = s.get("gke_cluster_location")
    if location is not None and not (ZONE_RE.match(str(location)) or REGION_RE.match(str(location))):
        yield ("gke_cluster_location", f"{location!r} is neither a zone ('us-central1-a', a zonal cluster) nor a "
                                       "region ('us-central1', a regional cluster)")
        return
    region = _region_of(str(location)) if location else None
    for zone in s.get("gke_cluster_node_locations", []):
        problem = _zone_problem(zone, region, f"is outside the cluster's region {region!r} — list zones of {region}")
        if problem:
            yield ("gke_cluster_node_locations", problem)


def _zone_problem(zone, region, outside):
    """What is wrong with a zone name: not a zone, or (``outside``) not in region; None when nothing is."""
    if not ZONE_RE.match(str(zone)):
        return f"{zone!r} is not a zone — use a name like 'us-central1-a'"
    if region and not str(zone).startswith(f"{region}-"):
        return f"{zone!r} {outside}"
    return None


@rule("gke-name", "GKE cluster and node pool names: at most 40 lowercase letters, digits, hyphens; a letter first",
      ["gke_cluster_name", "gke_cluster_gpu_pool_name"], roles=("gke_cluster",),
      source="container.v1 discovery document, Cluster.name; terraform-provider-google resource_container_cluster.go")
def rule_gke_names(s):
    for name in ("gke_cluster_name", "gke_cluster_gpu_pool_name"):
        value = s.get(name)
        if value is not None and not GKE_NAME_RE.match(str(value)):
            yield (name, f"{value!r} is not a GKE name — at most 40 characters of lowercase letters, digits and "
                         "hyphens, starting with a letter and ending with a letter or digit (e.g. 'triton-fil')")


# --------------------------------------------------------------------------------- Kubernetes names
@rule("kubernetes-name", "Helm release (at most 53 characters, also the Service name), namespaces and service accounts",
      ["triton_helm_release", "triton_helm_namespace", "workload_identity_triton_namespace",
       "workload_identity_metrics_namespace", "workload_identity_triton_kubernetes_account",
       "workload_identity_metrics_kubernetes_account"],
      source="helm pkg/chartutil/validate_name.go; kubernetes pkg/apis/core/validation (Service: RFC 1035 label, "
             "Namespace: RFC 1123 label, ServiceAccount: RFC 1123 subdomain)")
def rule_kubernetes_names(s):
    release = s.get("triton_helm_release") if "triton_helm" in s.roles else None
    if release is not None:
        release = str(release)
        if len(release) > 53 or not HELM_RELEASE_RE.match(release) or not DNS1035_LABEL_RE.match(release):
            yield ("triton_helm_release", f"{release!r} cannot be a Helm release of the triton chart — at most 53 "
                                          "lowercase letters, digits and hyphens, a letter first and a letter or "
                                          "digit last (it also names the Service, an RFC 1035 label), e.g. "
                                          "'triton-fil'")
    names = [("triton_helm_namespace", "triton_helm")]
    names += [(n, "workload_identity") for n in ("workload_identity_triton_namespace",
                                                 "workload_identity_metrics_namespace")]
    for name, role in names:
        value = s.get(name) if role in s.roles else None
        if value is not None and (len(str(value)) > 63 or not DNS1123_LABEL_RE.match(str(value))):
            yield (name, f"{value!r} is not a Kubernetes namespace name — at most 63 lowercase letters, digits and "
                         "hyphens, starting and ending with a letter or digit (e.g. 'triton')")
    for name in ("workload_identity_triton_kubernetes_account", "workload_identity_metrics_kubernetes_account"):
        value = s.get(name) if "workload_identity" in s.roles else None
        if value is not None and (len(str(value)) > 253 or not DNS1123_SUBDOMAIN_RE.match(str(value))):
            yield (name, f"{value!r} is not a Kubernetes service account name — lowercase letters, digits, '-' "
                         "and '.', starting and ending with a letter or digit")


# --------------------------------------------------------------------------------- storage
@rule("gcs-bucket", "Bucket name (bare, GCS naming rules) and object prefix", ["gcs_models_bucket", "gcs_models_prefix"],
      roles=("gcs_models",), source="GCS bucket naming rules (plugins/module_utils/gcs/client.py check_bucket_name)")
def rule_bucket(s):
    if s.has("gcs_models_bucket"):
        problem = check_bucket_name(s.get("gcs_models_bucket"), "gcs_models_bucket")
        if problem:
            yield ("gcs_models_bucket", problem.split(" ", 1)[1] if problem.startswith("gcs_models_bucket ") else problem)
    prefix = s.get("gcs_models_prefix")
    if prefix and (prefix.startswith("gs://") or "//" in prefix or prefix.startswith("/")):
        yield ("gcs_models_prefix", f"{prefix!r} must be an object prefix like 'triton/model_repository' — no gs://, "
                                    "no leading '/', no empty path segments")


# --------------------------------------------------------------------------------- sizes
@rule("autoscaling-range", "GPU pool 0 <= min <= max (max >= 1); Triton replicas 1 <= min <= max",
      ["gke_cluster_gpu_min_nodes", "gke_cluster_gpu_max_nodes", "gke_cluster_gpu_initial_node_count",
       "triton_helm_min_replicas", "triton_helm_max_replicas"])
def rule_autoscaling(s):
    pairs = []
    if "gke_cluster" in s.roles:
        pairs.append(("gke_cluster_gpu_min_nodes", "gke_cluster_gpu_max_nodes", 0))
        initial = _int(s.get("gke_cluster_gpu_initial_node_count"))
        if initial is not None and initial < 0:
            yield ("gke_cluster_gpu_initial_node_count", f"{initial} must be >= 0")
    if "triton_helm" in s.roles:
        pairs.append(("triton_helm_min_replicas", "triton_helm_max_replicas", 1))
    for low_name, high_name, floor in pairs:
        low, high = _int(s.get(low_name)), _int(s.get(high_name))
        if low is not None and low < floor:
            yield (low_name, f"{low} must be >= {floor}")
            low = None
        if high is not None and high < 1:
            yield (high_name, f"is {high} — nothing could ever run; set it to at least 1")
        elif low is not None and high is not None and low > high:
            yield (low_name, f"({low}) is greater than {high_name} ({high}) — set {low_name} <= {high_name}")


@rule("gpu-machine", "GPU type exists, attaches to the machine type (T4/P4/V100/P100 on N1, L4 on G2, A100 on A2, "
                     "H100/H200 on A3, B200 on A4) and the GPU count is one that machine allows",
      ["gke_cluster_gpu_accelerator_type", "gke_cluster_gpu_machine_type", "gke_cluster_gpu_accelerator_count"],
      roles=("gke_cluster",),
      source="https://cloud.google.com/compute/docs/gpus; GoogleCloudPlatform/cluster-toolkit "
             "modules/internal/gpu-definition/main.tf; skypilot gcp_catalog.py (plugins/module_utils/preflight/gpus.py)")
def rule_gpu_machine(s):
    gpu, machine = s.get("gke_cluster_gpu_accelerator_type"), s.get("gke_cluster_gpu_machine_type")
    count = _int(s.get("gke_cluster_gpu_accelerator_count"))
    if count is not None and count < 1:
        yield ("gke_cluster_gpu_accelerator_count", f"{count} must be at least 1 (a GPU pool without GPUs)")
        return
    if gpu is None or machine is None or count is None:
        return
    yield from gpus.check_gpu_machine(str(gpu), count, str(machine))


@rule("boot-disk", f"GPU node boot disk of at least {MIN_BOOT_DISK_GB} GB", ["gke_cluster_gpu_disk_size_gb"],
      roles=("gke_cluster",), source="container.v1 discovery document, NodeConfig.diskSizeGb")
def rule_boot_disk(s):
    size = _int(s.get("gke_cluster_gpu_disk_size_gb"))
    if size is not None and size < MIN_BOOT_DISK_GB:
        yield ("gke_cluster_gpu_disk_size_gb", f"{size} GB is below GKE's smallest boot disk ({MIN_BOOT_DISK_GB} GB) — "
                                               "use at least 15; the NGC Triton image alone needs tens of GB, 100 is "
                                               "the default")


@rule("gpu-capacity", "GPUs per pod <= GPUs per node; max replicas x GPUs per pod <= max nodes x zones x GPUs per node; "
                      "gpu_drivers_min_nodes reachable",
      ["triton_helm_gpu_count", "triton_helm_min_replicas", "triton_helm_max_replicas",
       "gke_cluster_gpu_accelerator_count", "gke_cluster_gpu_max_nodes", "gke_cluster_node_locations",
       "gke_cluster_location", "gpu_drivers_min_nodes"],
      roles=("gke_cluster",))
def rule_gpu_capacity(s):
    per_node = _int(s.get("gke_cluster_gpu_accelerator_count"))
    max_nodes = _int(s.get("gke_cluster_gpu_max_nodes"))
    _zones, zone_count = node_zones(s)
    capacity = per_node * max_nodes * zone_count if per_node and max_nodes else None
    per_pod = _int(s.get("triton_helm_gpu_count")) if "triton_helm" in s.roles else None
    if per_pod is not None and per_pod < 1:
        yield ("triton_helm_gpu_count", f"{per_pod} must be at least 1 (Triton's FIL backend runs on a GPU here)")
    elif per_pod is not None and per_node and per_pod > per_node:
        yield ("triton_helm_gpu_count", f"{per_pod} GPUs per Triton pod, but a node of the GPU pool has "
                                        f"{per_node} (gke_cluster_gpu_accelerator_count) — a pod could never be "
                                        f"scheduled; set triton_helm_gpu_count <= {per_node}")
    elif per_pod and capacity is not None:
        # Both ends: the HPA may scale to max replicas, and min replicas must fit even more so.
        for name in ("triton_helm_max_replicas", "triton_helm_min_replicas"):
            replicas = _int(s.get(name))
            if replicas is not None and replicas * per_pod > capacity:
                yield (name, f"{replicas} replicas x {per_pod} GPU(s) need {replicas * per_pod} GPUs, but the GPU pool "
                             f"holds at most {capacity} ({max_nodes} nodes x {zone_count} zone(s) x {per_node} GPU(s)) — "
                             f"lower {name} to {capacity // per_pod} or raise gke_cluster_gpu_max_nodes")
                break
    wanted = _int(s.get("gpu_drivers_min_nodes")) if "gpu_drivers" in s.roles else None
    if wanted is not None and max_nodes and wanted > max_nodes * zone_count:
        yield ("gpu_drivers_min_nodes", f"waits for {wanted} GPU nodes, but the pool has at most "
                                        f"{max_nodes * zone_count} — set it <= {max_nodes * zone_count}")


@rule("cidr", "Master authorized networks and load balancer source ranges in CIDR notation (address/mask)",
      ["gke_cluster_master_authorized_networks", "triton_helm_service_source_ranges"],
      source="container.v1 discovery document, CidrBlock (\"must be specified in CIDR notation\"); "
             "terraform-provider-google resource_container_cluster.go (cidr_block: validation.IsCIDRNetwork(0, 32))")
def rule_cidr(s):
    networks = s.get("gke_cluster_master_authorized_networks") if "gke_cluster" in s.roles else None
    if networks is not None:
        if len(networks) > MAX_AUTHORIZED_NETWORKS:
            yield ("gke_cluster_master_authorized_networks",
                   f"has {len(networks)} entries; GKE allows up to {MAX_AUTHORIZED_NETWORKS}")
        for index, network in enumerate(networks):
            block = network.get("cidr_block") if isinstance(network, dict) else None
            problem = _cidr_problem(block, ipv4_network=True)
            if problem:
                yield ("gke_cluster_master_authorized_networks", f"[{index}].cidr_block {block!r} {problem}")
    for index, block in enumerate(s.get("triton_helm_service_source_ranges", []) if "triton_helm" in s.roles else []):
        problem = _cidr_problem(block, ipv4_network=False)
        if problem:
            yield ("triton_helm_service_source_ranges", f"[{index}] {block!r} {problem}")


def _cidr_problem(block, ipv4_network):
    if not isinstance(block, str) or "/" not in block:
        return "is not in CIDR notation — write ADDRESS/MASK, e.g. '203.0.113.0/24' (a single address is '/32')"
    try:
        network = ipaddress.ip_network(block, strict=False)
    except ValueError as exc:
        return f"is not a valid CIDR block ({exc}) — e.g. '203.0.113.0/24'"
    if ipv4_network:
        if network.version != 4:
            return "must be an IPv4 block (GKE authorized networks are IPv4)"
        if str(network) != block:
            return f"has host bits set — write the network address, {str(network)!r}"
    return None


# --------------------------------------------------------------------------------- files
@rule("files-exist", "Files and folders the run reads exist: model repository, reference file, key files, "
                     "build context and Dockerfile, kubeconfig and its context",
      ["gcs_models_src", "verify_reference_file", "gcp_service_account_file", "triton_helm_gcs_key_file",
       "gcr_image_build_context", "gcr_image_dockerfile", "triton_fil_kubeconfig", "triton_fil_kube_context"])
def rule_files(s):
    if "gcs_models" in s.roles and s.has("gcs_models_src") and not os.path.isdir(os.path.expanduser(s.get("gcs_models_src"))):
        yield ("gcs_models_src", f"{s.get('gcs_models_src')!r} is not a folder — point it at the model repository "
                                 "(<model>/config.pbtxt + <model>/<version>/<model file>)")
    if "verify" in s.roles and s.has("verify_reference_file"):
        path = os.path.expanduser(s.get("verify_reference_file"))
        if not os.path.isfile(path):
            yield ("verify_reference_file", f"{path!r} does not exist — give the JSON file with the reference inputs "
                                            "and outputs (model_repository/fil_reference.json for the sample model)")
        else:
            try:
                with open(path, encoding="utf-8") as handle:
                    json.load(handle)
            except (OSError, ValueError) as exc:
                yield ("verify_reference_file", f"{path!r} is not readable JSON ({exc}) — give the reference JSON file")
    if s.get("gcp_auth_kind") == "serviceaccount" and s.has("gcp_service_account_file") \
            and not os.path.isfile(os.path.expanduser(s.get("gcp_service_account_file"))):
        yield ("gcp_service_account_file", f"{s.get('gcp_service_account_file')!r} does not exist — give the path of "
                                           "a service-account JSON key, or use gcp_auth_kind=application")
    key_file = s.get("triton_helm_gcs_key_file") if "triton_helm" in s.roles else None
    if key_file and not os.path.isfile(os.path.expanduser(key_file)):
        yield ("triton_helm_gcs_key_file", f"{key_file!r} does not exist — give the key file, or leave it empty and "
                                           "use Workload Identity (triton_helm_gcp_service_account)")
    if "gcr_image" in s.roles and s.get("gcr_image_mode") == "build":
        context = s.get("gcr_image_build_context", "")
        if not context:
            yield ("gcr_image_build_context", "is empty but gcr_image_mode is build — give a checkout of "
                                              "triton-inference-server/fil_backend, or use gcr_image_mode: mirror")
        elif not os.path.isdir(os.path.expanduser(context)):
            yield ("gcr_image_build_context", f"{context!r} is not a folder — give the build context (a checkout of "
                                              "triton-inference-server/fil_backend)")
        else:
            dockerfile = os.path.join(os.path.expanduser(context), s.get("gcr_image_dockerfile", "Dockerfile"))
            if not os.path.isfile(dockerfile):
                yield ("gcr_image_dockerfile", f"{dockerfile!r} does not exist — set gcr_image_dockerfile relative to "
                                               "gcr_image_build_context")
    if s.target == "kubernetes":
        yield from _kubeconfig_problems(s)


def _kubeconfig_problems(s):
    path = s.get("triton_fil_kubeconfig")
    if not path:
        yield ("triton_fil_kubeconfig", "is required with triton_fil_target=kubernetes — give the kubeconfig of the "
                                        "cluster (and triton_fil_kube_context)")
        return
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        yield ("triton_fil_kubeconfig", f"{path!r} does not exist — give the kubeconfig file of the cluster")
        return
    context = s.get("triton_fil_kube_context")
    try:
        import yaml  # pylint: disable=import-outside-toplevel
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle) or {}
    except Exception as exc:  # pylint: disable=broad-except  # any unreadable file is one problem
        yield ("triton_fil_kubeconfig", f"{path!r} is not a readable kubeconfig ({exc})")
        return
    names = [c.get("name") for c in config.get("contexts") or [] if isinstance(c, dict)]
    if context and context not in names:
        yield ("triton_fil_kube_context", f"{context!r} is not a context of {path} — use one of: "
                                          f"{', '.join(map(str, names)) or 'none defined'}")
    elif not context and not config.get("current-context"):
        yield ("triton_fil_kube_context", f"is empty and {path} has no current-context — name the context to use")


# --------------------------------------------------------------------------------- combinations
@rule("only-together", "Options that only act together: source ranges with a LoadBalancer, build options in build "
                       "mode, a source password with its user",
      ["triton_helm_service_source_ranges", "triton_helm_service_type", "gcr_image_mode", "gcr_image_build_args",
       "gcr_image_docker_host", "gcr_image_build_context", "gcr_image_source_username", "gcr_image_source_password"])
def rule_together(s):
    if "triton_helm" in s.roles and s.get("triton_helm_service_source_ranges") \
            and s.get("triton_helm_service_type") != "LoadBalancer":
        yield ("triton_helm_service_source_ranges", f"is set but triton_helm_service_type is "
                                                    f"{s.get('triton_helm_service_type')} — source ranges only restrict "
                                                    "a LoadBalancer; set triton_helm_service_type: LoadBalancer or drop "
                                                    "them")
    if "gcr_image" in s.roles and s.get("gcr_image_mode") == "mirror":
        for name in ("gcr_image_build_args", "gcr_image_docker_host", "gcr_image_build_context"):
            if s.get(name):
                yield (name, "is set but gcr_image_mode is mirror — it only applies to gcr_image_mode: build; drop it "
                             "or set gcr_image_mode: build")
    if "gcr_image" in s.roles and s.get("gcr_image_source_password") and not s.get("gcr_image_source_username"):
        yield ("gcr_image_source_username", "is empty while gcr_image_source_password is set — the password is only "
                                            "sent with a user (NGC: '$oauthtoken')")


@rule("tritonserver-flags", "Extra tritonserver flags start with -- and leave the chart's own flags alone",
      ["triton_helm_extra_args"], roles=("triton_helm",),
      source="roles/triton_helm/files/triton/templates/deployment.yaml.tpl (the flags the chart sets)")
def rule_flags(s):
    for index, arg in enumerate(s.get("triton_helm_extra_args", [])):
        text = str(arg)
        if not text.startswith("--"):
            yield ("triton_helm_extra_args", f"[{index}] {text!r} is not a tritonserver flag — write it as "
                                             "'--name=value' (one flag per list item)")
            continue
        flag = text.split("=", 1)[0]
        if flag in CHART_FLAGS:
            yield ("triton_helm_extra_args", f"[{index}] {text!r} overrides a flag the chart sets — use "
                                             f"{CHART_FLAGS[flag]} instead")


# --------------------------------------------------------------------------------- images
@rule("image-reference", "Image references parse; Google registries have their project (and Artifact Registry "
                         "repository); a given triton_helm_image is pinned by digest",
      ["gcr_image_source", "gcr_image_registry", "gcr_image_project", "gcr_image_repository", "gcr_image_name",
       "gcr_image_tag", "triton_helm_image"],
      source="distribution reference grammar (plugins/module_utils/registry/reference.py)")
def rule_images(s):
    if "gcr_image" in s.roles:
        if s.get("gcr_image_mode") == "mirror" and s.has("gcr_image_source"):
            yield from _reference_problem("gcr_image_source", s.get("gcr_image_source"))
        registry = str(s.get("gcr_image_registry", ""))
        if not registry:
            yield ("gcr_image_registry", "is empty — give the destination registry, e.g. us-central1-docker.pkg.dev")
        elif not REGISTRY_HOST_RE.match(registry):
            yield ("gcr_image_registry", f"{registry!r} is not a registry host — give HOST[:PORT], e.g. "
                                         "us-central1-docker.pkg.dev or gcr.io (no scheme, no path)")
        # The destination is REGISTRY/PROJECT[/REPOSITORY]/NAME:TAG: each part is checked on its own variable.
        for name in ("gcr_image_project", "gcr_image_repository", "gcr_image_name"):
            value = str(s.get(name, ""))
            if value and not all(REPOSITORY_COMPONENT_RE.match(part) for part in value.split("/")):
                yield (name, f"{value!r} cannot be part of an image path — lowercase letters, digits and single "
                             "'.', '_', '-' between them (path parts separated by '/')")
        tag = str(s.get("gcr_image_tag", ""))
        if not tag:
            yield ("gcr_image_tag", "is empty — give the destination tag (keep it in step with the source's)")
        elif not TAG_RE.match(tag):
            yield ("gcr_image_tag", f"{tag!r} is not an image tag — up to 128 letters, digits, '_', '.' or '-', not "
                                    "starting with '.' or '-'")
        if is_google_registry(registry) and not s.get("gcr_image_project"):
            yield ("gcr_image_project", f"is empty, but {registry} needs the project in the image path — set "
                                        "gcp_project or gcr_image_project")
        if registry.endswith("-docker.pkg.dev") and not s.get("gcr_image_repository"):
            yield ("gcr_image_repository", f"is empty, but Artifact Registry ({registry}) needs a repository id — "
                                           "e.g. 'triton'")
    if "triton_helm" in s.roles and s.given("triton_helm_image"):
        image = str(s.get("triton_helm_image"))
        problems = list(_reference_problem("triton_helm_image", image))
        if problems:
            yield from problems
        elif "@sha256:" not in image:
            yield ("triton_helm_image", f"{image!r} is not pinned — give REPOSITORY@sha256:DIGEST (or leave it unset: "
                                        "gcr_image hands over the digest it pushed)")


def _reference_problem(name, value, what=None):
    try:
        parse_reference(str(value), option=name)
    except InvalidReference as exc:
        message = str(exc)
        if message.startswith(f"{name} "):
            message = message[len(name) + 1:]
        yield (name, f"{what}: {message}" if what else message)


# --------------------------------------------------------------------------------- credentials
@rule("credentials", "The auth kind has what it needs (key file, token); anonymous only for emulators",
      ["gcp_auth_kind", "gcp_service_account_file", "gcp_access_token"])
def rule_credentials(s):
    kind = s.get("gcp_auth_kind")
    if kind == "serviceaccount" and not s.get("gcp_service_account_file"):
        yield ("gcp_service_account_file", "is required with gcp_auth_kind=serviceaccount — give the key file path "
                                           "(or use gcp_auth_kind=application with Workload Identity / ADC)")
    if kind == "accesstoken" and not s.get("gcp_access_token"):
        yield ("gcp_access_token", "is required with gcp_auth_kind=accesstoken — keep it in Ansible Vault")
    if kind == "anonymous" and s.target != "local":
        yield ("gcp_auth_kind", f"'anonymous' only works with emulators — use application, serviceaccount or "
                                f"accesstoken with triton_fil_target={s.target}")


@rule("workload-identity", "Service account IDs; the Triton and metrics accounts live in gcp_project; the Triton "
                           "account has a bucket to read",
      ["workload_identity_triton_account", "workload_identity_metrics_account", "workload_identity_models_bucket",
       "workload_identity_state", "triton_helm_gcp_service_account", "metrics_adapter_gcp_service_account",
       "gcp_project"],
      roles=("workload_identity",), source="iam.v1 discovery document, CreateServiceAccountRequest.accountId")
def rule_workload_identity(s):
    project = s.get("gcp_project", "")
    for account_name, email_name in (("workload_identity_triton_account", "triton_helm_gcp_service_account"),
                                     ("workload_identity_metrics_account", "metrics_adapter_gcp_service_account")):
        account = s.get(account_name)
        if account and not ACCOUNT_ID_RE.match(str(account)):
            yield (account_name, f"{account!r} is not a service account ID — 6-30 lowercase letters, digits and "
                                 "hyphens, a letter first")
            continue
        email = s.get(email_name)
        if account and email and project and email != f"{account}@{project}.iam.gserviceaccount.com":
            yield (email_name, f"{email!r} is not the account workload_identity creates "
                               f"({account}@{project}.iam.gserviceaccount.com) — use that email, or set "
                               f"{account_name} to match")
    if s.get("workload_identity_state") != "absent" and s.get("workload_identity_triton_account") \
            and not s.get("workload_identity_models_bucket"):
        yield ("workload_identity_models_bucket", "is empty — the Triton account needs the model bucket "
                                                  "(set gcs_models_bucket)")


# --------------------------------------------------------------------------------- chart values
@rule("chart-values", "Autoscaling metric name and target; the pods' GPU node selector matches the pool's GPU",
      ["triton_helm_autoscaling_metric", "triton_helm_gpu_accelerator", "gke_cluster_gpu_accelerator_type"],
      roles=("triton_helm",))
def rule_chart_values(s):
    metric = s.get("triton_helm_autoscaling_metric")
    if isinstance(metric, dict):
        if metric.get("name") and not PROMETHEUS_NAME_RE.match(str(metric["name"])):
            yield ("triton_helm_autoscaling_metric", f"name {metric['name']!r} is not a Prometheus series name — "
                                                     "letters, digits and '_', not starting with a digit")
        if not str(metric.get("expr") or "").strip():
            yield ("triton_helm_autoscaling_metric", "expr is empty — give the PromQL the Rules object records")
        if metric.get("target") is not None and not QUANTITY_RE.match(str(metric["target"])):
            yield ("triton_helm_autoscaling_metric", f"target {metric['target']!r} is not a Kubernetes quantity — "
                                                     "e.g. '20000' or '500m'")
    if "gke_cluster" in s.roles and s.given("triton_helm_gpu_accelerator") \
            and s.has("gke_cluster_gpu_accelerator_type") \
            and s.get("triton_helm_gpu_accelerator") != s.get("gke_cluster_gpu_accelerator_type"):
        yield ("triton_helm_gpu_accelerator", f"{s.get('triton_helm_gpu_accelerator')!r} differs from the pool's GPU "
                                              f"{s.get('gke_cluster_gpu_accelerator_type')!r} — the pods select nodes "
                                              "by it and would never be scheduled; leave it unset")


@rule("verify-settings", "Verify timeouts, load and tolerances are positive",
      ["verify_timeout", "verify_load_concurrency", "verify_load_duration", "verify_atol", "verify_rtol"],
      roles=("verify",))
def rule_verify(s):
    for name in ("verify_timeout", "verify_load_concurrency"):
        value = _int(s.get(name))
        if value is not None and value < 1:
            yield (name, f"{value} must be at least 1")
    for name in ("verify_load_duration", "verify_atol", "verify_rtol"):
        value = s.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            yield (name, f"{value} must be >= 0")


# Live checks: read-only questions to Google, asked by the deployment_preflight module with the run's
# credentials (plugins/module_utils/preflight/live.py implements them; listed here for docs/roles.md).
LIVE_RULES = [
    Rule("live-accelerator-zones", "(live) The GPU type is offered in every zone of the GPU pool (compute "
                                   "acceleratorTypes.list) and the count is within its maximumCardsPerInstance",
         ["gke_cluster_gpu_accelerator_type", "gke_cluster_gpu_accelerator_count", "gke_cluster_location",
          "gke_cluster_node_locations"], None, roles=("gke_cluster",), targets=("gke",),
         source="compute.v1 acceleratorTypes.list; GKE regional clusters (a pool spans three zones by default)"),
    Rule("live-gpu-quota", "(live) The regional GPU quota (compute regions.get, e.g. NVIDIA_T4_GPUS) holds the pool's "
                           "first nodes: max(initial, min) nodes x zones x GPUs per node",
         ["gke_cluster_gpu_accelerator_type", "gke_cluster_gpu_accelerator_count", "gke_cluster_gpu_min_nodes",
          "gke_cluster_gpu_initial_node_count", "gke_cluster_location", "gke_cluster_node_locations",
          "gke_cluster_gpu_spot"], None, roles=("gke_cluster",), targets=("gke",),
         source="compute.v1 regions.get (Region.quotas: metric, limit, usage)"),
    Rule("live-services", "(live) The APIs the run's roles call are enabled in gcp_project (serviceusage "
                          "services.list, state:ENABLED)",
         ["gcp_project", "gcr_image_registry"], None, targets=("gke", "kubernetes"),
         source="serviceusage.v1 services.list; terraform-provider-google ListCurrentlyEnabledServices"),
    Rule("live-bucket-owner", "(live) The bucket is this project's or free: a 403 on buckets.get means the global "
                              "name belongs to someone else (or this identity may not read it)",
         ["gcs_models_bucket"], None, roles=("gcs_models",), targets=("gke", "kubernetes"),
         source="storage.v1 buckets.get; GoogleCloudPlatform/deploymentmanager-samples#151"),
]


def applicable(roles, target, rules=None):
    return [r for r in (rules or RULES) if r.applies(roles, target)]


def run(settings, roles=None, target=None, sources=None, rules=None):
    """Every problem of the applicable rules as (variable, message, rule name), de-duplicated and sorted."""
    target = target or settings.get("triton_fil_target") or DEFAULT_TARGET
    if roles is None:
        roles = roles_for(target, settings)
    view = Settings(settings, roles, target, sources)
    found = set()
    for item in applicable(roles, target, rules):
        for variable, message in item.check(view):
            found.add((variable, message, item.name))
    return sorted(found)


def check(settings, roles=None, target=None, sources=None, rules=None):
    """All problems as sorted 'variable: message' strings."""
    return sorted({f"{variable}: {message}" for variable, message, _name in run(settings, roles, target, sources, rules)})


def rules_by_variable():
    """variable -> names of the rules that read it (for docs/roles.md)."""
    found = {}
    for item in RULES + LIVE_RULES:
        for variable in item.variables:
            found.setdefault(variable, []).append(item.name)
    return found
