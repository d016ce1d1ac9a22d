# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Sync a local folder to gs://bucket/prefix: plan (compare hashes), then execute exactly the plan."""

from __future__ import annotations

import mimetypes
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpApiError, GcpError
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.client import (
    GcsIntegrityError, check_object_name, check_stored, file_md5_b64,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.local_tree import (
    DEFAULT_EXCLUDE, is_excluded_path, walk_local_tree,
)

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
    extra: list = field(default_factory=list)   # remote-only objects kept: delete is off, or they match exclude

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
    Raises LocalTreeError, before anything is read from the bucket, when a local entry cannot be synced
    (see local_tree) or its object name is one GCS refuses.
    """
    prefix = normalize_prefix(prefix)
    exclude = tuple(DEFAULT_EXCLUDE if exclude is None else exclude)
    local = walk_local_tree(src, exclude, check_name=lambda rel: check_object_name(prefix + rel))
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
        md5 = _md5_of(path)
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
        # Excluded names are neither uploaded nor deleted (gsutil rsync -x: "matching files/objects are
        # not copied or deleted"): an excluded local file may well exist under that name.
        if delete and not is_excluded_path(name[len(prefix):], exclude):
            plan.actions.append(SyncAction("delete", name, "extra", remote[name]["size"],
                                           generation=remote[name]["generation"]))
        else:
            plan.extra.append(name)
    return plan


def _md5_of(path):
    try:
        return file_md5_b64(path)
    except OSError as exc:
        raise GcpError(f"{path}: cannot be read ({exc.strerror or exc}) — fix its permissions and run the sync "
                       "again") from exc


def _upload_verified(client, bucket, action, generation, content_type):
    """Upload and compare the stored object with the file; one more upload when they differ, then remove it."""
    metadata = {MTIME_KEY: str(action.mtime_ns)}
    try:
        return client.upload(bucket, action.name, action.path, action.md5, action.size,
                             if_generation_match=generation, content_type=content_type, metadata=metadata)
    except GcsIntegrityError as first:
        corrupt = first.stored.get("generation")
    try:
        return client.upload(bucket, action.name, action.path, action.md5, action.size,
                             if_generation_match=corrupt, content_type=content_type, metadata=metadata)
    except GcsIntegrityError as second:
        client.delete_object(bucket, action.name, second.stored.get("generation"))
        raise GcpError(f"{second} after two uploads; the object was removed, not left as done — run the sync again "
                       "(if this recurs, something between this host and the bucket alters the data)") from second


def _execute_one(client, bucket, action):
    if action.op == "delete":
        client.delete_object(bucket, action.name, action.generation)
        return action
    if action.md5 is None:
        action.md5 = _md5_of(action.path)  # sent with the upload: GCS rejects bytes that do not match
    content_type = mimetypes.guess_type(action.name)[0]
    # Preconditions make retries and concurrent writers safe: create only if absent, replace only
    # the generation we compared against.
    generation = action.generation if action.generation else 0
    try:
        _upload_verified(client, bucket, action, generation, content_type)
    except GcpApiError as exc:
        if exc.status != 412:
            raise
        # The object changed since we listed it (or a retried upload already landed): accept it
        # only if it now holds exactly our bytes.
        current = client.get_object(bucket, action.name)
        try:
            check_stored(current, bucket, action.name, action.size, action.md5)
        except GcsIntegrityError:
            raise exc from None
    return action


class SyncError(GcpError):
    """Some planned operations failed; .done holds those that completed."""

    def __init__(self, message, done):
        super().__init__(message)
        self.done = done


def execute_plan(client, plan, parallelism=8):
    """Run the planned uploads and deletes concurrently; return the actions done.

    Every operation runs even when others fail; SyncError then names each failure (a re-run retries
    only what still differs).
    """
    if not plan.actions:
        return []
    workers = max(1, min(parallelism, len(plan.actions)))

    def attempt(action):
        try:
            return _execute_one(client, plan.bucket, action), None
        except GcpError as exc:
            return action, exc

    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(attempt, plan.actions))
    done = [action for action, error in outcomes if error is None]
    failed = [(action, error) for action, error in outcomes if error is not None]
    if failed:
        lines = "".join(f"\n- {action.op} {action.name}: {error}" for action, error in failed[:10])
        more = f"\n- ... and {len(failed) - 10} more" if len(failed) > 10 else ""
        raise SyncError(f"{len(failed)} of {len(plan.actions)} operations failed ({len(done)} done; "
                        f"a re-run retries only what still differs):{lines}{more}", done)
    return done
