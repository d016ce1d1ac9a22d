"""Validate JSON request bodies against a Google API discovery document, the way Google's front end does.

The discovery documents ship in google-api-python-client (googleapiclient/discovery_cache/documents).
Unknown fields and wrong JSON types are rejected with Google's own wording, e.g.
``Invalid JSON payload received. Unknown name "foo" at 'cluster.node_config': Cannot find field.``
proto3 JSON rules apply: int64/uint64 accept numbers or decimal strings, int32 accepts numbers (or
decimal strings), enums must be one of the listed names, maps are objects of the value schema.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import googleapiclient

DOCUMENTS = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"


def snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class Discovery:
    """One API's schemas and methods (id -> (httpMethod, path regex, request schema))."""

    def __init__(self, name):
        self.doc = json.loads((DOCUMENTS / f"{name}.json").read_text())
        self.schemas = self.doc["schemas"]
        self.methods = {}
        # method id -> names of its query/path parameters (plus the API's global parameters)
        self.parameters = {}
        self._collect(self.doc.get("resources", {}))

    def _collect(self, resources):
        common = set(self.doc.get("parameters", {}))
        for resource in resources.values():
            for method in resource.get("methods", {}).values():
                self.parameters[method["id"]] = common | set(method.get("parameters", {}))
                path = method.get("flatPath") or method["path"]
                pattern = "^/" + re.sub(r"\\\{[^}]+\\\}", r"([^/:]+)", re.escape(path)) + "$"
                request = (method.get("request") or {}).get("$ref")
                self.methods[method["id"]] = (method["httpMethod"], re.compile(pattern), request)
            self._collect(resource.get("resources", {}))

    def match(self, http_method, path):
        """(method id, path parameters, request schema name) for a request, or None."""
        for method_id, (verb, pattern, request) in self.methods.items():
            if verb != http_method:
                continue
            found = pattern.match(path)
            if found:
                return method_id, found.groups(), request
        return None

    def validate(self, schema_name, body):
        """Problems (Google-worded) of body against the named schema; [] when valid."""
        if not isinstance(body, dict):
            return [f"Invalid JSON payload received. Expected an object for {schema_name}."]
        problems = []
        self._check_object(self.schemas[schema_name], body, "", problems)
        return problems

    def _check_object(self, schema, value, where, problems):
        properties = schema.get("properties", {})
        for key, item in value.items():
            spec = properties.get(key)
            if spec is None:
                at = f" at '{where}'" if where else ""
                problems.append(f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.')
                continue
            self._check_value(spec, item, f"{where}.{snake(key)}" if where else snake(key), problems)

    def _resolve(self, spec):
        return self.schemas[spec["$ref"]] if "$ref" in spec else spec

    def _check_value(self, spec, value, where, problems):
        if value is None:
            return
        spec = self._resolve(spec)
        kind = spec.get("type")
        bad = f"Invalid value at '{where}'"
        if kind == "object" and "additionalProperties" in spec:
            if not isinstance(value, dict):
                problems.append(f"{bad}: Starting an object on a scalar field")
                return
            for key, item in value.items():
                self._check_value(spec["additionalProperties"], item, f"{where}[{key}]", problems)
        elif kind == "object" or "properties" in spec:
            if not isinstance(value, dict):
                problems.append(f"{bad}: Starting an object on a scalar field")
                return
            self._check_object(spec, value, where, problems)
        elif kind == "array":
            if not isinstance(value, list):
                problems.append(f"{bad}: Proto field is not repeating, cannot start list.")
                return
            for index, item in enumerate(value):
                self._check_value(spec["items"], item, f"{where}[{index}]", problems)
        elif kind == "boolean":
            if not isinstance(value, bool):
                problems.append(f"{bad} (TYPE_BOOL), {json.dumps(value)}")
        elif kind == "integer" or (kind == "string" and spec.get("format") in ("int64", "uint64")):
            if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and re.fullmatch(r"-?\d+", value))):
                problems.append(f"{bad} (TYPE_INT64), {json.dumps(value)}")
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                problems.append(f"{bad} (TYPE_DOUBLE), {json.dumps(value)}")
        elif kind == "string":
            if not isinstance(value, str):
                problems.append(f"{bad} (TYPE_STRING), {json.dumps(value)}")
            elif "enum" in spec and value not in spec["enum"]:
                problems.append(f"{bad} (TYPE_ENUM), {json.dumps(value)}")

    # ------------------------------------------------------------------ responses
    def render(self, schema_name, value):
        """value as Google's proto3 JSON printer emits a message of this schema.

        Scalars at their default (0, false, "", the first enum value), empty lists and empty maps
        are dropped; int64/uint64 become decimal strings; sub-messages stay, even when empty (they
        have presence). Keys the schema does not know raise: a simulator must not answer fields GKE
        cannot send.
        """
        return self._render_object(self.schemas[schema_name], value, schema_name)

    def _render_object(self, schema, value, where):
        out = {}
        properties = schema.get("properties", {})
        for key, item in value.items():
            spec = properties.get(key)
            if spec is None:
                raise KeyError(f"{where}.{key} is not a field of the discovery document's schema")
            rendered = self._render_value(spec, item, f"{where}.{key}")
            if rendered is not _DROP:
                out[key] = rendered
        return out

    def _render_value(self, spec, value, where):
        if value is None:
            return _DROP
        is_message = "$ref" in spec
        spec = self._resolve(spec)
        kind = spec.get("type")
        if kind == "object" and "additionalProperties" in spec:
            items = {k: self._render_value(spec["additionalProperties"], v, f"{where}[{k}]") for k, v in value.items()}
            items = {k: v for k, v in items.items() if v is not _DROP}
            return items or _DROP
        if is_message or kind == "object" or "properties" in spec:
            return self._render_object(spec, value, where)
        if kind == "array":
            items = [self._render_value(spec["items"], v, f"{where}[]") for v in value]
            items = [v for v in items if v is not _DROP]
            return items or _DROP
        if kind == "boolean":
            return bool(value) or _DROP
        if kind == "integer":
            return int(value) or _DROP
        if kind == "string" and spec.get("format") in ("int64", "uint64"):
            return str(int(value)) if int(value) else _DROP
        if kind == "number":
            return value or _DROP
        if kind == "string" and "enum" in spec and value == spec["enum"][0]:
            return _DROP
        return value if value != "" else _DROP


_DROP = object()
