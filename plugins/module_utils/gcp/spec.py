# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""The argument spec of the rapids.triton_fil.gcp doc fragment, without importing google-auth.

Modules that talk to Google only sometimes (the registry modules: only for gcr.io and
*-docker.pkg.dev) take their spec from here, so a copy between two other registries never pays
for importing google-auth; session.py re-exports it for every other module.
"""

from __future__ import annotations

from ansible.module_utils.basic import env_fallback

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def gcp_argument_spec():
    """The argument spec matching the rapids.triton_fil.gcp doc fragment."""
    env = env_fallback
    return dict(
        project=dict(type="str", fallback=(env, ["GCP_PROJECT"])),
        auth_kind=dict(
            type="str", default="application", fallback=(env, ["GCP_AUTH_KIND"]),
            choices=["application", "serviceaccount", "accesstoken", "anonymous"],
        ),
        service_account_file=dict(type="path", fallback=(env, ["GCP_SERVICE_ACCOUNT_FILE"])),
        service_account_contents=dict(
            type="jsonarg", no_log=True, fallback=(env, ["GCP_SERVICE_ACCOUNT_CONTENTS"])
        ),
        access_token=dict(type="str", no_log=True, fallback=(env, ["GCP_ACCESS_TOKEN"])),
        impersonate_service_account=dict(type="str"),
        scopes=dict(type="list", elements="str", default=[CLOUD_PLATFORM_SCOPE]),
        request_timeout=dict(type="float", default=60),
        max_retries=dict(type="int", default=6),
    )
