# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""The body every Google module shares: run_module (runtime.py) with google-auth, a session and a client.

    run_gcp_module(module, make_client, runner, validate=check_names)

``validate(params)`` returns problems (checked before any call); ``make_client(session, params)`` builds the
API client; ``runner(client, params, check_mode)`` returns the result. An error fails the task with the
module named, and with the long-running operations already started when the client keeps them.
"""

from __future__ import annotations

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import (
    HAS_GOOGLE_AUTH, GOOGLE_AUTH_IMPORT_ERROR, GcpSession,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.runtime import run_module

GOOGLE_AUTH = (HAS_GOOGLE_AUTH, "google-auth", GOOGLE_AUTH_IMPORT_ERROR)


def run_gcp_module(module, make_client, runner, validate=None):
    clients = []

    def run():
        clients.append(make_client(GcpSession(module.params), module.params))
        return runner(clients[0], module.params, module.check_mode)

    def operations(_exc):
        return {"operations": clients[0].operations} if clients and hasattr(clients[0], "operations") else {}

    run_module(module, run, requires=[GOOGLE_AUTH], validate=validate, extra=operations)
