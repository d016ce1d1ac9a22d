"""triton_verify through the real kube-apiserver's pods/portforward, and the tunnel triton_helm hands over.

The port-forward goes client -> kube-apiserver (websocket, v4.channel.k8s.io) -> the API server's egress
proxy -> kwok's kubelet API -> the local tritonserver behind the Triton pods; the URLs name the in-cluster DNS
name, which does not resolve here, so every answer came through the tunnel. The audit log shows the streams.
"""

from __future__ import annotations

import pytest

from rehearsal_lib import INVENTORY, admin_client, control, kubeconfig_of
from testlib import REPO, run_playbook

pytestmark = [pytest.mark.slow, pytest.mark.rehearsal]

REFERENCE = REPO / "model_repository" / "fil_reference.json"
IN_CLUSTER = "triton-fil.triton.svc.cluster.local"
SELECTOR = "app.kubernetes.io/instance=triton-fil,app.kubernetes.io/name=triton"
VERIFY_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: verify
      rapids.triton_fil.triton_verify:
        url: "{{ url }}"
        protocol: "{{ protocol | default('http') }}"
        model: fil
        timeout: "{{ timeout | default(60) }}"
        reference_file: "{{ reference }}"
        load: "{{ load | default(omit) }}"
        metrics_url: "{{ metrics_url | default(omit) }}"
        kubernetes_tunnel: "{{ tunnel }}"
"""


def tunnel(env, selector=SELECTOR, identity="deployer"):
    path, context = kubeconfig_of(env, identity)
    return {"kubeconfig": str(path), "context": context, "namespace": "triton", "selector": selector}


def portforwards(env, user):
    return [e for e in control(env, "/audit")
            if e["user"] == user and e["resource"] == "pods" and e["subresource"] == "portforward"]


@pytest.fixture(scope="module")
def deployer_kubeconfig(rehearsal, converged):
    """The deployer's own kubeconfig (exec plugin as the deployer), as its site.yml run writes it."""
    from rehearsal_lib import site  # pylint: disable=import-outside-toplevel
    run = site(rehearsal, identity="deployer", extra_vars={"verify_load_duration": 0})
    assert run.rc == 0, run.stdout[-3000:]
    return kubeconfig_of(rehearsal, "deployer")


def test_verify_through_the_tunnel_with_load_and_metrics(rehearsal, deployer_kubeconfig, ansible):
    control(rehearsal, "/mark", {})
    run = ansible(VERIFY_PLAY, extra_vars={
        "url": f"http://{IN_CLUSTER}:8000", "metrics_url": f"http://{IN_CLUSTER}:8002/metrics",
        "reference": str(REFERENCE), "load": {"concurrency": 4, "duration": 2}, "tunnel": tunnel(rehearsal)})
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    result = run.result("verify")
    assert result["inference"]["matched"] is True
    assert result["load"]["requests"] > 0 and result["load"]["errors"] == 0
    assert result["metrics"]["nv_inference_request_success"] >= result["load"]["requests"]
    assert result["tunnel"]["pod"].startswith("triton-fil-") and result["tunnel"]["namespace"] == "triton"
    assert set(result["tunnel"]["ports"]) == {"8000", "8002"} and result["tunnel"]["errors"] == []
    # One port-forward stream per TCP connection, to the picked pod, as the deployer: the real API server's
    # audit log has them.
    streams = portforwards(rehearsal, rehearsal["TRITON_FIL_DEPLOYER"])
    assert {s["name"] for s in streams} == {result["tunnel"]["pod"]}
    assert sum("ports=8000" in s["uri"] for s in streams) >= 5, "the first client and the 4 load clients"
    assert any("ports=8002" in s["uri"] for s in streams)
    assert result["tunnel"]["connections"] == len(streams)


def test_verify_over_grpc_through_the_tunnel(rehearsal, deployer_kubeconfig, ansible):
    control(rehearsal, "/mark", {})
    run = ansible(VERIFY_PLAY, extra_vars={"url": f"{IN_CLUSTER}:8001", "protocol": "grpc",
                                           "reference": str(REFERENCE), "tunnel": tunnel(rehearsal)})
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert run.result("verify")["inference"]["matched"] is True
    assert {s["uri"].rsplit("ports=", 1)[1] for s in portforwards(rehearsal, rehearsal["TRITON_FIL_DEPLOYER"])} == {
        "8001"}


def test_no_ready_pod_fails_naming_what_was_found(rehearsal, deployer_kubeconfig, ansible):
    run = ansible(VERIFY_PLAY, extra_vars={
        "url": f"http://{IN_CLUSTER}:8000", "reference": str(REFERENCE), "timeout": 1,
        "tunnel": tunnel(rehearsal, "app.kubernetes.io/name=triton,app.kubernetes.io/instance=other")})
    assert run.rc != 0
    msg = run.result("verify")["msg"]
    assert ("no Ready pod in namespace 'triton' matches the selector "
            "'app.kubernetes.io/name=triton,app.kubernetes.io/instance=other' (pods found: none)") in msg
    assert "kubectl -n triton get pods -l" in msg and "triton_helm_endpoint_host" in msg

    # A pod the scheduler cannot place (no node has 16 GPUs) is Pending and not Ready.
    import kubernetes  # pylint: disable=import-outside-toplevel
    core = kubernetes.client.CoreV1Api(admin_client(rehearsal))
    labels = {"app.kubernetes.io/name": "triton", "app.kubernetes.io/instance": "stuck"}
    core.create_namespaced_pod("triton", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stuck-pod", "labels": labels},
        "spec": {"containers": [{"name": "t", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "16"}}}],
                 "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}})
    try:
        run = ansible(VERIFY_PLAY, extra_vars={
            "url": f"http://{IN_CLUSTER}:8000", "reference": str(REFERENCE), "timeout": 1,
            "tunnel": tunnel(rehearsal, "app.kubernetes.io/instance=stuck,app.kubernetes.io/name=triton")})
        assert run.rc != 0
        assert "(pods found: stuck-pod (Pending, not Ready))" in run.result("verify")["msg"]
    finally:
        core.delete_namespaced_pod("stuck-pod", "triton", grace_period_seconds=0)


ENDPOINT_PLAY = """
- hosts: triton_fil
  gather_facts: false
  vars:
    triton_fil_kubeconfig: "{{ kubeconfig }}"
    triton_fil_kube_context: "{{ context }}"
  tasks:
    - name: Triton release
      ansible.builtin.include_role:
        name: rapids.triton_fil.triton_helm
    - name: endpoint
      ansible.builtin.debug:
        var: triton_fil_endpoint
"""


@pytest.mark.parametrize("overrides, tunnelled, host", [
    ({}, True, IN_CLUSTER),
    ({"triton_helm_endpoint_host": "127.0.0.1"}, False, "127.0.0.1"),
    ({"triton_helm_verify_tunnel": False}, False, IN_CLUSTER),
], ids=["clusterip", "endpoint-host", "tunnel-off"])
def test_triton_helm_hands_a_tunnel_for_clusterip_only(rehearsal, converged, tmp_path, overrides, tunnelled, host):
    path, context = kubeconfig_of(rehearsal, "creator")
    import kubernetes  # pylint: disable=import-outside-toplevel
    container = kubernetes.client.AppsV1Api(admin_client(rehearsal)).read_namespaced_deployment(
        "triton-fil", "triton").spec.template.spec.containers[0]
    models = next(a for a in container.args if a.startswith("--model-repository=")).split("=", 1)[1]
    run = run_playbook(ENDPOINT_PLAY, inventory=INVENTORY, tmp_path=tmp_path, env=rehearsal, extra_vars={
        "kubeconfig": str(path), "context": context, "triton_helm_image": container.image,
        "triton_helm_model_repository_uri": models, **overrides,
        # gke_cluster's fact the chart values read, as site.yml sets it: the release stays as site.yml made it.
        "triton_fil_cluster": {"name": "triton-fil", "location": "us-central1-a",
                               "project": rehearsal["TRITON_FIL_PROJECT"]}})
    assert run.rc == 0, run.stdout[-3000:]
    endpoint = run.result("endpoint")["triton_fil_endpoint"]
    assert endpoint["http_url"] == f"http://{host}:8000"
    if tunnelled:
        assert endpoint["tunnel"] == {"kubeconfig": str(path), "context": context, "namespace": "triton",
                                      "selector": SELECTOR}
    else:
        assert "tunnel" not in endpoint
