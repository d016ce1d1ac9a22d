# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""What the triton_model_repository module does: resolve the release, migrate if asked, validate.

    run_repository(params, check_mode) -> result

The result holds ``models``, ``problems``, ``advisories`` (as ``warnings`` too, for the task's warnings),
``release``, ``migrations`` and, when files were (or would be) rewritten, ``diff``. Every failure is a
ModelRepositoryError (or ReleaseError) whose ``result`` is what the task returns with it.
"""

from __future__ import annotations

from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import releases
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.model_config import (
    ModelRepositoryError,
    migrate_repository,
    replace_text_file,
    validate_repository,
)

EMPTY = dict(models=[], problems=[], advisories=[], migrations=[])


def _failed(message, **result):
    exc = ModelRepositoryError(message)
    exc.result = dict(EMPTY, **result)
    return exc


def _release(params):
    try:
        return releases.resolve(release=params["release"], image=params["image"])
    except releases.ReleaseError as exc:
        exc.result = dict(EMPTY)
        raise


def _migrate(params, release, check_mode):
    """Rewrite (or, in check mode, plan) the configurations of an older release; the migrations and diffs."""
    migrations, diffs = [], []
    for change in migrate_repository(params["path"], release, params["models"]):
        migrations.append({"file": change["file"], "notes": change["notes"]})
        diffs.append({"before": change["before"], "after": change["after"],
                      "before_header": change["file"], "after_header": f"{change['file']} ({release['tag']})"})
        if not check_mode:
            try:
                replace_text_file(change["path"], change["after"])
            except OSError as exc:
                raise _failed(f"path: cannot rewrite a configuration under {params['path']}: {exc}") from exc
    return migrations, diffs


def _validate(params, release, pending):
    """The report of validate_repository; problems that a pending (check-mode) migration fixes are left out."""
    report = validate_repository(params["path"], params["models"], release)
    if pending:
        report["problems"] = [p for p in report["problems"] if p.split(":", 1)[0] not in pending
                              or "migrate: true" not in p]
    return report


def run_repository(params, check_mode):
    release, release_advisories = _release(params)
    try:
        migrations, diffs = _migrate(params, release, check_mode) if params["migrate"] else ([], [])
        # Check mode validates the files as they are; the planned rewrite is what would fix them.
        report = _validate(params, release, {m["file"] for m in migrations} if check_mode else set())
    except ModelRepositoryError as exc:
        if exc.result is None:
            exc.result = dict(EMPTY, problems=[str(exc)])
        raise
    advisories = release_advisories + report["warnings"]
    result = dict(changed=bool(migrations), models=report["models"], problems=report["problems"],
                  advisories=advisories, release=report["release"], migrations=migrations, warnings=list(advisories))
    if diffs:
        result["diff"] = diffs
    findings = report["problems"] + (advisories if params["fail_on_warnings"] else [])
    if findings:
        exc = ModelRepositoryError(
            f"model repository {params['path']}: {len(findings)} problem(s) for Triton {release['tag']} "
            f"({release.get('triton_version')}); nothing was uploaded:\n- " + "\n- ".join(findings))
        exc.result = result
        raise exc
    return result
