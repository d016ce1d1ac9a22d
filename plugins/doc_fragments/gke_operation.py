# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Options of the GKE modules that wait for long-running Container API operations."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    DOCUMENTATION = r"""
options:
  wait_timeout:
    description: Seconds to wait for each long-running operation.
    type: int
    default: 1800
  poll_interval:
    description:
      - Longest pause in seconds between two polls of a running operation; polls start at 0.25 s and back off
        to this. GKE operations take minutes, so the default costs at most a few percent.
    type: float
    default: 10
"""
