"""The collection's own rules, checked on every module and role (not a substitute for ansible-test sanity)."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from unittest import mock

import pytest
import yaml

from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.spec import gcp_argument_spec
from testlib import REPO

MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir())


def module_source(name):
    return (REPO / "plugins" / "modules" / f"{name}.py").read_text()


def doc_blocks(name):
    tree = ast.parse(module_source(name))
    blocks = {node.targets[0].id: node.value.value for node in tree.body
              if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
              and node.targets[0].id in ("DOCUMENTATION", "EXAMPLES", "RETURN")}
    return blocks


def test_there_are_modules_and_roles():
    assert {"gcs_bucket", "gcs_sync", "triton_model_repository", "triton_verify"} <= set(MODULES)
    assert {"gcs_models", "verify"} <= set(ROLES)


@pytest.mark.parametrize("name", MODULES)
def test_module_documents_itself_and_supports_check_mode(name):
    blocks = doc_blocks(name)
    assert set(blocks) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    doc = yaml.safe_load(blocks["DOCUMENTATION"])
    assert doc["module"] == name and doc["short_description"]
    # check_mode and diff_mode come from the attributes doc fragment; a module overrides only what differs.
    assert "rapids.triton_fil.attributes" in doc.get("extends_documentation_fragment", []), name
    assert yaml.safe_load(blocks["EXAMPLES"]), "EXAMPLES must hold at least one task"
    used = [key for task in yaml.safe_load(blocks["EXAMPLES"]) for key in task]
    assert f"rapids.triton_fil.{name}" in used, "EXAMPLES must call the module by its FQCN"
    assert isinstance(yaml.safe_load(blocks["RETURN"]), dict)
    assert "supports_check_mode=True" in module_source(name)


def test_ansible_doc_renders_every_module():
    names = [f"rapids.triton_fil.{m}" for m in MODULES]
    out = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-doc"), "-j", *names], cwd=REPO,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    rendered = json.loads(out.stdout)
    assert sorted(rendered) == sorted(names)
    for name, doc in rendered.items():
        assert doc["doc"]["description"], name
        attributes = doc["doc"]["attributes"]
        assert attributes["check_mode"]["support"] in ("full", "partial"), name
        assert attributes["diff_mode"]["support"] in ("full", "partial", "none"), name
        assert all(a.get("description") for a in attributes.values()), name


def test_action_group_lists_existing_modules():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    for group, members in runtime.get("action_groups", {}).items():
        missing = [m for m in members if isinstance(m, str) and m not in MODULES]
        assert not missing, f"action group {group} names missing modules {missing}"


def test_gcp_action_group_is_exactly_the_modules_with_the_shared_google_options():
    """module_defaults for group/rapids.triton_fil.gcp reaches every module taking the gcp options and no other
    (kubernetes.core keeps the same promise in tests/unit/test_action_groups.py)."""
    group = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["action_groups"]["gcp"]
    documented = [m for m in MODULES if "rapids.triton_fil.gcp" in
                  (yaml.safe_load(doc_blocks(m)["DOCUMENTATION"]).get("extends_documentation_fragment") or [])]
    shared = set(gcp_argument_spec())
    specified = [m for m in MODULES if shared <= set(argument_spec_of(m))]
    assert sorted(group) == documented == specified


class _Built(Exception):
    """Raised by the stand-in AnsibleModule with the argument spec a module's main() built."""


def argument_spec_of(name):
    """The argument spec module ``name`` builds, however it builds it (its main() up to AnsibleModule)."""
    module = importlib.import_module(f"ansible_collections.rapids.triton_fil.plugins.modules.{name}")

    def stand_in(argument_spec, **_kwargs):
        raise _Built(argument_spec)

    with mock.patch.object(module, "AnsibleModule", stand_in), pytest.raises(_Built) as built:
        module.main()
    return built.value.args[0]


@pytest.mark.parametrize("role", ROLES)
def test_role_argument_specs_cover_every_default(role):
    root = REPO / "roles" / role
    specs = yaml.safe_load((root / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options = specs["main"]["options"]
    defaults = yaml.safe_load((root / "defaults" / "main.yml").read_text()) or {}
    assert sorted(set(defaults) - set(options)) == [], "defaults without an argument spec"
    for name, spec in options.items():
        assert name.startswith(f"{role}_") or name.startswith(("gcp_", "triton_fil_")), name
        assert spec.get("description"), f"{role}: {name} has no description"
        if name in defaults and "default" in spec and "{{" not in str(defaults[name]):
            assert spec["default"] == defaults[name], f"{role}: {name} default differs from defaults/main.yml"


@pytest.mark.parametrize("role", ROLES)
def test_roles_use_modules_not_shell(role):
    for path in (REPO / "roles" / role).rglob("*.yml"):
        text = path.read_text()
        for forbidden in ("ansible.builtin.shell", "ansible.builtin.command", "\n  shell:", "\n  command:"):
            assert forbidden not in text, f"{path.relative_to(REPO)} uses {forbidden.strip()}"


def test_role_variable_tables_are_current():
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "role_docs.py"), "--check"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


GOOGLE_CREDENTIALS = ("auth_kind", "service_account_file", "access_token")


def google_tasks(tasks, inherited=()):
    """(task name, credential options it gets) of every gcp-group module task that calls Google, blocks walked
    with their module_defaults for group/rapids.triton_fil.gcp (a preflight of the rules alone calls nobody)."""
    group = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["action_groups"]["gcp"]
    for task in tasks or []:
        defaults = (task.get("module_defaults") or {}).get("group/rapids.triton_fil.gcp") or {}
        given = tuple(inherited) + tuple(defaults)
        for key in ("block", "rescue", "always"):
            yield from google_tasks(task.get(key), given)
        for module in group:
            args = task.get(f"rapids.triton_fil.{module}")
            rules_only = module == "deployment_preflight" and not {"check_credentials", "live_checks"} & set(args or {})
            if isinstance(args, dict) and not rules_only:
                yield task.get("name"), set(given) | set(args)


@pytest.mark.parametrize("role", ROLES)
def test_every_google_task_gets_the_credentials(role):
    """The roles pass gcp_auth_kind/gcp_service_account_file/gcp_access_token to every Google module, on the
    task or once for a block through module_defaults with the gcp action group."""
    for path in sorted((REPO / "roles" / role / "tasks").glob("*.yml")):
        for name, options in google_tasks(yaml.safe_load(path.read_text())):
            missing = [o for o in GOOGLE_CREDENTIALS if o not in options]
            assert not missing, f"{path.relative_to(REPO)}: task {name!r} does not get {missing}"
