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
sys.path.insert(0, str(REPO / "collections"))

# The preflight's rules name the variables they read (plugins/module_utils/preflight/rules.py).
from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight import rules as preflight_rules  # noqa: E402


def cell(value):
    text = " ".join(value) if isinstance(value, list) else str(value)
    text = re.sub(r"\b[CVOMIE]\(([^)]*)\)", r"`\1`", text)
    return text.replace("|", "\\|").replace("\n", " ")


def show_default(value):
    if isinstance(value, str):
        return f"`{value}`" if value else "`''`"
    return f"`{json.dumps(value)}`"


def checked_by(name, by_variable):
    names = by_variable.get(name, [])
    return ", ".join(f"[{n}](#rule-{n})" for n in names)


def render_rules():
    lines = ["## Preflight rules", "",
             "The preflight validates every role's argument spec (types, choices, required) and then runs these "
             "rules over the variables each one names, for the roles the target runs; `(live)` rules ask Google "
             "read-only questions with the run's credentials (`preflight_live_checks`).", "",
             "| rule | checks | applies with | source |", "| --- | --- | --- | --- |"]
    for item in preflight_rules.RULES + preflight_rules.LIVE_RULES:
        applies = ", ".join(item.roles) or "any role"
        if tuple(item.targets) != tuple(preflight_rules.TARGETS):
            applies += f" (targets: {', '.join(item.targets)})"
        lines.append(f"| <a id=\"rule-{item.name}\"></a>`{item.name}` | {cell(item.summary)} | {applies} | "
                     f"{cell(item.source) or '—'} |")
    lines.append("")
    return lines


def render():
    by_variable = preflight_rules.rules_by_variable()
    lines = ["# Role variables", "",
             "Generated from `roles/*/meta/argument_specs.yml` by `scripts/role_docs.py`; do not edit by hand.",
             "The column *checked by* names the preflight rules that read the variable (beyond its argument "
             "spec); they are described [at the end](#preflight-rules).", ""]
    for spec_file in sorted(REPO.glob("roles/*/meta/argument_specs.yml")):
        role = spec_file.parent.parent.name
        main = yaml.safe_load(spec_file.read_text())["argument_specs"]["main"]
        lines += [f"## {role}", "", cell(main.get("short_description", "")), "",
                  "| variable | type | default | description | checked by |", "| --- | --- | --- | --- | --- |"]
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
            lines.append(f"| `{name}` | {kind} | {default.replace('|', chr(92) + '|')} | "
                         f"{cell(option.get('description', ''))}{choices} | {checked_by(name, by_variable)} |")
        lines.append("")
    lines += render_rules()
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
