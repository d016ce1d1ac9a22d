# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""WWW-Authenticate challenges (RFC 7235) as registries send them, and the scopes they ask for."""

from __future__ import annotations

import re

# A token (scheme or parameter name), optionally '=' and a quoted-string or a bare value.
_ITEM = re.compile(r'[\s,]*([^\s=,"]+)(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*))?')
_UNESCAPE = re.compile(r"\\(.)")


def parse_challenges(header):
    """Return [(scheme_lowercase, {param: value})] for a WWW-Authenticate header.

    ``Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull,push"``
    gives ``[("bearer", {"realm": ..., "service": "registry", "scope": "repository:a/b:pull,push"})]``.
    Several challenges in one header are split where a bare token (a new scheme) appears.
    """
    challenges = []
    pos = 0
    header = header or ""
    while pos < len(header):
        match = _ITEM.match(header, pos)
        if not match or match.end() == pos:
            break
        pos = match.end()
        name, value = match.group(1), match.group(2)
        if value is None:
            challenges.append((name.lower(), {}))
            continue
        if value.startswith('"'):
            value = _UNESCAPE.sub(r"\1", value[1:-1])
        if not challenges:  # a parameter before any scheme: malformed, keep what can be kept
            challenges.append(("", {}))
        challenges[-1][1][name.lower()] = value
    return challenges


def pick_challenge(header):
    """The challenge to answer: Bearer over Basic; None when neither is offered."""
    found = dict(parse_challenges(header))
    for scheme in ("bearer", "basic"):
        if scheme in found:
            return scheme, found[scheme]
    return None


def pull_scope(repository):
    return f"repository:{repository}:pull"


def push_scope(repository):
    return f"repository:{repository}:pull,push"
