# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""The flow of the gcs_bucket and gcs_sync modules: plan, then (unless check mode) execute."""

from __future__ import annotations

import os

from ansible_collections.rapids.triton_fil.plugins.module_utils.changes import change, diff_of
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpError
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.bucket import (
    desired_bucket, plan_bucket_update,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.sync import execute_plan, plan_sync


def _bucket_diff(before, after):
    return {"before": before or {}, "after": after or {}}


def run_bucket(client, params, check_mode):
    name = params["name"]
    actual = client.get_bucket(name)
    if params["state"] == "absent":
        if actual is None:
            return {"changed": False, "changes": [], "unverified": [], "deleted_objects": 0,
                    "diff": _bucket_diff(None, None)}
        objects = client.list_objects(name)
        if objects and not params["force"]:
            raise GcpError(
                f"bucket {name!r} still holds {len(objects)} objects and was kept — delete them first, "
                "or set force=true to delete the objects and the bucket"
            )
        if not check_mode:
            for obj_name, obj in objects.items():
                client.delete_object(name, obj_name, obj.get("generation"))
            client.delete_bucket(name)
        return {"changed": True, "changes": [change("bucket", "present", "absent")],
                "unverified": [], "deleted_objects": len(objects), "bucket": actual,
                "diff": _bucket_diff({"name": name, "objects": len(objects)}, None)}

    desired = desired_bucket(params)
    if actual is None:
        after = desired if check_mode else client.create_bucket(params.get("project"), desired)
        return {"changed": True, "changes": [change("bucket", "absent", "present")],
                "unverified": [], "bucket": after, "diff": _bucket_diff(None, desired)}
    patch, changes, unverified = plan_bucket_update(desired, actual)
    if not patch:
        return {"changed": False, "changes": [], "unverified": unverified, "bucket": actual,
                "diff": _bucket_diff(actual, actual)}
    after = actual if check_mode else client.patch_bucket(name, patch)
    return {"changed": True, "changes": changes, "unverified": unverified, "bucket": after,
            "diff": diff_of(changes)}


def run_sync(client, params, check_mode):
    src = params["src"]
    if not os.path.isdir(src):
        raise GcpError(f"src {src!r} is not a directory — point it at the local model repository folder")
    bucket = params["bucket"]
    if client.get_bucket(bucket) is None:
        raise GcpError(
            f"bucket {bucket!r} does not exist — create it first (rapids.triton_fil.gcs_bucket) or fix 'bucket'"
        )
    plan = plan_sync(client, src, bucket, params["prefix"], params["delete"], params.get("exclude"),
                     params.get("compare") or "auto")
    done = [] if check_mode else execute_plan(client, plan, params["parallelism"])
    uploads = plan.uploads
    return {
        "changed": bool(plan.actions),
        "url": f"gs://{bucket}/{plan.prefix}".rstrip("/"),
        "bucket": bucket,
        "prefix": plan.prefix.rstrip("/"),
        "actions": [a.describe() for a in plan.actions],
        "uploaded": 0 if check_mode else sum(1 for a in done if a.op == "upload"),
        "deleted": 0 if check_mode else sum(1 for a in done if a.op == "delete"),
        "unchanged": len(plan.unchanged),
        "extra": plan.extra,
        "bytes_planned": plan.upload_bytes,
        "bytes_sent": 0 if check_mode else sum(a.size for a in done if a.op == "upload"),
        "planned_uploads": len(uploads),
        "diff": plan.diff(),
    }
