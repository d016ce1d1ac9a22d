# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""What the deployment_preflight module does, in the order it asks: models, credentials, live checks.

    run_preflight(params) -> result

Each check returns problems (``"VARIABLE: message"``); none writes anything. Any problem raises
PreflightFailed whose ``result`` (roles, problems, checked, and models/live when asked) the task returns.
"""

from __future__ import annotations

import os

from ansible_collections.rapids.triton_fil.plugins.module_utils.errors import TritonFilError
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpError, GcpSession
from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight.live import LiveChecks
from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight.targets import roles_for
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import releases
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.model_config import (
    ModelRepositoryError,
    validate_repository,
)

# A preflight answers in seconds: two retries of a transient error, not the modules' six.
LIVE_RETRIES = 2
CREDENTIAL_SETTINGS = {"gcp_auth_kind", "gcp_service_account_file", "gcp_access_token"}


class PreflightFailed(TritonFilError):
    """The problems found; the message says nothing was changed (a preflight never writes)."""


def check_models(repository, settings):
    """The problems of the local model repository for the FIL release the deployment's image serves."""
    try:
        release = releases.resolve(release=settings.get("gcs_models_fil_release") or None,
                                   image=settings.get("gcr_image_source"))[0]
        report = validate_repository(repository, release=release)
    except releases.ReleaseError as exc:
        report = {"problems": [f"gcs_models_fil_release: {exc}"]}
    except ModelRepositoryError as exc:
        report = {"problems": [str(exc)]}
    return [f"gcs_models_src: {p}" for p in report["problems"]], report.get("models", [])


def check_credentials(params):
    """(usable, problems): whether Google can be asked, and why not when a token cannot be had."""
    if params["auth_kind"] == "anonymous" or CREDENTIAL_SETTINGS & set(params["skip"]):
        return False, []  # anonymous, or already reported (a missing key file, no token): no second problem
    if not params["check_credentials"]:
        return True, []
    try:
        GcpSession(params).token()
    except GcpError as exc:
        return False, [f"gcp_auth_kind: no access token with auth_kind={params['auth_kind']}: {exc}"]
    return True, []


def check_live(params, settings, roles, target):
    """(problems, warnings, report) of the read-only questions to Google."""
    live_settings = dict(settings, gcp_project=settings.get("gcp_project") or params["project"])
    session = GcpSession(dict(params, max_retries=min(params["max_retries"], LIVE_RETRIES)))
    checks = LiveChecks(
        session, live_settings, roles, target, compute_endpoint=params["compute_endpoint"],
        serviceusage_endpoint=params["serviceusage_endpoint"],
        storage_endpoint=params["storage_endpoint"] or settings.get("gcp_storage_endpoint") or None,
        container_endpoint=params["container_endpoint"] or settings.get("gke_cluster_api_endpoint") or None,
        skip=params["skip"])
    live_problems, warnings, report = checks.run()
    return [f"{variable}: {message}" for variable, message, _rule in live_problems], warnings, report


def run_preflight(params):
    settings = params["settings"]
    target = params["target"] or settings.get("triton_fil_target") or "gke"
    roles = params["roles"] if params["roles"] is not None else list(roles_for(target, settings))
    result = {"changed": False, "roles": roles, "warnings": []}
    problems = []
    repository = params["model_repository"]
    if repository and os.path.isdir(repository) and "gcs_models_src" not in params["skip"]:
        found, result["models"] = check_models(repository, settings)
        problems += found
    credentials_ok, found = check_credentials(params)
    problems += found
    if params["live_checks"] and credentials_ok and params["project"]:
        found, result["warnings"], result["live"] = check_live(params, settings, roles, target)
        problems += found
    result.update(problems=sorted(set(problems)), checked=sorted(settings))
    if problems:
        exc = PreflightFailed(f"{len(result['problems'])} problem(s) — nothing was changed:\n- " + "\n- ".join(result["problems"]))
        exc.result = result
        raise exc
    return result
