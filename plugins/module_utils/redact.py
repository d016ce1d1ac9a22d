# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Keep credentials out of messages, diffs and returned structures.

Ansible's no_log masks the values of module parameters only; a token the module obtained itself
(google-auth, a registry's token service), the base64 of a Basic pair, or a password a hostile
server echoes back in its error body are not parameters. Everything that puts server text or a
credential-bearing structure into a result goes through here.
"""

from __future__ import annotations

import base64
import re

REDACTED = "<redacted>"

# An Authorization value as a server may echo it: "Basic <b64>", "Bearer <token>" (RFC 7235 auth-scheme
# followed by token68). Short words after "Basic"/"Bearer" (prose such as "Bearer challenge") are left alone.
_AUTH_VALUE = re.compile(r"\b(Basic|Bearer)\s+[A-Za-z0-9._~+/=-]{12,}", re.IGNORECASE)


def basic_credential(username, password):
    """The token68 of an HTTP Basic pair, the form a server echoes it in."""
    return base64.b64encode(f"{username}:{password}".encode("utf-8")).decode("ascii")


def scrub(text, secrets=()):
    """text with every known secret and every Authorization-looking value replaced by REDACTED."""
    if not text:
        return text
    text = str(text)
    for secret in sorted({s for s in secrets if s and len(str(s)) >= 4}, key=len, reverse=True):
        text = text.replace(str(secret), REDACTED)
    return _AUTH_VALUE.sub(lambda match: f"{match.group(1)} {REDACTED}", text)
