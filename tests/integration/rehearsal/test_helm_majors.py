"""triton_helm with helm 3.17 and helm 4 against the rehearsal's real control plane.

One release of its own (namespace and release ``triton-majors``, made by the cluster's creator: the deployer's
RBAC covers namespace ``triton`` only) goes through both majors: installed by helm 3, read by helm 4 without a
write, upgraded by helm 4 (its kstatus ``--wait=watcher`` watches every kind of the release, the GMP Rules and
PodMonitoring custom resources too), read back by helm 3, a failed upgrade rolled back by helm 4, and
uninstalled by helm 4 with ``--wait`` as teardown.yml does. The rehearsal's own release is left alone.

Found here, not with the in-memory API server: the pinned kubernetes.core.helm (6.2.0) runs
``helm list --all`` after every install or upgrade and before every uninstall, and helm 4 removed --all,
so with helm 4 every change failed after the release was written and no uninstall ran. The role's
files/helm-compat.sh leaves it out for helm 4, as kubernetes.core 6.4.0 does (kubernetes.core#1090), sends
--rollback-on-failure for --atomic (kubernetes.core#1143), and prints ``helm plugin list`` as helm 3 does
(kubernetes.core#1041): the helm 4 runs here have a plugin installed, so the module's plugin check runs on
helm 4's output. tests/integration/k8s/test_helm_compat.py checks each of these flag by flag.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from rehearsal_lib import HELM3, HELM4, admin_client, control, helm, image_and_models, kubeconfig_of, role, wait_until
from testlib import REPO, run_playbook

pytestmark = [pytest.mark.slow, pytest.mark.rehearsal]

NAME = "triton-majors"
TASK = "Install or upgrade the Triton release (atomic, so a failed upgrade rolls back)"
UNINSTALL = textwrap.dedent("""
    - hosts: localhost
      gather_facts: false
      tasks:
        - name: Uninstall the Triton release
          kubernetes.core.helm:
            release_name: "{{ name }}"
            release_namespace: "{{ name }}"
            state: absent
            wait: true
            binary_path: "{{ repo }}/roles/triton_helm/files/helm-compat.sh"
            kubeconfig: "{{ kubeconfig }}"
            context: "{{ context }}"
          environment:
            TRITON_FIL_HELM: "{{ helm }}"
""")  # the task of playbooks/teardown.yml, without the cluster's deletion that follows it there


@pytest.fixture(scope="module")
def release(rehearsal, converged, tmp_path_factory):
    """Runs triton_helm on the release of this module with a helm binary; the namespace goes at the end."""
    image, models = image_and_models(rehearsal)
    tmp_path = tmp_path_factory.mktemp("helm_majors")

    plugins = tmp_path / "helm_plugins"  # one plugin installed, as users of helm-diff have
    (plugins / "probe").mkdir(parents=True)
    (plugins / "probe" / "plugin.yaml").write_text(
        'name: probe\nversion: 0.1.0\nusage: none\ndescription: none\ncommand: "$HELM_PLUGIN_DIR/probe.sh"\n')

    def run(binary, **extra):
        env = {**rehearsal, "HELM_PLUGINS": str(plugins)}
        # The rehearsal records the HPA's series for namespace triton only: no wait for it here.
        values = {"triton_helm_hpa_timeout": 0, "triton_helm_timeout": 120, **extra}
        return role(env, "triton_helm", tmp_path, triton_helm_binary=str(binary), triton_helm_image=image,
                    triton_helm_model_repository_uri=models, triton_helm_namespace=NAME, triton_helm_release=NAME,
                    **values)

    yield run
    import kubernetes  # pylint: disable=import-outside-toplevel
    if NAME in helm(rehearsal, "list", "-n", NAME, "-q"):
        helm(rehearsal, "uninstall", NAME, "-n", NAME, "--wait")
    try:
        kubernetes.client.CoreV1Api(admin_client(rehearsal)).delete_namespace(NAME)
    except kubernetes.client.ApiException as exc:
        if exc.status != 404:
            raise


def history(env, binary=HELM3):
    return json.loads(helm(env, "history", NAME, "-n", NAME, "-o", "json", binary=binary))


def quiet(env, run):
    """run() after a mark; asserts it changed nothing and wrote to no server."""
    control(env, "/mark", {})
    result = run()
    assert result.rc == 0 and result.changed == 0, result.stdout[-3000:]
    writes = control(env, "/writes")
    assert not any(writes.values()), writes
    return result


def watched(env):
    """(resource) kinds the creator watched in namespace NAME since the last mark."""
    return {e["resource"] for e in control(env, "/audit")
            if e["verb"] == "watch" and e["namespace"] == NAME and e["user"] == env["TRITON_FIL_CREATOR"]}


def test_helm4_reads_what_helm3_installed_without_writing(rehearsal, release):
    control(rehearsal, "/mark", {})
    first = release(HELM3)
    assert first.rc == 0, first.stdout[-3000:]
    assert first.result(TASK)["changed"] is True
    assert watched(rehearsal) == set(), "helm 3's --wait polls, it does not watch"
    assert [r["status"] for r in history(rehearsal)] == ["deployed"]
    # kubernetes.core.helm parses helm 4's list and get values of a helm 3 release: nothing to change.
    quiet(rehearsal, lambda: release(HELM4))


def test_helm4_upgrades_waiting_on_every_object_and_helm3_reads_it(rehearsal, release):
    control(rehearsal, "/mark", {})
    upgraded = release(HELM4, triton_helm_log_verbose=1)
    assert upgraded.rc == 0, upgraded.stdout[-3000:]
    assert upgraded.result(TASK)["changed"] is True
    assert upgraded.result(TASK)["status"]["status"] == "deployed", "the status after the upgrade is read"
    # kubernetes.core composed --atomic; helm 4 got --rollback-on-failure from the wrapper, so no deprecation.
    assert "--atomic" in upgraded.result(TASK)["command"] and "deprecated" not in upgraded.result(TASK)["stderr"]
    # helm 4's --wait is kstatus's watcher: every kind in the release, the GMP custom resources included.
    assert {"deployments", "services", "horizontalpodautoscalers", "poddisruptionbudgets", "serviceaccounts",
            "podmonitorings", "rules"} <= watched(rehearsal)
    quiet(rehearsal, lambda: release(HELM4, triton_helm_log_verbose=1))
    # helm 3 reads the records helm 4 wrote: the same history, and nothing to change.
    assert history(rehearsal) == history(rehearsal, HELM4)
    assert [r["status"] for r in history(rehearsal)] == ["superseded", "deployed"]
    quiet(rehearsal, lambda: release(HELM3, triton_helm_log_verbose=1))


def test_helm4_rolls_a_failed_upgrade_back(rehearsal, release):
    """helm 4's --rollback-on-failure (the --atomic kubernetes.core sends): 8 GPUs per pod never schedule."""
    failed = release(HELM4, triton_helm_log_verbose=1, triton_helm_gpu_count=8, triton_helm_timeout=15)
    assert failed.rc != 0
    msg = failed.result(TASK)["msg"]
    assert "has been rolled back due to rollback-on-failure being set" in msg, msg
    after = history(rehearsal)
    assert [r["status"] for r in after[-2:]] == ["failed", "deployed"]
    assert after[-1]["description"] == f"Rollback to {after[-3]['revision']}"
    import kubernetes  # pylint: disable=import-outside-toplevel
    deployment = kubernetes.client.AppsV1Api(admin_client(rehearsal)).read_namespaced_deployment(NAME, NAME)
    assert deployment.spec.template.spec.containers[0].resources.limits["nvidia.com/gpu"] == "1"
    assert deployment.status.ready_replicas >= 1
    # The rolled-back release holds the values of before: asking for them again changes nothing.
    quiet(rehearsal, lambda: release(HELM4, triton_helm_log_verbose=1))


def test_helm4_uninstalls_with_wait(rehearsal, release, tmp_path):
    path, context = kubeconfig_of(rehearsal, "creator")
    extra = {"name": NAME, "repo": str(REPO), "kubeconfig": str(path), "context": context, "helm": str(HELM4)}
    control(rehearsal, "/mark", {})
    gone = run_playbook(UNINSTALL, tmp_path=tmp_path, env=rehearsal, extra_vars=extra)
    assert gone.rc == 0, gone.stdout[-3000:]
    result = gone.result("Uninstall the Triton release")
    assert result["changed"] is True and "--wait" in result["command"], result
    assert {"deployments", "podmonitorings", "rules"} <= watched(rehearsal), "waited until they were deleted"
    import kubernetes  # pylint: disable=import-outside-toplevel
    client = admin_client(rehearsal)
    assert not kubernetes.client.AppsV1Api(client).list_namespaced_deployment(NAME).items
    wait_until(lambda: not kubernetes.client.CoreV1Api(client).list_namespaced_pod(NAME).items, 60,
               "the Triton pods of the uninstalled release are gone")
    assert NAME not in helm(rehearsal, "list", "-n", NAME, "-q")
    again = run_playbook(UNINSTALL, tmp_path=tmp_path, env=rehearsal, extra_vars=extra)
    assert again.rc == 0 and again.changed == 0, again.stdout[-3000:]
