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
    modules report it with ``module.fail_json(msg=str(exc))``.
    """
