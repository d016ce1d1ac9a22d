# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Preflight rules: every problem in a deployment's variables, found before anything is written.

Each rule reads the settings dict (variable name -> value) and yields problems as
(variable, message) where the message says what is wrong and how to fix it. Rules only check the
variables that are present, so one rule set serves the local stack and GKE inventories.
"""

from __future__ import annotations

import re

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.client import check_bucket_name

PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
REGION_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
ZONE_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]+-[a-z]$")
# GKE accelerator types (compute acceleratorTypes) a Triton FIL pool can use.
ACCELERATORS = {
    "nvidia-tesla-t4", "nvidia-tesla-v100", "nvidia-tesla-p100", "nvidia-tesla-p4", "nvidia-l4",
    "nvidia-tesla-a100", "nvidia-a100-80gb", "nvidia-h100-80gb", "nvidia-h100-mega-80gb", "nvidia-h200-141gb",
}
IMAGE_REF_RE = re.compile(
    r"^(?P<registry>[a-z0-9.-]+(?::[0-9]+)?)/(?P<path>[a-z0-9._/-]+)(?::(?P<tag>[A-Za-z0-9_.-]{1,128}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)


def _present(settings, name):
    value = settings.get(name)
    return value is not None and value != ""


def rule_project(settings):
    if _present(settings, "gcp_project") and settings.get("triton_fil_target", "gke") == "gke":
        project = settings["gcp_project"]
        if not PROJECT_RE.match(str(project)):
            yield ("gcp_project", f"{project!r} is not a project ID — use the 6-30 character ID "
                                  "(lowercase letters, digits, hyphens), not the display name or number")


def rule_location(settings):
    if _present(settings, "gcp_region") and not REGION_RE.match(str(settings["gcp_region"])):
        yield ("gcp_region", f"{settings['gcp_region']!r} is not a region — use a name like 'us-central1'")
    if _present(settings, "gcp_zone"):
        zone = str(settings["gcp_zone"])
        if not ZONE_RE.match(zone):
            yield ("gcp_zone", f"{zone!r} is not a zone — use a name like 'us-central1-a'")
        elif _present(settings, "gcp_region") and not zone.startswith(str(settings["gcp_region"]) + "-"):
            yield ("gcp_zone", f"{zone!r} is not in gcp_region {settings['gcp_region']!r} — pick a zone of that region")


def rule_cluster_location(settings):
    location = settings.get("gke_cluster_location")
    if _present(settings, "gke_cluster_location"):
        location = str(location)
        if not (ZONE_RE.match(location) or REGION_RE.match(location)):
            yield ("gke_cluster_location", f"{location!r} is neither a zone ('us-central1-a', a zonal cluster) nor a "
                                           "region ('us-central1', a regional cluster)")
            return
    region = location[:-2] if location and ZONE_RE.match(str(location)) else location
    for zone in settings.get("gke_cluster_node_locations") or []:
        if not ZONE_RE.match(str(zone)):
            yield ("gke_cluster_node_locations", f"{zone!r} is not a zone — use names like 'us-central1-a'")
        elif region and not str(zone).startswith(f"{region}-"):
            yield ("gke_cluster_node_locations", f"{zone!r} is outside the cluster's region {region!r} — "
                                                 f"list zones of {region}")


def rule_bucket(settings):
    if "gcs_models_bucket" in settings:
        problem = check_bucket_name(settings.get("gcs_models_bucket"), "gcs_models_bucket")
        if problem:
            yield ("gcs_models_bucket", problem.split(" ", 1)[1] if problem.startswith("gcs_models_bucket ") else problem)
    prefix = settings.get("gcs_models_prefix")
    if prefix and (prefix.startswith("gs://") or "//" in prefix):
        yield ("gcs_models_prefix", f"{prefix!r} must be an object prefix like 'triton/model_repository' "
                                    "— no gs://, no empty path segments")


def rule_autoscaling(settings):
    pairs = [(k[: -len("_min_nodes")], k) for k in settings if k.endswith("_min_nodes")]
    pairs += [(k[: -len("_min_replicas")], k) for k in settings if k.endswith("_min_replicas")]
    for stem, low_name in pairs:
        high_name = low_name.replace("_min_", "_max_")
        low, high = settings.get(low_name), settings.get(high_name)
        for name, value in ((low_name, low), (high_name, high)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                yield (name, f"{value!r} must be a whole number >= 0")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            yield (low_name, f"({low}) is greater than {high_name} ({high}) — set {low_name} <= {high_name}")
        if isinstance(high, int) and high == 0 and stem:
            yield (high_name, "is 0 — nothing could ever run; set it to at least 1")


def rule_accelerator(settings):
    for name, value in settings.items():
        if name.endswith("_accelerator_type") and value and value not in ACCELERATORS:
            yield (name, f"{value!r} is not a known GKE GPU type — use one of: {', '.join(sorted(ACCELERATORS))}")
        if name.endswith("_accelerator_count") and value is not None and (not isinstance(value, int) or value < 1):
            yield (name, f"{value!r} must be a whole number >= 1")


def rule_images(settings):
    for name, value in settings.items():
        if name.endswith("_image_source") or name.endswith("_image_destination"):
            if value and not IMAGE_REF_RE.match(str(value)):
                yield (name, f"{value!r} is not an image reference — use REGISTRY/PATH[:TAG][@sha256:DIGEST], "
                             "e.g. us-central1-docker.pkg.dev/PROJECT/REPO/triton_fil")


def rule_credentials(settings):
    kind = settings.get("gcp_auth_kind")
    if kind == "serviceaccount" and not _present(settings, "gcp_service_account_file"):
        yield ("gcp_service_account_file", "is required with gcp_auth_kind=serviceaccount — give the key file path "
                                           "(or use gcp_auth_kind=application with Workload Identity / ADC)")
    if kind == "accesstoken" and not _present(settings, "gcp_access_token"):
        yield ("gcp_access_token", "is required with gcp_auth_kind=accesstoken — keep it in Ansible Vault")
    if kind == "anonymous" and settings.get("triton_fil_target", "gke") == "gke":
        yield ("gcp_auth_kind", "'anonymous' only works with emulators — use application, serviceaccount or accesstoken on GKE")


def rule_verify(settings):
    for name in ("verify_load_concurrency", "verify_timeout"):
        value = settings.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            yield (name, f"{value!r} must be a whole number >= 1")


RULES = [rule_project, rule_location, rule_cluster_location, rule_bucket, rule_autoscaling, rule_accelerator, rule_images,
         rule_credentials, rule_verify]


def check(settings, rules=None):
    """All problems as sorted, de-duplicated 'variable: message' strings."""
    problems = set()
    for rule in rules or RULES:
        for variable, message in rule(settings):
            problems.add(f"{variable}: {message}")
    return sorted(problems)
