"""The README's layout and hand-off tables match the tree: a folder, file, role or fact added or removed shows here."""

from __future__ import annotations

import re

import pytest
import yaml

from testlib import REPO

README = (REPO / "README.md").read_text()


def section(title):
    """The text of one `## title` section of the README."""
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, re.MULTILINE | re.DOTALL)
    assert found, f"README has no section {title!r}"
    return found.group(1)


def table(title):
    """{first cell: the whole row} of the first table in a section."""
    rows = {}
    for line in section(title).splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0]] = line
    return rows


def layout_row(path):
    rows = [row for first, row in table("Layout").items() if f"`{path}`" in first]
    assert rows, f"the README's layout table has no row for {path}"
    return rows[0]


def names_in(row):
    return set(re.findall(r"`([^`]+)`", row))


def first_cell_paths():
    """Every path of the layout table's first column (`a/b/`, `c/`: c is a sibling of b)."""
    paths = []
    for first in table("Layout"):
        tokens = re.findall(r"`([^`]+)`", first)
        for token in tokens:
            paths.append(token if token == tokens[0] or "/" in token.rstrip("/")
                         else str((REPO / tokens[0]).parent.relative_to(REPO) / token))
    return paths


def test_every_path_of_the_layout_table_exists():
    for path in first_cell_paths():
        assert (REPO / path).exists(), f"README layout names {path}, which is not in the tree"


def test_every_top_level_folder_is_in_the_layout_section():
    text = section("Layout")
    tracked = {p.name for p in REPO.iterdir() if p.is_dir() and not p.name.startswith(".")
               and p.name not in ("collections",)}  # collections/: the symlink ansible-test and the tests use
    missing = {name for name in tracked if f"`{name}/" not in text}
    assert not missing, f"README layout does not say what these folders hold: {sorted(missing)}"


@pytest.mark.parametrize("folder, row, suffix", [
    ("roles", "roles/", ""),
    ("inventories", "inventories/", ""),
    ("extensions/molecule", "extensions/molecule/", ""),
    ("plugins/doc_fragments", "plugins/doc_fragments/", ".py"),
    ("local_stack", "local_stack/", ".py"),
    ("local_stack/simulators", "local_stack/", ".py"),
])
def test_each_row_names_what_its_folder_holds(folder, row, suffix):
    named = names_in(layout_row(row))
    entries = [p for p in (REPO / folder).iterdir() if not p.name.startswith(("_", ".")) and p.name != "README.md"
               and (p.is_dir() or p.suffix == suffix or not suffix)]
    missing = [p.name for p in entries
               if p.name not in named and f"{p.name}/" not in named and p.stem not in named]
    assert not missing, f"the README layout row {row} does not name {sorted(missing)}"


def test_module_utils_rows_cover_every_package_and_shared_file():
    rows = {path.rstrip("/") for path in first_cell_paths()}
    for path in (REPO / "plugins" / "module_utils").iterdir():
        if path.name.startswith("_"):
            continue
        if path.is_dir():
            assert f"plugins/module_utils/{path.name}" in rows, f"README layout has no row for {path.name}/"
        elif path.suffix == ".py":
            assert f"`{path.name}`" in layout_row("plugins/module_utils/"), f"README layout does not name {path.name}"


def _tasks(items):
    for task in items or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


def facts_set_by_roles():
    """{fact: {role}} of every triton_fil_* fact a role sets with set_fact."""
    found = {}
    for tasks_file in (REPO / "roles").glob("*/tasks/*.yml"):
        role = tasks_file.parts[-3]
        for task in _tasks(yaml.safe_load(tasks_file.read_text())):
            args = task.get("ansible.builtin.set_fact") or {}
            for key in args if isinstance(args, dict) else ():
                if key.startswith("triton_fil_"):
                    found.setdefault(key, set()).add(role)
    return found


def test_the_hand_off_table_is_every_fact_the_roles_set_and_who_sets_it():
    rows = table("Facts shared between roles")
    documented = {}
    for first, row in rows.items():
        for fact in re.findall(r"`(triton_fil_\w+)`", first):
            documented[fact] = row.split(" | ")[1]
    setters = facts_set_by_roles()
    aliases = {fact for row in rows.values() for fact in re.findall(r"`(triton_fil_\w+)` is its deprecated alias", row)}
    assert set(setters) - aliases == set(documented) - {"fact"}, "README's hand-off table and the roles' set_fact differ"
    for fact, roles in setters.items():
        if fact in documented:
            assert all(role in documented[fact] for role in roles), f"{fact} is set by {roles}, README says otherwise"
