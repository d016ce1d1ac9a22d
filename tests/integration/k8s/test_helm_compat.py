"""roles/triton_helm/files/helm-compat.sh with the real helm 3.17 and helm 4 binaries.

What the pinned kubernetes.core.helm (6.2.0) sends or parses that helm 4 changed, each checked against the
real binaries: `helm list --output=yaml --filter NAME --all` (helm 4 removed --all: helm/helm#31784),
`--atomic` on upgrade/install (renamed --rollback-on-failure, the old name a deprecated alias:
kubernetes.core#1143) and `helm plugin list` (six columns in helm 4, which kubernetes.core's parser cannot
unpack: kubernetes.core#1041). The major comes from `helm version`, not from the binary's name. No cluster is
needed: the kubeconfig points at a closed port, so a command that got past flag parsing fails as unreachable.
The release-level behaviour is in tests/integration/rehearsal/test_helm_majors.py.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from k8s_checks import HELMS
from testlib import REPO

COMPAT = REPO / "roles" / "triton_helm" / "files" / "helm-compat.sh"
LIST = ["list", "--output=yaml", "--filter", "triton-fil", "--all"]


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory):
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "closed",
        "clusters": [{"name": "closed", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "closed", "user": {"token": "none"}}],
        "contexts": [{"name": "closed", "context": {"cluster": "closed", "user": "closed"}}]}))
    return path


def run(command, kubeconfig, real=None, **extra):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(kubeconfig.parent), "KUBECONFIG": str(kubeconfig), **extra}
    if real:
        env["TRITON_FIL_HELM"] = str(real)
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=60)


def test_helm4_itself_refuses_what_kubernetes_core_asks(kubeconfig):
    proc = run([HELMS["helm4"], *LIST], kubeconfig)
    assert proc.returncode != 0 and "unknown flag: --all" in proc.stderr, proc.stderr


@pytest.mark.parametrize("major", sorted(HELMS))
def test_the_wrapper_lists_with_either_major(kubeconfig, major):
    proc = run([str(COMPAT), *LIST], kubeconfig, real=HELMS[major])
    assert "unknown flag" not in proc.stderr, proc.stderr
    assert "Kubernetes cluster unreachable" in proc.stderr or "connection refused" in proc.stderr, proc.stderr


@pytest.mark.parametrize("major", sorted(HELMS))
def test_the_wrapper_passes_everything_else(kubeconfig, major):
    proc = run([str(COMPAT), "version", "--template", "{{ .Version }} {{ .GoVersion }}"], kubeconfig,
               real=HELMS[major])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("v4." if major == "helm4" else "v3.17."), proc.stdout
    assert " go1." in proc.stdout, "an argument with spaces arrives whole"


def unreachable(proc):
    return "Kubernetes cluster unreachable" in proc.stderr or "kubernetes cluster unreachable" in proc.stderr


UPGRADE = ["upgrade", "-i", "triton-fil", str(REPO / "roles" / "triton_helm" / "files" / "triton"), "--atomic",
           "--wait", "--timeout", "5s"]


def test_helm4_itself_warns_on_the_atomic_kubernetes_core_sends(kubeconfig):
    proc = run([HELMS["helm4"], *UPGRADE], kubeconfig)
    assert "Flag --atomic has been deprecated, use --rollback-on-failure instead" in proc.stderr, proc.stderr


@pytest.mark.parametrize("major", sorted(HELMS))
def test_the_wrapper_sends_each_major_its_own_rollback_flag(kubeconfig, major):
    proc = run([str(COMPAT), *UPGRADE], kubeconfig, real=HELMS[major])
    assert "deprecated" not in proc.stderr and "unknown flag" not in proc.stderr, proc.stderr
    assert unreachable(proc), proc.stderr


def test_the_major_comes_from_helm_version_not_the_file_name(kubeconfig, tmp_path):
    """helm 4 installed as plain `helm` (what a package manager does) still gets the helm 4 treatment."""
    named_helm = tmp_path / "helm"
    named_helm.symlink_to(HELMS["helm4"])
    for command in (LIST, UPGRADE):
        proc = run([str(COMPAT), *command], kubeconfig, real=named_helm)
        assert "unknown flag" not in proc.stderr and "deprecated" not in proc.stderr, proc.stderr
        assert unreachable(proc), proc.stderr


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    """A plugin folder with one (legacy, CLI) plugin, as `helm plugin install` leaves it."""
    root = tmp_path_factory.mktemp("helm_plugins")
    (root / "probe").mkdir()
    (root / "probe" / "plugin.yaml").write_text(yaml.safe_dump({
        "name": "probe", "version": "0.1.0", "usage": "does nothing", "description": "does nothing",
        "command": "$HELM_PLUGIN_DIR/probe.sh"}))
    return root


def kubernetes_core_plugins(stdout):
    from ansible_collections.kubernetes.core.plugins.module_utils.helm import (  # pylint: disable=import-outside-toplevel
        parse_helm_plugin_list,
    )
    return parse_helm_plugin_list(stdout.splitlines())


def test_kubernetes_core_cannot_parse_helm4s_plugin_list(kubeconfig, plugins):
    proc = run([HELMS["helm4"], "plugin", "list"], kubeconfig, HELM_PLUGINS=str(plugins))
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(ValueError, match="too many values to unpack"):
        kubernetes_core_plugins(proc.stdout)


@pytest.mark.parametrize("major", sorted(HELMS))
def test_the_wrapper_lists_plugins_as_kubernetes_core_reads_them(kubeconfig, plugins, major):
    proc = run([str(COMPAT), "plugin", "list"], kubeconfig, real=HELMS[major], HELM_PLUGINS=str(plugins))
    assert proc.returncode == 0, proc.stderr
    [(name, version, _description)] = kubernetes_core_plugins(proc.stdout)
    assert (name, version) == ("probe", "0.1.0")
