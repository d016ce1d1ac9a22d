# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Bucket desired state vs actual: what to create, what to patch, what cannot change."""

from __future__ import annotations

from ansible_collections.rapids.triton_fil.plugins.module_utils.changes import change
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpError


def desired_bucket(params):
    """The bucket resource body the module parameters ask for (only fields the user manages)."""
    body = {"name": params["name"]}
    if params.get("location"):
        body["location"] = params["location"].upper()
    if params.get("storage_class"):
        body["storageClass"] = params["storage_class"].upper()
    iam = {}
    if params.get("uniform_access") is not None:
        iam["uniformBucketLevelAccess"] = {"enabled": bool(params["uniform_access"])}
    if params.get("public_access_prevention"):
        iam["publicAccessPrevention"] = params["public_access_prevention"]
    if iam:
        body["iamConfiguration"] = iam
    if params.get("labels") is not None:
        body["labels"] = dict(params["labels"])
    if params.get("versioning") is not None:
        body["versioning"] = {"enabled": bool(params["versioning"])}
    return body


def _get(resource, path):
    for key in path:
        if not isinstance(resource, dict) or key not in resource:
            return _MISSING
        resource = resource[key]
    return resource


_MISSING = object()

# (field path, patch body builder, default when the real API omits it)
_MUTABLE = [
    (("storageClass",), lambda v: {"storageClass": v}, _MISSING),
    (("iamConfiguration", "uniformBucketLevelAccess", "enabled"),
     lambda v: {"iamConfiguration": {"uniformBucketLevelAccess": {"enabled": v}}}, _MISSING),
    (("iamConfiguration", "publicAccessPrevention"),
     lambda v: {"iamConfiguration": {"publicAccessPrevention": v}}, _MISSING),
    (("labels",), lambda v: {"labels": v}, {}),
    (("versioning", "enabled"), lambda v: {"versioning": {"enabled": v}}, False),
]


def _merge(into, update):
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def plan_bucket_update(desired, actual):
    """Return (patch_body, changes, unverifiable).

    changes: [{field, before, after}]; unverifiable: fields the server does not report at all
    (emulators omit some), which are therefore neither compared nor rewritten on every run.
    Raises GcpError for a field that cannot change in place.
    """
    want_location = desired.get("location")
    have_location = (actual.get("location") or "").upper()
    if want_location and have_location and want_location != have_location:
        raise GcpError(
            f"bucket {desired['name']!r} is in location {have_location} but location={want_location} was "
            "asked; a bucket's location cannot change — use another bucket name or set location to "
            f"{have_location}"
        )
    patch, changes, unverifiable = {}, [], []
    for path, build, default in _MUTABLE:
        want = _get(desired, path)
        if want is _MISSING:
            continue
        have = _get(actual, path)
        if have is _MISSING:
            if default is _MISSING:
                unverifiable.append(".".join(path))
                continue
            have = default
        if have != want:
            _merge(patch, build(want))
            changes.append(change(".".join(path), have, want))
    return patch, changes, unverifiable
