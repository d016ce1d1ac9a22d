# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Desired-vs-actual planning shared by gke_cluster and gke_node_pool.

A plan is a list of changes ``{field, before, after, action}``; ``action`` is ``"recreate"`` for
fields the API cannot change in place, otherwise a tuple the runner turns into one API call.
Only the options the user set are compared, so server-side defaults never show up as drift.
"""

from __future__ import annotations


def dig(obj, *path, default=None):
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return default
        obj = obj[key]
    return obj


def norm(value):
    """Comparable form: ints for numeric strings (int64 in JSON), sorted lists of scalars, None for empty."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, list):
        items = [norm(v) for v in value]
        if all(not isinstance(v, (dict, list)) for v in items):
            return sorted(items, key=str)
        return items
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items() if v not in (None, "", [], {})}
    return value


# gcloud's OAuth scope aliases; GKE reports node pools' scopes as URLs (terraform-provider-google
# tpgresource/service_scope.go, CanonicalizeServiceScope, applied before sending and when reading).
SCOPE_ALIASES = {
    "bigquery": "bigquery", "cloud-platform": "cloud-platform", "cloud-source-repos": "source.full_control",
    "cloud-source-repos-ro": "source.read_only", "compute-ro": "compute.readonly", "compute-rw": "compute",
    "datastore": "datastore", "logging-write": "logging.write", "monitoring": "monitoring",
    "monitoring-read": "monitoring.read", "monitoring-write": "monitoring.write", "pubsub": "pubsub",
    "service-control": "servicecontrol", "service-management": "service.management.readonly",
    "sql": "sqlservice", "sql-admin": "sqlservice.admin", "storage-full": "devstorage.full_control",
    "storage-ro": "devstorage.read_only", "storage-rw": "devstorage.read_write", "taskqueue": "taskqueue",
    "trace": "trace.append", "useraccounts-ro": "cloud.useraccounts.readonly",
    "useraccounts-rw": "cloud.useraccounts", "userinfo-email": "userinfo.email",
}


def canonical_scopes(scopes):
    """Scope URLs, aliases expanded, duplicates dropped, order kept."""
    urls = [f"https://www.googleapis.com/auth/{SCOPE_ALIASES[s]}" if s in SCOPE_ALIASES else s for s in scopes or []]
    return list(dict.fromkeys(urls))


def resource_name(link):
    """The name at the end of a self-link or relative path: GKE reports networks by name
    (Terraform compares them with tpgresource.CompareSelfLinkOrResourceName)."""
    return link.rstrip("/").rsplit("/", 1)[-1] if link else link


def is_zone(location):
    return location.count("-") == 2


def differs(before, after):
    return norm(before) != norm(after)


def change(field, before, after, action):
    return {"field": field, "before": before, "after": after, "action": action}


def public_changes(changes):
    """The plan without the internal action payloads, for results and messages."""
    return [{"field": c["field"], "before": c["before"], "after": c["after"],
             "in_place": c["action"] != "recreate"} for c in changes]


def diff_view(changes):
    return ({c["field"]: c["before"] for c in changes}, {c["field"]: c["after"] for c in changes})


def refuse_recreate(kind, name, changes):
    fields = ", ".join(f"{c['field']} ({c['before']!r} -> {c['after']!r})" for c in changes)
    return (f"{kind} {name!r} must be recreated to change {fields}: the API cannot change these in place. "
            f"Nothing was changed. Set recreate=true to delete and recreate it (workloads on it are lost), "
            f"or keep the current values")
