"""A stand-in for the helm binary, for kubernetes.core.helm against the in-memory API server.

kubernetes.core.helm runs `helm version`, `plugin list`, `show chart`, `list`, `get values` and
`upgrade -i`. This script answers them from a release state file per API server
(FAKE_HELM_STATE_DIR/<server port>.json; the module hands helm a temporary copy of the kubeconfig);
`upgrade` first has the real helm parse the flags (`helm upgrade FLAGS --help`: an unknown flag fails
as it would, a deprecated one warns; FAKE_HELM_REAL picks helm 3 or helm 4), then renders the chart
with the real helm (`helm template`, so the
chart, its values schema and its templates are the real ones) and creates or replaces every object in
the API server named by the kubeconfig. It does not wait or roll back: the fake API server has no
controllers, the tests set the objects' status themselves.
Usage (through a generated wrapper): python fake_helm.py <helm arguments>
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_apiserver import collection_path  # noqa: E402  pylint: disable=wrong-import-position

# The real helm that renders the chart and checks the flags: helm 3.17 by default, FAKE_HELM_REAL=.../helm4 for 4.
REAL_HELM = os.environ.get("FAKE_HELM_REAL") or str(Path(__file__).resolve().parents[3] / ".tools" / "bin" / "helm")
VALUE_FLAGS = {"-f", "--values", "-n", "--namespace", "--timeout", "--kubeconfig", "--output", "--filter",
               "--kube-context", "--history-max"}


def parse(argv):
    flags, positional, i = {}, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-"):
            if "=" in arg:
                key, value = arg.split("=", 1)
            elif arg in VALUE_FLAGS:
                key, value = arg, argv[i + 1]
                i += 1
            else:
                key, value = arg, True
            flags.setdefault(key, []).append(value)
        else:
            positional.append(arg.strip("'"))
        i += 1
    return flags, positional


def request(server, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def main(argv):
    kubeconfig = os.environ.get("KUBECONFIG", "")
    server = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
    state_file = Path(os.environ["FAKE_HELM_STATE_DIR"]) / f"{server.rsplit(':', 1)[1]}.json"
    state = json.loads(state_file.read_text()) if state_file.is_file() else {"releases": {}, "upgrades": 0}
    flags, positional = parse(argv)
    namespace = (flags.get("--namespace") or flags.get("-n") or [os.environ.get("HELM_NAMESPACE", "default")])[0]
    command = positional[:2]

    if command[:1] == ["version"] or command[:1] == ["show"]:
        return subprocess.run([REAL_HELM, *argv], check=False).returncode
    if command == ["plugin", "list"]:
        print("NAME\tVERSION\tDESCRIPTION")
        return 0
    if command[:1] == ["list"]:
        name = flags.get("--filter", [""])[0]
        releases = [{k: v for k, v in r.items() if k != "values"} for r in state["releases"].values()
                    if r["namespace"] == namespace and name in r["name"]]
        print(yaml.safe_dump(releases))
        return 0
    if command == ["get", "values"]:
        release = state["releases"].get(positional[2])
        print(yaml.safe_dump(release["values"]) if release and release["values"] else "null")
        return 0
    if command[:1] in (["upgrade"], ["install"]):
        # The real binary's own flag parser judges the flags kubernetes.core.helm sent: `--help` after them
        # parses every flag (an unknown one fails, a deprecated one warns on stderr) and runs nothing.
        parsed = subprocess.run([REAL_HELM, *argv, "--help"], capture_output=True, text=True, check=False)
        with open(Path(os.environ["FAKE_HELM_STATE_DIR"]) / "flags.log", "a", encoding="utf-8") as log:
            log.write(json.dumps({"argv": argv, "rc": parsed.returncode, "stderr": parsed.stderr}) + "\n")
        if parsed.returncode != 0:
            sys.stderr.write(parsed.stderr)
            return parsed.returncode
        sys.stderr.write(parsed.stderr)  # the deprecation warnings helm itself would print
        release_name, chart = positional[1], positional[2]
        values_files = flags.get("-f", []) + flags.get("--values", [])
        args = [REAL_HELM, "template", release_name, chart, "--namespace", namespace]
        for values_file in values_files:
            args += ["-f", values_file]
        rendered = subprocess.run(args, capture_output=True, text=True, check=False)
        if rendered.returncode != 0:
            sys.stderr.write(rendered.stderr)
            return rendered.returncode
        if "--create-namespace" in flags:
            request(server, "POST", "/api/v1/namespaces",
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        for obj in (d for d in yaml.safe_load_all(rendered.stdout) if d):
            obj["metadata"].setdefault("namespace", namespace)
            path = collection_path(obj)
            if request(server, "POST", path, obj) == 409:
                request(server, "PUT", f"{path}/{obj['metadata']['name']}", obj)
        values = {}
        for values_file in values_files:
            values.update(yaml.safe_load(Path(values_file).read_text()) or {})
        chart_meta = yaml.safe_load((Path(chart) / "Chart.yaml").read_text())
        previous = state["releases"].get(release_name, {})
        state["releases"][release_name] = {
            "name": release_name, "namespace": namespace, "revision": str(int(previous.get("revision", 0)) + 1),
            "updated": "2026-01-01 00:00:00.000000000 +0000 UTC", "status": "deployed",
            "chart": f"{chart_meta['name']}-{chart_meta['version']}", "app_version": chart_meta.get("appVersion", ""),
            "values": values}
        state["upgrades"] += 1
        state_file.write_text(json.dumps(state))
        print(f'Release "{release_name}" has been upgraded. Happy Helming!')
        return 0
    sys.stderr.write(f"fake helm: unsupported command {argv}\n")
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
