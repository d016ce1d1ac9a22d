"""triton_helm with helm 3.17 and with helm 4, through the pinned kubernetes.core.helm (6.2.0).

kubernetes.core.helm builds the command line; fake_helm.py has the REAL helm binary of each major parse
those flags (`helm upgrade FLAGS --help`: unknown flags fail, deprecated ones warn) and render the chart,
and creates the objects in an in-memory API server. What needs a real kube-apiserver (helm 4's release
storage, its kstatus `--wait=watcher`, the rollback itself) is not judged here.

Found with helm 4.1: kubernetes.core 6.2.0 sends `upgrade -i ... --wait --atomic`; helm 4 renamed
--atomic to --rollback-on-failure and keeps --atomic on `upgrade` as a deprecated alias (on `install` it
is gone: kubernetes.core#1143, fixed for the `replace` path in #1144). The role uses the upgrade path
only, so both majors install and roll back on failure.
"""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from fake_apiserver import FakeApiServer
from k8s_checks import HELMS
from test_k8s_roles_fake_api import FAKE_HELM, FAST, SCENARIOS
from testlib import run_playbook

# Two or three ansible-playbook runs per case: ~15 s each on a 2-core machine.
pytestmark = pytest.mark.slow

PLAYBOOK = """\
- name: triton_helm
  hosts: all
  gather_facts: false
  roles:
    - rapids.triton_fil.triton_helm
"""


@pytest.mark.parametrize("major", sorted(HELMS))
def test_triton_helm_installs_with_both_helm_majors(tmp_path, major):
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    helm = tmp_path / "helm"
    helm.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_HELM}" "$@"\n')
    helm.chmod(0o755)
    role_vars, setup = SCENARIOS["helm-clusterip"]
    with FakeApiServer() as api:
        kubeconfig = str(api.kubeconfig(tmp_path / "kubeconfig"))
        setup(api)
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"hosts": {"helm-clusterip": {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "triton_fil_kubeconfig": kubeconfig, "gcp_project": "my-project", "triton_helm_binary": str(helm),
            **FAST, **role_vars}}}}))
        env = {"FAKE_HELM_STATE_DIR": str(tmp_path), "FAKE_HELM_REAL": HELMS[major]}
        first = run_playbook(tmp_path / "play.yml", inventory=inventory, env=env, timeout=300)
        assert first.rc == 0, first.stdout[-3000:]
        release = first.result("Install or upgrade the Triton release (atomic, so a failed upgrade rolls back)")
        assert release["changed"] is True
        assert api.get("deployments", "triton-fil", "triton") is not None
        second = run_playbook(tmp_path / "play.yml", inventory=inventory, env=env, timeout=300)
        assert second.rc == 0 and second.changed == 0, second.stdout[-3000:]

    calls = [json.loads(line) for line in (tmp_path / "flags.log").read_text().splitlines()]
    assert len(calls) == 1, "one upgrade: the second run found nothing to change"
    argv, stderr = calls[0]["argv"], calls[0]["stderr"]
    assert calls[0]["rc"] == 0, f"{major} refused the flags of kubernetes.core.helm: {stderr}"
    assert argv[:2] == ["upgrade", "-i"] and {"--atomic", "--wait", "--reset-values", "--create-namespace"} <= set(argv)
    if major == "helm4":
        assert stderr.strip() == "Flag --atomic has been deprecated, use --rollback-on-failure instead"
    else:
        assert stderr.strip() == ""
