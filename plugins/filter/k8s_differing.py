# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""k8s_differing: the desired Kubernetes objects whose live counterparts differ."""

from __future__ import annotations

DOCUMENTATION = r"""
name: k8s_differing
short_description: The desired Kubernetes objects whose live counterparts differ
version_added: 0.1.0
description:
- Given the desired objects and the M(kubernetes.core.k8s_info) results of reading each one (a loop over the same
  list, in the same order), returns the desired objects that are absent or differ, as P(rapids.triton_fil.k8s_drift#filter)
  compares them.
options:
  _input:
    description: The desired objects.
    type: list
    elements: dict
    required: true
  info_results:
    description: The C(results) of a M(kubernetes.core.k8s_info) loop over the same objects.
    type: list
    elements: dict
    required: true
author:
- rapids.triton_fil contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Apply only what differs
  kubernetes.core.k8s:
    definition: "{{ item }}"
  loop: "{{ objects | rapids.triton_fil.k8s_differing(read.results) }}"
"""

RETURN = r"""
_value:
  description: The desired objects that are absent or differ.
  type: list
  elements: dict
"""

from ansible_collections.rapids.triton_fil.plugins.module_utils.k8s.drift import k8s_differing


class FilterModule:
    def filters(self):
        return {"k8s_differing": k8s_differing}
