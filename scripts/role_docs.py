#!/usr/bin/env python
"""Write docs/roles.md, one variables table per role, from roles/*/meta/argument_specs.yml.

    python scripts/role_docs.py          # rewrite docs/roles.md
    python scripts/role_docs.py --check  # fail if docs/roles.md is not what the specs give
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "roles.md"


def cell(value):
    text = " ".join(value) if isinstance(value, list) else str(value)
    text = re.sub(r"\b[CVOMIE]\(([^)]*)\)", r"`\1`", text)
    return text.replace("|", "\\|").replace("\n", " ")


def show_default(value):
    if isinstance(value, str):
        return f"`{value}`" if value else "`''`"
    return f"`{json.dumps(value)}`"


def render():
    lines = ["# Role variables", "",
             "Generated from `roles/*/meta/argument_specs.yml` by `scripts/role_docs.py`; do not edit by hand.", ""]
    for spec_file in sorted(REPO.glob("roles/*/meta/argument_specs.yml")):
        role = spec_file.parent.parent.name
        main = yaml.safe_load(spec_file.read_text())["argument_specs"]["main"]
        lines += [f"## {role}", "", cell(main.get("short_description", "")), "",
                  "| variable | type | default | description |", "| --- | --- | --- | --- |"]
        for name, option in main.get("options", {}).items():
            kind = option.get("type", "str")
            if kind == "list" and option.get("elements"):
                kind = f"list of {option['elements']}"
            if option.get("required"):
                default = "**required**"
            elif "default" in option:
                default = show_default(option["default"])
            else:
                default = ""
            choices = f" Choices: {', '.join(map(str, option['choices']))}." if option.get("choices") else ""
            lines.append(f"| `{name}` | {kind} | {default.replace('|', chr(92) + '|')} | {cell(option.get('description', ''))}{choices} |")
        lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT.relative_to(REPO)} is out of date: run python scripts/role_docs.py", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
