# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""deployment_preflight on the controller: every role's argument spec and the rules, then the module.

For each role the target runs, every option of its ``meta/argument_specs.yml`` is resolved as the role
would see it: the host's variable when set (inventory, extra vars), else the role's ``defaults/main.yml``,
templated with the role's defaults underneath the host's variables (a role's defaults are visible only
inside it). Each role's spec is validated option by option with Ansible's own ArgumentSpecValidator (what
``validate_argument_spec`` runs when the role starts), so every type, choice and required error of every
role is listed at once; the valid values go through the collection's rules; the module then validates the
model repository, the credentials and asks the live questions. One failure lists everything.
"""

from __future__ import annotations

import os
import re

from ansible.errors import AnsibleError, AnsibleUndefinedVariable
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.vars import combine_vars

from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight import rules as preflight_rules
from ansible_collections.rapids.triton_fil.plugins.module_utils.preflight.targets import (
    DEFAULT_TARGET, OPTIONAL_ROLES, SHARED_VARIABLES, TARGETS, later_facts, roles_for,
)

ROLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")
UNDEFINED_RE = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)' is undefined")
SECRET = "<set>"


def _mentions(value, names):
    """Names of `names` that the (raw, untemplated) value's templates mention."""
    if isinstance(value, str):
        return {n for n in names if "{{" in value and re.search(rf"\b{re.escape(n)}\b", value)}
    if isinstance(value, dict):
        return set().union(*(_mentions(v, names) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(_mentions(v, names) for v in value)) if value else set()
    return set()


def _plain(value):
    """Plain Python containers for the validator and the module (templated data may carry tags)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def _load(self, path):
        if not os.path.isfile(path):
            return {}
        try:
            data = self._loader.load_from_file(path, trusted_as_template=True)
        except TypeError:  # ansible-core < 2.19 trusts every template
            data = self._loader.load_from_file(path)
        return data or {}

    def _spec(self, role):
        specs = self._load(os.path.join(ROLES_DIR, role, "meta", "argument_specs.yml"))
        return ((specs.get("argument_specs") or {}).get("main") or {}).get("options") or {}

    def _template(self, templar, value):
        return _plain(templar.template(value))

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        given = dict(args.pop("settings", None) or {})
        templar = self._templar.copy_with_new_env(available_variables=task_vars)

        target, failure = self._target(args, given, task_vars, templar)
        if failure:
            return dict(result, failed=True, **failure)
        roles = list(args.pop("roles", None) or roles_for(target, self._switches(given, task_vars, templar)))
        later = later_facts(roles)

        resolution = self._resolve_roles(roles, given, task_vars, later)
        # Variables a rule of this run reads that belong to a role outside it (a role checking itself alone
        # still compares with triton_helm_gcp_service_account): as the inventory sets them, if it does.
        outside = {v for item in preflight_rules.applicable(roles, target) for v in item.variables}
        resolution.add_inventory(sorted(set(SHARED_VARIABLES) | outside), templar)
        values, sources = resolution.values, resolution.sources
        values["triton_fil_target"] = target

        spec_and_rules, failing = _findings(resolution, roles, target)
        module_settings = {k: (SECRET if k in resolution.secrets and v not in (None, "") else v)
                           for k, v in values.items()}
        module_args = dict(args, settings=module_settings, target=target, roles=roles, skip=sorted(failing))
        module_result = self._execute_module(
            module_name="rapids.triton_fil.deployment_preflight", module_args=module_args, task_vars=task_vars)
        if module_result.get("failed") and "problems" not in module_result:
            return dict(result, **module_result)

        all_problems = sorted(set(spec_and_rules) | set(module_result.get("problems") or []))
        result.update({k: v for k, v in module_result.items() if k not in ("failed", "msg", "invocation")})
        result.update(changed=False, problems=all_problems, roles=roles, target=target,
                      checked=sorted(values), later=sorted(n for n, s in sources.items() if s == "later"))
        if all_problems:
            listed = "\n- ".join(all_problems)
            result.update(failed=True,
                          msg=f"deployment_preflight: {len(all_problems)} problem(s) — nothing was changed:\n- {listed}")
        else:
            result["msg"] = (f"preflight passed: {len(values)} variables of {', '.join(roles)} checked "
                             f"(target {target}; {len(preflight_rules.applicable(roles, target))} rules"
                             f"{', live checks' if args.get('live_checks') else ''})")
        return result

    def _target(self, args, given, task_vars, templar):
        """(the deployment target, None), or (None, the failed result's problems and msg)."""
        target = args.get("target") or given.get("triton_fil_target")
        if not target:
            try:
                target = self._template(templar, task_vars.get("triton_fil_target", DEFAULT_TARGET))
            except AnsibleError as exc:
                return None, {"msg": f"deployment_preflight: triton_fil_target cannot be read: {exc}"}
        if target not in TARGETS:
            return None, {
                "problems": [
                    f"triton_fil_target: {target!r} is not a deployment target — use one of: {', '.join(TARGETS)}"],
                "msg": f"deployment_preflight: triton_fil_target {target!r} is not one of {', '.join(TARGETS)} — "
                       "nothing was changed"}
        return target, None

    def _switches(self, given, task_vars, templar):
        """The optional roles' on/off variables as set (None when one cannot be templated)."""
        switches = {}
        for variable, _defaults in OPTIONAL_ROLES.values():
            if variable in given:
                switches[variable] = given[variable]
            elif variable in task_vars:
                try:
                    switches[variable] = self._template(templar, task_vars[variable])
                except AnsibleError:
                    switches[variable] = None
        return switches

    def _resolve_roles(self, roles, given, task_vars, later):
        """Every option of every role's spec, resolved, templated and validated."""
        resolution = _Resolution(given, task_vars, later, self._template)
        for role in roles:
            options = self._spec(role)
            defaults = self._load(os.path.join(ROLES_DIR, role, "defaults", "main.yml"))
            role_templar = self._templar.copy_with_new_env(available_variables=combine_vars(defaults, task_vars))
            for name, option in options.items():
                resolution.resolve(role, name, option, defaults, role_templar)
        resolution.report_missing()
        return resolution


_UNRESOLVED = object()


class _Resolution:
    """The valid values of a run's role options, where each came from, and what is wrong with the others."""

    def __init__(self, given, task_vars, later, template):
        self.given, self.task_vars, self.later, self.template = given, task_vars, later, template
        # variable -> {message: [roles whose spec says so]}; the raw value of each variable (what it mentions).
        self.problems, self.values, self.sources, self.secrets, self.raws = {}, {}, {}, set(), {}
        self.missing_required = {}

    def add(self, variable, message, role=None):
        self.problems.setdefault(variable, {}).setdefault(message, [])
        if role and role not in self.problems[variable][message]:
            self.problems[variable][message].append(role)

    def resolve(self, role, name, option, defaults, templar):
        """One option of one role's spec: its raw value, templated, validated against the option."""
        if option.get("no_log"):
            self.secrets.add(name)
        picked = self._raw(role, name, option, defaults)
        if picked is None:
            return
        raw, source = picked
        self.raws.setdefault(name, raw)
        if _mentions(raw, self.later):
            self.sources.setdefault(name, "later")
            return
        value = self._templated(role, name, raw, templar)
        if value is _UNRESOLVED:
            return
        if option.get("required") and value in (None, ""):
            self.missing_required.setdefault(name, []).append(role)
            return
        checked = ArgumentSpecValidator({name: option}).validate({name: value})
        if checked.error_messages:
            for message in checked.error_messages:
                self.add(name, _option_message(name, option, message, secret=name in self.secrets), role)
            return
        if name not in self.values or (self.sources.get(name) == "default" and source == "inventory"):
            self.values[name] = checked.validated_parameters.get(name, value)
            self.sources[name] = source

    def _raw(self, role, name, option, defaults):
        """(raw value, source) of an option, or None when it is set later by the run or not at all."""
        if name in self.given:
            return self.given[name], "inventory"
        if name in self.later:
            self.sources.setdefault(name, "later")
            return None
        if name in self.task_vars:
            return self.task_vars[name], "inventory"
        if name in defaults:
            return defaults[name], "default"
        if option.get("required"):
            self.missing_required.setdefault(name, []).append(role)
        return None

    def _templated(self, role, name, raw, templar):
        """The templated value, or _UNRESOLVED when it reads a later or missing variable or cannot be templated."""
        try:
            return self.template(templar, raw)
        except AnsibleUndefinedVariable as exc:
            found = UNDEFINED_RE.search(str(exc))
            undefined = found.group(1) if found else None
            if undefined in self.later:
                self.sources.setdefault(name, "later")
            elif undefined:
                self.missing_required.setdefault(undefined, []).append(f"{role} (for {name})")
            else:
                self.add(name, f"cannot be templated: {exc} — fix the expression")
        except AnsibleError as exc:
            self.add(name, f"cannot be templated: {exc} — fix the expression")
        return _UNRESOLVED

    def report_missing(self):
        """A problem for each required variable no role's resolution gave a value."""
        for name, needers in self.missing_required.items():
            if self.values.get(name) in (None, ""):
                self.values.pop(name, None)
                self.add(name, f"is not set, but {', '.join(dict.fromkeys(needers))} need(s) it — set {name} in the "
                               "inventory")

    def add_inventory(self, names, templar):
        """The values of `names` as the inventory sets them, for those not resolved, failing or set later."""
        for name in names:
            raw = self.given.get(name, self.task_vars.get(name))
            if name in self.values or name in self.problems or raw is None or name in self.later:
                continue
            self.raws.setdefault(name, raw)
            try:
                self.values[name] = self.template(templar, raw)
                self.sources[name] = "inventory"
            except AnsibleError:
                continue


def _findings(resolution, roles, target):
    """The spec and rule problems as "variable: message" lines, and every variable that fails."""
    problems, values = resolution.problems, resolution.values
    rule_problems = preflight_rules.run(
        {k: v for k, v in values.items() if k not in problems}, roles=roles, target=target,
        sources=resolution.sources)
    found = [(variable, _with_roles(message, owners))
             for variable in problems for message, owners in problems[variable].items()]
    found += [(variable, message) for variable, message, _rule in rule_problems]
    # A value derived from a bad variable (`{{ gcp_project }}-triton-models`, a default that reads another
    # role's variable) is not reported again: the variable it derives from is named, and fixing it fixes both.
    bad = {variable for variable, _message in found}
    roots = {variable: _mentions(resolution.raws.get(variable), bad - {variable}) for variable in bad}
    spec_and_rules = sorted({f"{variable}: {message}" for variable, message in found if not roots[variable]})
    return spec_and_rules, bad


def _option_message(name, option, message, secret):
    """A validator message for the problem list; a secret's value never goes into a message."""
    if secret:
        wanted = KINDS.get(option.get("type", "str"), "a value")
        return f"is not valid for its argument spec (value hidden: no_log) — give {wanted}"
    return _spec_message(name, option, message)


KINDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "list": "a list", "dict": "a mapping",
         "str": "a string", "path": "a path", "raw": "a value"}


def _spec_message(name, option, message):
    """Ansible's validator message, without the repeated name, with the fix."""
    for prefix in (f"value of {name} ", f"argument '{name}' ", f"{name} "):
        if message.startswith(prefix):
            message = message[len(prefix):]
            break
    if option.get("choices"):
        return message
    kind = option.get("type", "str")
    wanted = KINDS.get(kind, kind)
    if kind == "list" and option.get("elements"):
        wanted = f"a list of {KINDS.get(option['elements'], option['elements'])}s"
    return f"{message} — give {wanted}"


def _with_roles(message, owners):
    return f"{message} (argument spec of {', '.join(owners)})" if owners else message
