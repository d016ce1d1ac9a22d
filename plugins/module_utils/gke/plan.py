# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Desired-vs-actual planning shared by gke_cluster and gke_node_pool.

A plan is a list of changes ``{field, before, after, action}``; ``action`` is ``"recreate"`` for
fields the API cannot change in place, otherwise a tuple the runner turns into one API call.
Only the options the user set are compared, so server-side defaults never show up as drift.
"""

from __future__ import annotations

from ansible_collections.rapids.triton_fil.plugins.module_utils.changes import change as field_change, diff_of
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpError


def nested(obj, *path, default=None):
    """obj[path[0]][path[1]]... or default where a key is missing or a level is not a dict."""
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return default
        obj = obj[key]
    return obj


def normalized(value):
    """Comparable form: ints for numeric strings (int64 in JSON), sorted lists of scalars, None for empty."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, list):
        items = [normalized(v) for v in value]
        if all(not isinstance(v, (dict, list)) for v in items):
            return sorted(items, key=str)
        return items
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items() if v not in (None, "", [], {})}
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
    return normalized(before) != normalized(after)


def change(field, before, after, action):
    """A planned change with the API call that applies it (``action``), stripped by public_changes."""
    return field_change(field, before, after, action=action)


def public_changes(changes):
    """The plan without the internal action payloads, for results and messages."""
    return [{"field": c["field"], "before": c["before"], "after": c["after"],
             "in_place": c["action"] != "recreate"} for c in changes]


def refuse_recreate(kind, name, changes):
    fields = ", ".join(f"{c['field']} ({c['before']!r} -> {c['after']!r})" for c in changes)
    return (f"{kind} {name!r} must be recreated to change {fields}: the API cannot change these in place. "
            f"Nothing was changed. Set recreate=true to delete and recreate it (workloads on it are lost), "
            f"or keep the current values")


class Resource:
    """What one GKE resource gives the converge loop: how to read, create, delete and update it.

    ``key`` names the result key and the whole-resource change (``cluster``, ``node_pool``); ``kind``
    is how messages call it. Subclasses bind the client and the parameters.
    """

    key = kind = name = ""

    def __init__(self, client, params):
        self.client, self.params = client, params

    def at_rest(self):
        """The resource once GKE has finished its own operations on it, or None."""
        raise NotImplementedError

    def settled(self, what):
        """The resource at rest after a write (``what`` names the write for messages)."""
        raise NotImplementedError

    def desired(self):
        raise NotImplementedError

    def create(self, desired):
        raise NotImplementedError

    def delete(self):
        raise NotImplementedError

    def plan(self, actual):
        raise NotImplementedError

    def apply(self, changes):
        """The in-place changes of a plan, one API call per action."""
        raise NotImplementedError

    def facts(self, actual):
        raise NotImplementedError

    def planned(self):
        """The facts known before a create (check mode)."""
        return {"name": self.name}

    def broken(self, actual):
        """Whether the resource is in an error state that only a recreate repairs."""
        raise NotImplementedError

    def refuse_broken(self, actual):
        raise NotImplementedError

    def absent_view(self, actual):
        return {self.key: self.name}


def _whole(resource, before, after, facts, diff_before, diff_after):
    return {"changed": True, "changes": [field_change(resource.key, before, after)],
            resource.key: facts, "diff": {"before": diff_before, "after": diff_after}}


def converge(resource, check_mode):
    """One converge loop for clusters and node pools: absent -> error state -> create -> plan -> refuse or apply.

    The plan is made against a resting resource (a new cluster is PROVISIONING, then RECONCILING while
    GKE runs its own operations, and writes meanwhile are refused; Terraform:
    containerClusterAwaitRestingState). Nothing is written in check mode; ``operations`` is returned
    only after writes.
    """
    params, key = resource.params, resource.key
    actual = resource.at_rest()
    if params["state"] == "absent":
        if actual is None:
            return {"changed": False, "changes": [], key: {}, "diff": {"before": {}, "after": {}}}
        result = _whole(resource, "present", "absent", resource.facts(actual), resource.absent_view(actual), {})
        if not check_mode:
            resource.delete()
            result["operations"] = resource.client.operations
        return result

    desired = resource.desired()
    if actual is None:
        result = _whole(resource, "absent", "present", resource.planned(), {}, desired)
        if not check_mode:
            resource.create(desired)
            result[key] = resource.facts(resource.settled("create"))
            result["operations"] = resource.client.operations
        return result

    if resource.broken(actual):
        # Replacing it deletes whatever runs there: only when asked, like any other recreate.
        if not params["recreate"]:
            raise GcpError(resource.refuse_broken(actual))
        status = actual.get("status")
        result = _whole(resource, status, "present", resource.facts(actual), {"status": status}, desired)
        if not check_mode:
            resource.delete()
            resource.create(desired)
            result[key] = resource.facts(resource.settled("recreate"))
            result["operations"] = resource.client.operations
        return result

    changes = resource.plan(actual)
    result = {"changed": bool(changes), "changes": public_changes(changes), key: resource.facts(actual),
              "diff": diff_of(changes)}
    recreate = [c for c in changes if c["action"] == "recreate"]
    if recreate and not params["recreate"]:
        raise GcpError(refuse_recreate(resource.kind, resource.name, recreate))
    if not changes or check_mode:
        return result
    if recreate:
        resource.delete()
        resource.create(desired)
    else:
        resource.apply(changes)
    result[key] = resource.facts(resource.settled("update"))
    result["operations"] = resource.client.operations
    return result
