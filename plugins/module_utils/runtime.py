# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""The body every module shares: libraries present, input checked, the run, one way to fail.

    run_module(module, runner, requires=(), validate=None, extra=None)

``requires`` holds ``(present, library, import_error)`` triples, checked first: a missing library fails with
Ansible's ``missing_required_lib`` text. ``validate(params)`` returns problems, reported before any call.
``runner()`` returns the result. A TritonFilError (the base of every error of the collection) fails the task
as ``"MODULE: message (note)"`` with what the error says was done (``exc.result``, without its diff) and
``extra(exc)``; ``warnings`` of the result (or of the failure) become Ansible warnings. The Google modules add their session
on top of it (``gcp/module.py``).
"""

from __future__ import annotations

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.rapids.triton_fil.plugins.module_utils.errors import TritonFilError


def module_name(module):
    """The module's short name (``gcs_sync`` for ``rapids.triton_fil.gcs_sync``), the prefix of its messages."""
    return module._name.rsplit(".", 1)[-1]  # pylint: disable=protected-access


def run_module(module, runner, requires=(), validate=None, extra=None):
    name = module_name(module)
    for present, library, import_error in requires:
        if not present:
            module.fail_json(msg=missing_required_lib(library), exception=str(import_error))
    problems = validate(module.params) if validate else []
    if problems:
        module.fail_json(msg=f"{name}: " + "; ".join(problems))
    try:
        result = runner()
    except TritonFilError as exc:
        failed = dict(exc.result or {})
        failed.pop("diff", None)
        failed.update(extra(exc) if extra else {})
        _warn(module, failed)
        module.fail_json(msg=f"{name}: {exc}" + (f" ({exc.note})" if exc.note else ""), **failed)
    _warn(module, result)
    module.exit_json(**result)


def _warn(module, result):
    for warning in result.pop("warnings", None) or []:
        module.warn(warning)
