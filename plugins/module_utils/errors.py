# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""The one error base class of the collection."""

from __future__ import annotations


class TritonFilError(Exception):
    """The base of every error the collection raises.

    Each hierarchy (GcpError, RegistryError, VerifyError, RolloutError, ModelRepositoryError,
    TunnelError, FilModelError, ...) derives from it, keeping its other bases (ValueError for the
    input errors) so callers that catch those keep working. The message is written for the user:
    every module reports it in one place, ``module_utils/runtime.py:run_module``, as
    ``fail_json(msg="MODULE: message", **result)``.
    """

    # What was done before the failure (RolloutFailed, VerifyFailed set it), returned with the failure.
    result = None
    # Said after the message in parentheses when the error fails a task, e.g. "nothing was written".
    note = ""
