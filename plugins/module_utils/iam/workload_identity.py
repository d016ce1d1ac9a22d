# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""gcp_workload_identity: a Google service account, its project and bucket roles, and the
roles/iam.workloadIdentityUser bindings that let Kubernetes service accounts act as it."""

from __future__ import annotations

import re

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpApiError, GcpError
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.client import check_bucket_name
from ansible_collections.rapids.triton_fil.plugins.module_utils.iam.policy import ROLE_RE, role_view

WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"
ACCOUNT_ID_RE = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
KSA_NAME_RE = re.compile(r"^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$")


def validate(params):
    """Every problem of the options at once, naming the option, before any API call."""
    problems = []
    if not params.get("project"):
        problems.append("project is required: set project (or GCP_PROJECT) to the Google Cloud project ID")
    name = params["name"]
    if not ACCOUNT_ID_RE.match(name or ""):
        problems.append(f"name {name!r} is not a service account ID: use 6-30 lowercase letters, digits or '-', "
                        "starting with a letter (the part before '@' of the email)")
    for role in params["project_roles"]:
        if not ROLE_RE.match(role):
            problems.append(f"project_roles: {role!r} is not a role name such as 'roles/monitoring.viewer'")
    for item in params["bucket_roles"]:
        problem = check_bucket_name(item["bucket"], "bucket_roles.bucket")
        if problem:
            problems.append(problem)
        if not ROLE_RE.match(item["role"]):
            problems.append(f"bucket_roles.role: {item['role']!r} is not a role name such as "
                            "'roles/storage.objectViewer'")
    for ksa in params["kubernetes_service_accounts"]:
        namespace, _sep, account = ksa.partition("/")
        if not (DNS_LABEL_RE.match(namespace) and KSA_NAME_RE.match(account)):
            problems.append(f"kubernetes_service_accounts: {ksa!r} must be NAMESPACE/NAME, for example "
                            "'triton/triton-fil'")
    if params["delete_account"] and params["state"] != "absent":
        problems.append("delete_account=true deletes the service account and needs state=absent")
    return problems


def account_facts(account, email):
    account = account or {}
    return {"email": account.get("email", email), "unique_id": account.get("uniqueId"),
            "display_name": account.get("displayName"), "name": account.get("name"),
            "disabled": bool(account.get("disabled")), "exists": bool(account)}


def plan_targets(client, params, email):
    """(target, pairs, missing_ok) for each policy this task names."""
    project, member = params["project"], f"serviceAccount:{email}"
    pool = params["workload_pool"] or f"{project}.svc.id.goog"
    targets = []
    if params["project_roles"]:
        pairs = [(role, member) for role in dict.fromkeys(params["project_roles"])]
        targets.append((client.project_target(project), pairs, False))
    by_bucket = {}
    for item in params["bucket_roles"]:
        by_bucket.setdefault(item["bucket"], []).append((item["role"], member))
    for bucket, pairs in by_bucket.items():
        targets.append((client.bucket_target(bucket), list(dict.fromkeys(pairs)), True))
    if params["kubernetes_service_accounts"]:
        pairs = [(WORKLOAD_IDENTITY_USER, f"serviceAccount:{pool}[{ksa}]")
                 for ksa in dict.fromkeys(params["kubernetes_service_accounts"])]
        targets.append((client.account_target(project, email), pairs, True))
    return targets


PERMISSIONS = ("the caller needs roles/iam.serviceAccountAdmin (accounts and their policies), "
               "roles/resourcemanager.projectIamAdmin (project_roles) and roles/storage.admin or the bucket's "
               "storage.buckets.setIamPolicy (bucket_roles)")


def run(client, params, check_mode):
    try:
        return _run(client, params, check_mode)
    except GcpApiError as exc:
        if exc.status == 403:
            raise GcpError(f"{exc} — {PERMISSIONS}") from exc
        if exc.status == 400 and "Identity Pool does not exist" in (exc.api_message or ""):
            raise GcpError(f"{exc} — the Workload Identity pool of kubernetes_service_accounts appears when a GKE "
                           "cluster of the project has Workload Identity enabled: converge the cluster "
                           "(gke_cluster) first, or fix workload_pool") from exc
        raise


def _run(client, params, check_mode):
    problems = validate(params)
    if problems:
        raise GcpError("; ".join(problems))
    project, name, present = params["project"], params["name"], params["state"] == "present"
    email = f"{name}@{project}.iam.gserviceaccount.com"
    changes, warnings = [], []
    before, after = {}, {}

    account = client.get_account(project, email)
    created = False
    if present and account is None:
        changes.append({"resource": f"serviceAccounts/{email}", "action": "create"})
        before["account"], after["account"] = {}, {"email": email, "display_name": params["display_name"]}
        if not check_mode:
            account = client.create_account(project, name, params["display_name"])
            if not account or "email" not in account:  # 409: created meanwhile (or by our retried call)
                account = client.get_account(project, email, created=True)
            created = True
    elif present and params["display_name"] is not None and account.get("displayName", "") != params["display_name"]:
        changes.append({"resource": f"serviceAccounts/{email}", "action": "update", "field": "display_name",
                        "before": account.get("displayName", ""), "after": params["display_name"]})
        before["account"] = {"display_name": account.get("displayName", "")}
        after["account"] = {"display_name": params["display_name"]}
        if not check_mode:
            account = client.patch_account(project, email, params["display_name"])
    if account and account.get("disabled") and present:
        warnings.append(f"service account {email} is disabled: workloads cannot act as it until it is enabled")

    for target, pairs, missing_ok in plan_targets(client, params, email):
        roles = [role for role, _member in pairs]
        if target.kind == "account" and account is None:
            # Not created yet (check mode) or already gone (absent): its own policy does not exist.
            if present:
                policy_before, policy_after, done = {}, {}, pairs
                for role, member in pairs:
                    policy_after.setdefault("bindings", []).append({"role": role, "members": [member]})
            else:
                continue
        else:
            policy_before, policy_after, done = client.converge(
                target, pairs, present, check_mode, missing_ok=missing_ok, new_members=created)
            if policy_before is None:
                if present and check_mode:
                    warnings.append(f"{target.label} does not exist (yet): its roles were not planned")
                    continue
                if present and target.kind == "bucket":
                    raise GcpError(f"{target.label} does not exist: create the bucket first (gcs_models role or "
                                   "rapids.triton_fil.gcs_bucket) or fix bucket_roles")
                if present:
                    raise GcpError(f"{target.label} does not exist (it was deleted meanwhile); re-run to recreate it")
                continue
        for role, member in done:
            changes.append({"resource": target.label, "role": role, "member": member,
                            "action": "add" if present else "remove"})
        if done:
            before[target.label] = role_view(policy_before, roles)
            after[target.label] = role_view(policy_after, roles)

    if not present and params["delete_account"] and account is not None:
        changes.append({"resource": f"serviceAccounts/{email}", "action": "delete"})
        before["account"], after["account"] = {"email": email}, {}
        if not check_mode:
            client.delete_account(project, email)
            account = None

    facts = account_facts(account, email)
    return {"changed": bool(changes), "email": email, "unique_id": facts["unique_id"], "account": facts,
            "changes": changes, "conflicts_retried": client.conflicts, "warnings": warnings,
            "diff": {"before": before, "after": after}}
