# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Sync a local folder to gs://bucket/prefix: plan (compare hashes), then execute exactly the plan."""

from __future__ import annotations

import mimetypes
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpApiError
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.client import file_md5_b64, walk_local_tree

# Custom object metadata recording the local file's mtime at upload. With compare=auto, a file whose
# size and mtime equal the object's is taken as unchanged without hashing it (what gcloud storage
# rsync does too); any other file is hashed and compared by MD5.
MTIME_KEY = "rapids-triton-fil-mtime-ns"


@dataclass
class SyncAction:
    op: str          # upload | delete
    name: str        # object name
    reason: str      # new | size | md5 | extra
    size: int = 0
    path: str = None
    md5: str = None
    generation: str = None
    mtime_ns: int = None

    def describe(self):
        return {"op": self.op, "object": self.name, "reason": self.reason, "bytes": self.size}


@dataclass
class SyncPlan:
    bucket: str
    prefix: str
    actions: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    extra: list = field(default_factory=list)   # remote-only objects kept because delete is off

    @property
    def uploads(self):
        return [a for a in self.actions if a.op == "upload"]

    @property
    def deletes(self):
        return [a for a in self.actions if a.op == "delete"]

    @property
    def upload_bytes(self):
        return sum(a.size for a in self.uploads)

    def diff(self):
        """Ansible diff: the changed objects as listings before and after."""
        before, after = [], []
        for action in self.actions:
            if action.reason != "new":
                before.append(action.name)
            if action.op == "upload":
                md5 = f", md5 {action.md5}" if action.md5 else ""  # a new file is hashed when it is uploaded
                after.append(f"{action.name} ({action.size} bytes{md5})")
        header = f"gs://{self.bucket}/{self.prefix}"
        return {
            "before_header": header, "after_header": header,
            "before": "".join(f"{line}\n" for line in before),
            "after": "".join(f"{line}\n" for line in after),
        }


def normalize_prefix(prefix):
    prefix = (prefix or "").strip("/")
    return prefix + "/" if prefix else ""


def plan_sync(client, src, bucket, prefix, delete=False, exclude=None, compare="auto"):
    """Compare the local tree with the remote listing; reads only, writes nothing.

    compare: "auto" trusts an equal size + recorded mtime, "checksum" always hashes.
    """
    prefix = normalize_prefix(prefix)
    local = walk_local_tree(src, **({"exclude": exclude} if exclude is not None else {}))
    remote = client.list_objects(bucket, prefix)
    plan = SyncPlan(bucket=bucket, prefix=prefix)
    for rel, path in sorted(local.items()):
        name = prefix + rel
        stat = os.stat(path)
        size, mtime = stat.st_size, stat.st_mtime_ns
        have = remote.get(name)
        if (compare == "auto" and have is not None and have["size"] == size and have.get("md5Hash")
                and have.get("metadata", {}).get(MTIME_KEY) == str(mtime)):
            plan.unchanged.append(name)
            continue
        if have is None:
            # Nothing to compare with: hashed later by the upload worker, in parallel with other uploads.
            plan.actions.append(SyncAction("upload", name, "new", size, path, None, None, mtime))
            continue
        md5 = file_md5_b64(path)
        if have["size"] != size:
            reason = "size"
        elif not have.get("md5Hash"):
            reason = "no-md5"  # composite objects carry no MD5: same size, unknown content
        elif have["md5Hash"] != md5:
            reason = "md5"
        else:
            plan.unchanged.append(name)
            continue
        plan.actions.append(SyncAction("upload", name, reason, size, path, md5, have["generation"], mtime))
    local_names = {prefix + rel for rel in local}
    for name in sorted(set(remote) - local_names):
        if delete:
            plan.actions.append(SyncAction("delete", name, "extra", remote[name]["size"],
                                           generation=remote[name]["generation"]))
        else:
            plan.extra.append(name)
    return plan


def _execute_one(client, bucket, action):
    if action.op == "delete":
        client.delete_object(bucket, action.name, action.generation)
        return action
    if action.md5 is None:
        action.md5 = file_md5_b64(action.path)  # sent with the upload: GCS rejects bytes that do not match
    content_type = mimetypes.guess_type(action.name)[0]
    # Preconditions make retries and concurrent writers safe: create only if absent, replace only
    # the generation we compared against.
    generation = action.generation if action.generation else 0
    try:
        client.upload(bucket, action.name, action.path, action.md5, action.size,
                      if_generation_match=generation, content_type=content_type,
                      metadata={MTIME_KEY: str(action.mtime_ns)})
    except GcpApiError as exc:
        if exc.status != 412:
            raise
        # The object changed since we listed it (or a retried upload already landed): accept it
        # only if it now holds exactly our bytes.
        current = client.list_objects(bucket, action.name).get(action.name)
        if not current or current.get("md5Hash") != action.md5:
            raise
    return action


def execute_plan(client, plan, parallelism=8):
    """Run the planned uploads and deletes concurrently; return the actions done."""
    if not plan.actions:
        return []
    workers = max(1, min(parallelism, len(plan.actions)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda action: _execute_one(client, plan.bucket, action), plan.actions))
