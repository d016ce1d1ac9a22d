# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""The body every Google module shares: google-auth present, input checked, a session and a client, the run.

    run_gcp_module(module, make_client, runner, validate=check_names)

``validate(params)`` returns problems (checked before any call); ``make_client(session, params)`` builds the
API client; ``runner(client, params, check_mode)`` returns the result. A GcpError fails the task with the
module named (and the long-running operations already started, when the client keeps them); ``warnings`` of
the result become Ansible warnings.
"""

from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import (
    HAS_GOOGLE_AUTH, GOOGLE_AUTH_IMPORT_ERROR, GcpError, GcpSession,
)


def module_name(module):
    return module._name.rsplit(".", 1)[-1]  # pylint: disable=protected-access


def run_gcp_module(module, make_client, runner, validate=None):
    name = module_name(module)
    if not HAS_GOOGLE_AUTH:
        module.fail_json(msg=missing_required_lib("google-auth"), exception=str(GOOGLE_AUTH_IMPORT_ERROR))
    problems = validate(module.params) if validate else []
    if problems:
        module.fail_json(msg=f"{name}: " + "; ".join(problems))
    client = None
    try:
        client = make_client(GcpSession(module.params), module.params)
        result = runner(client, module.params, module.check_mode)
    except GcpError as exc:
        extra = {"operations": client.operations} if hasattr(client, "operations") else {}
        module.fail_json(msg=f"{name}: {exc}", **extra)
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)
    module.exit_json(**result)
