# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Which roles a deployment target runs, and which facts those roles hand to each other.

The one place that says what `triton_fil_target` means for the preflight: the roles whose argument
specs and rules apply, the optional roles and the variable that switches each on, and the facts a
role of the run sets later (a value that depends on one cannot be checked before the run).
"""

from __future__ import annotations

TARGETS = ("gke", "kubernetes", "local")
DEFAULT_TARGET = "gke"

# Every role each target runs, in site.yml's order. gke: the whole chain on a GKE cluster it creates;
# kubernetes: an existing cluster of any conformant distribution (triton_fil_kubeconfig and
# triton_fil_kube_context from the inventory); local: models to the emulator bucket, then verify.
TARGET_ROLES = {
    "gke": ("gke_cluster", "gcr_image", "gcs_models", "workload_identity", "gpu_drivers", "metrics_adapter",
            "model_rollout", "triton_helm", "verify"),
    "kubernetes": ("gcr_image", "gcs_models", "gpu_drivers", "metrics_adapter", "model_rollout", "triton_helm",
                   "verify"),
    "local": ("gcr_image", "gcs_models", "model_rollout", "verify"),
}

# Optional roles: the variable that switches each on, and its default per target (site.yml reads the
# same variables with the same defaults).
OPTIONAL_ROLES = {
    "gcr_image": ("triton_fil_image_enabled", {"gke": True, "kubernetes": False, "local": False}),
    "metrics_adapter": ("triton_fil_metrics_adapter_enabled", {"gke": True, "kubernetes": False, "local": False}),
    "model_rollout": ("triton_fil_model_rollout", {"gke": True, "kubernetes": True, "local": True}),
}

# Facts one role hands to the next (README, "Facts shared between roles"): fact -> the role that sets it.
HANDOFF_FACTS = {
    "triton_fil_image": "gcr_image",
    "triton_fil_model_repository": "gcs_models",
    "triton_fil_models": "gcs_models",
    "triton_fil_kubeconfig": "gke_cluster",
    "triton_fil_kube_context": "gke_cluster",
    "triton_fil_cluster": "gke_cluster",
    "triton_fil_workload_identity": "workload_identity",
    "triton_fil_served_models": "model_rollout",
    "triton_fil_rollout": "model_rollout",
    "triton_fil_endpoint": "triton_helm",
    "triton_fil_verified": "verify",
}

# Variables the preflight reads besides the roles' own (documented in the preflight role's spec).
SHARED_VARIABLES = ("triton_fil_target", "triton_fil_image_enabled", "triton_fil_metrics_adapter_enabled",
                    "triton_fil_model_rollout", "triton_fil_kube_context", "gcp_region", "gcp_zone")


def _truthy(value):
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "y")
    return bool(value)


def roles_for(target, switches=None):
    """The roles the target runs, optional ones only when their variable (in switches) says so."""
    if target not in TARGET_ROLES:
        raise ValueError(f"triton_fil_target {target!r} is not one of {', '.join(TARGETS)}")
    switches = switches or {}
    roles = []
    for role in TARGET_ROLES[target]:
        if role in OPTIONAL_ROLES:
            variable, defaults = OPTIONAL_ROLES[role]
            value = switches.get(variable)
            if not (_truthy(value) if value is not None else defaults[target]):
                continue
        roles.append(role)
    return tuple(roles)


def later_facts(roles):
    """Facts set by a role of this run: values that depend on them are decided during the run."""
    return {fact: role for fact, role in HANDOFF_FACTS.items() if role in roles}
