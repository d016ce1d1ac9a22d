# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""k8s_drift: the fields of a desired Kubernetes object that an existing one does not have as asked."""

from __future__ import annotations

DOCUMENTATION = r"""
name: k8s_drift
short_description: Fields of a desired Kubernetes object that differ in the live object
version_added: 0.1.0
description:
  - Compares a desired object (what would be applied) with the object read from the API server, with
    apply semantics - every field the desired object sets must have the same value in the live one; fields
    only the live object has (server defaults, status, metadata the server adds) are ignored.
  - Lists are compared whole, as RBAC rules and subjects are.
  - Returns the differing paths (C(metadata.labels.app), C(rules)); an empty list means nothing would change.
    A missing live object (V(None) or an empty dict) returns V([<kind>/<name> absent]).
  - For objects without server-side normalisation (RBAC, namespaces); for workloads whose fields the
    server normalises (quantities, defaults inside lists), compare with a server-side dry run instead.
options:
  _input:
    description: The desired object.
    type: dict
    required: true
  live:
    description: The object as read (for example C(resources[0]) of M(kubernetes.core.k8s_info)), or nothing.
    type: raw
    required: true
author:
  - rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Read the ClusterRole
  kubernetes.core.k8s_info:
    api_version: rbac.authorization.k8s.io/v1
    kind: ClusterRole
    name: "{{ wanted.metadata.name }}"
  register: read

- name: Apply it only when it differs
  kubernetes.core.k8s:
    definition: "{{ wanted }}"
  when: wanted | rapids.triton_fil.k8s_drift(read.resources | first | default({})) | length > 0
"""

RETURN = r"""
_value:
  description: Dotted paths of the desired fields that differ or are missing; empty when nothing differs.
  type: list
  elements: str
"""


from ansible_collections.rapids.triton_fil.plugins.module_utils.k8s.drift import k8s_drift


class FilterModule:
    def filters(self):
        return {"k8s_drift": k8s_drift}
