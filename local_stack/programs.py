"""Finding the programs the local stack runs (go, podman, docker-registry) with an error that says how to get them."""

from __future__ import annotations

import shutil
from pathlib import Path


def find_program(name, missing, *, also_in=()):
    """The path of program ``name`` on PATH or in one of the folders ``also_in`` (a daemon in /usr/sbin, which a
    user's PATH may lack); raise the exception ``missing`` when it is in neither."""
    found = shutil.which(name) or next((str(Path(d) / name) for d in also_in if (Path(d) / name).exists()), None)
    if not found:
        raise missing
    return found
