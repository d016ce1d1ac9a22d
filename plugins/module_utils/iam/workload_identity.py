# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""gcp_workload_identity: a Google service account, its project and bucket roles, and the
roles/iam.workloadIdentityUser bindings that let Kubernetes service accounts act as it."""

from __future__ import annotations

import re

from ansible_collections.rapids.triton_fil.plugins.module_utils.changes import change
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


def run_workload_identity(client, params, check_mode):
    try:
        return _converge(client, params, check_mode)
    except GcpApiError as exc:
        if exc.status == 403:
            raise GcpError(f"{exc} — {PERMISSIONS}") from exc
        if exc.status == 400 and "Identity Pool does not exist" in (exc.api_message or ""):
            raise GcpError(f"{exc} — the Workload Identity pool of kubernetes_service_accounts appears when a GKE "
                           "cluster of the project has Workload Identity enabled: converge the cluster "
                           "(gke_cluster) first, or fix workload_pool") from exc
        raise


class _Record:
    """What a run changes (or would change in check mode), its diff and its warnings."""

    def __init__(self):
        self.changes, self.warnings, self.before, self.after = [], [], {}, {}

    def account(self, email, action, before, after, field="account"):
        """An account created, updated or deleted: field/before/after (``absent``/``present`` for the account)."""
        states = {"create": ("absent", "present"), "delete": ("present", "absent")}
        old, new = states.get(action) or (before.get(field), after.get(field))
        self.changes.append(change(field, old, new, resource=f"serviceAccounts/{email}", action=action))
        self.before["account"], self.after["account"] = before, after

    def binding(self, resource, role, member, action):
        """A (role, member) pair added to or removed from a resource's policy."""
        old, new = ("absent", "present") if action == "add" else ("present", "absent")
        self.changes.append(change(f"{resource} {role} {member}", old, new, resource=resource, role=role,
                                   member=member, action=action))


def _converge_account(client, params, email, check_mode, record):
    """Create the account or update its display name; returns (account, created)."""
    project, display_name = params["project"], params["display_name"]
    account = client.get_account(project, email)
    if account is None:
        record.account(email, "create", {}, {"email": email, "display_name": display_name})
        if check_mode:
            return None, False
        account = client.create_account(project, params["name"], display_name)
        if not account or "email" not in account:  # 409: created meanwhile (or by our retried call)
            account = client.get_account(project, email, created=True)
        return account, True
    current = account.get("displayName", "")
    if display_name is not None and current != display_name:
        record.account(email, "update", {"display_name": current}, {"display_name": display_name},
                       field="display_name")
        if not check_mode:
            account = client.patch_account(project, email, display_name)
    return account, False


def _missing_target(target, present, check_mode, record):
    """A policy's resource that does not exist: a warning in check mode, an error when present, else nothing."""
    if not present:
        return
    if check_mode:
        record.warnings.append(f"{target.label} does not exist (yet): its roles were not planned")
        return
    if target.kind == "bucket":
        raise GcpError(f"{target.label} does not exist: create the bucket first (gcs_models role or "
                       "rapids.triton_fil.gcs_bucket) or fix bucket_roles")
    raise GcpError(f"{target.label} does not exist (it was deleted meanwhile); re-run to recreate it")


def _converge_policy(client, target, pairs, missing_ok, account, created, present, check_mode):
    """(policy before, policy after, bindings done) of one target, or None when it has no policy to change."""
    if target.kind == "account" and account is None:
        # Not created yet (check mode) or already gone (absent): its own policy does not exist.
        if not present:
            return None
        return {}, {"bindings": [{"role": role, "members": [member]} for role, member in pairs]}, pairs
    return client.converge(target, pairs, present, check_mode, missing_ok=missing_ok, new_members=created)


def _converge_policies(client, params, email, account, created, check_mode, record):
    present = params["state"] == "present"
    for target, pairs, missing_ok in plan_targets(client, params, email):
        converged = _converge_policy(client, target, pairs, missing_ok, account, created, present, check_mode)
        if converged is None:
            continue
        policy_before, policy_after, done = converged
        if policy_before is None:
            _missing_target(target, present, check_mode, record)
            continue
        for role, member in done:
            record.binding(target.label, role, member, "add" if present else "remove")
        if done:
            roles = [role for role, _member in pairs]
            record.before[target.label] = role_view(policy_before, roles)
            record.after[target.label] = role_view(policy_after, roles)


def _converge(client, params, check_mode):
    problems = validate(params)
    if problems:
        raise GcpError("; ".join(problems))
    project, present = params["project"], params["state"] == "present"
    email = f"{params['name']}@{project}.iam.gserviceaccount.com"
    record = _Record()
    if present:
        account, created = _converge_account(client, params, email, check_mode, record)
        if account and account.get("disabled"):
            record.warnings.append(f"service account {email} is disabled: workloads cannot act as it until it "
                                   "is enabled")
    else:
        account, created = client.get_account(project, email), False
    _converge_policies(client, params, email, account, created, check_mode, record)
    if not present and params["delete_account"] and account is not None:
        record.account(email, "delete", {"email": email}, {})
        if not check_mode:
            client.delete_account(project, email)
            account = None
    facts = account_facts(account, email)
    return {"changed": bool(record.changes), "email": email, "unique_id": facts["unique_id"], "account": facts,
            "changes": record.changes, "conflicts_retried": client.conflicts, "warnings": record.warnings,
            "diff": {"before": record.before, "after": record.after}}
