# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""The local side of a sync: the regular files under src, and only those, or an error naming every entry that is not.

Symbolic links are resolved and followed only while their target stays inside the resolved src:
a link to a sibling file or folder of the model repository is synced under the link's own name, a
link that leads outside src (``1/model.json -> /etc/passwd``) is refused, so nothing outside the
repository ever leaves the machine. Broken links, link loops, folders and files that cannot be read,
entries that are not regular files (FIFOs, sockets, devices) and names that are not UTF-8 are
refused too, all of them listed at once and before anything is uploaded or deleted: a folder that
cannot be read must never look like a folder whose files are gone.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpError

DEFAULT_EXCLUDE = (".*", "__pycache__", "*.pyc")
MAX_LISTED = 20


class LocalTreeError(GcpError):
    """src holds entries that cannot be synced; .problems lists each (path and fix)."""

    def __init__(self, src, problems):
        self.problems = list(problems)
        shown = self.problems[:MAX_LISTED]
        more = len(self.problems) - len(shown)
        lines = "".join(f"\n- {p}" for p in shown) + (f"\n- ... and {more} more" if more else "")
        super().__init__(f"src {src!r}: {len(self.problems)} entr{'y' if len(self.problems) == 1 else 'ies'} "
                         f"cannot be synced; nothing was uploaded or deleted:{lines}")


def is_excluded(name, exclude):
    return any(fnmatch.fnmatch(name, pattern) for pattern in exclude)


def is_excluded_path(rel, exclude):
    """True when any component of the relative path matches an exclude pattern (what the walk skips)."""
    return any(is_excluded(part, exclude) for part in rel.split("/"))


def _shown(rel):
    """A relative path fit for a message, also when it is not valid UTF-8."""
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return repr(os.fsencode(rel))[1:]


def _reason(exc):
    if exc.errno == errno.ELOOP:
        return "is a symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "is a broken symbolic link"
    return f"cannot be read ({exc.strerror})"


def walk_local_tree(root, exclude=DEFAULT_EXCLUDE, check_name=None):
    """{relative posix path: resolved path} of the regular files under root; LocalTreeError lists every refusal.

    check_name(rel) -> problem or None adds the destination's naming rules to the refusals.
    """
    exclude = tuple(DEFAULT_EXCLUDE if exclude is None else exclude)
    top = os.path.realpath(root)
    files, problems = {}, []

    def visit(folder, rel_folder, ancestors):
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            problems.append(f"{_shown(rel_folder or '.')}/: folder {_reason(exc)} — fix its permissions, "
                            "or add it to exclude; its objects in the bucket are kept")
            return
        for entry in entries:
            if is_excluded(entry.name, exclude):
                continue
            rel = f"{rel_folder}/{entry.name}" if rel_folder else entry.name
            full = os.path.join(folder, entry.name)
            kind, value = _classify(entry, full, rel, top, ancestors, check_name)
            if kind == "problem":
                problems.append(value)
            elif kind == "folder":
                visit(full, rel, ancestors | {value})
            else:
                files[rel] = value  # the resolved path, checked inside src: a link retargeted later is not followed

    visit(top, "", frozenset([top]))
    if problems:
        raise LocalTreeError(root, problems)
    return files


def _classify(entry, full, rel, top, ancestors, check_name):
    """What one entry of a folder under src is: ("file", resolved path), ("folder", resolved path) or
    ("problem", the message naming it and its fix)."""
    shown = _shown(rel)
    if shown is not rel:
        return "problem", f"{shown}: the name is not valid UTF-8, and GCS object names are UTF-8 — rename it"
    try:
        real = os.path.realpath(full, strict=True)
        info = os.stat(full)
    except OSError as exc:
        return "problem", f"{rel}: {_reason(exc)} — fix or remove it, or add it to exclude"
    if entry.is_symlink() and not (real == top or real.startswith(top.rstrip(os.sep) + os.sep)):
        return "problem", (f"{rel}: is a symbolic link to {real}, outside src {top} — copy the file into the "
                           "model repository instead, or add it to exclude (links are followed only inside src)")
    if stat.S_ISDIR(info.st_mode):
        if real in ancestors:
            return "problem", f"{rel}/: is a symbolic link loop (back to {real}) — remove the link"
        return "folder", real
    if not stat.S_ISREG(info.st_mode):
        return "problem", f"{rel}: is not a regular file (a FIFO, socket or device) — remove it, or add it to exclude"
    try:
        with open(full, "rb"):
            pass
    except OSError as exc:
        return "problem", f"{rel}: file {_reason(exc)} — fix its permissions, or add it to exclude"
    problem = check_name(rel) if check_name else None
    if problem:
        return "problem", f"{rel}: {problem}"
    return "file", real
