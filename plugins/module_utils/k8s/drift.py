# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Apply-semantics comparison of a desired Kubernetes object with the live one (no request, no dry run)."""

from __future__ import annotations


def drift(desired, live, path=""):
    """Paths under ``path`` where ``desired`` asks for something ``live`` does not have."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [path or "."]
        found = []
        for key, value in desired.items():
            if key == "status":
                continue
            where = f"{path}.{key}" if path else key
            if key not in live:
                found.append(where)
            else:
                found.extend(drift(value, live[key], where))
        return found
    return [] if desired == live else [path or "."]


def k8s_drift(desired, live):
    if not live:
        meta = (desired or {}).get("metadata", {})
        return [f"{(desired or {}).get('kind', 'object')}/{meta.get('name', '?')} absent"]
    return drift(desired, live)


def k8s_differing(desired_objects, info_results):
    """The desired objects whose live counterpart (k8s_info results, one per object, same order) differs."""
    if len(desired_objects) != len(info_results):
        raise ValueError(f"k8s_differing: {len(desired_objects)} objects but {len(info_results)} k8s_info results")
    found = []
    for desired, result in zip(desired_objects, info_results):
        live = (result.get("resources") or [None])[0]
        if k8s_drift(desired, live):
            found.append(desired)
    return found
