# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""IAM policy edits that touch only the (role, member) pairs they are given.

Only bindings without a condition are read or changed: a conditional binding grants less than the
role, so it neither satisfies a wanted pair nor is removed by an unwanted one. Every other binding,
member, condition, audit config and the policy version are sent back as they were read.
"""

from __future__ import annotations

import copy
import re

ROLE_RE = re.compile(r"^(roles/[A-Za-z0-9_.]+|(projects/[a-z][-a-z0-9]{4,28}[a-z0-9]|organizations/\d+)/roles/[A-Za-z0-9_.]+)$")


def _plain(policy, role):
    return [b for b in policy.get("bindings") or [] if b.get("role") == role and not b.get("condition")]


def has_member(policy, role, member):
    return any(member in (b.get("members") or []) for b in _plain(policy, role))


def with_pairs(policy, pairs, present):
    """A copy of policy with each (role, member) added (present) or removed; [] pairs changed."""
    policy = copy.deepcopy(policy or {})
    bindings = policy.setdefault("bindings", [])
    done = []
    for role, member in pairs:
        if has_member(policy, role, member) == present:
            continue
        done.append((role, member))
        if present:
            plain = _plain(policy, role)
            if plain:
                plain[0].setdefault("members", []).append(member)
            else:
                bindings.append({"role": role, "members": [member]})
        else:
            for binding in _plain(policy, role):
                binding["members"] = [m for m in binding.get("members") or [] if m != member]
    policy["bindings"] = [b for b in bindings if b.get("members")]
    return policy, done


def role_view(policy, roles):
    """{role: sorted members} of the unconditional bindings of the given roles, for --diff."""
    view = {}
    for role in sorted(set(roles)):
        members = sorted({m for b in _plain(policy or {}, role) for m in b.get("members") or []})
        view[role] = members
    return view
