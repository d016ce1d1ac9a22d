"""The tunnel's pure helpers: ports of URLs, local URLs, which pod is picked (no server needed)."""

from __future__ import annotations

import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.tunnel import (
    TunnelError, local_url, pick_ready_pod, url_port,
)

IN_CLUSTER = "triton-fil.triton.svc.cluster.local"
SELECTOR = "app.kubernetes.io/instance=triton-fil,app.kubernetes.io/name=triton"


def pod(name, phase="Running", ready=True):
    return {"metadata": {"name": name, "namespace": "triton"},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_ports_and_local_urls():
    assert url_port(f"http://{IN_CLUSTER}:8000") == 8000 and url_port(f"{IN_CLUSTER}:8001") == 8001
    assert url_port(f"http://{IN_CLUSTER}/metrics") == 80
    assert local_url(f"http://{IN_CLUSTER}:8002/metrics", 4321) == "http://127.0.0.1:4321/metrics"
    assert local_url(f"{IN_CLUSTER}:8001", 4321) == "127.0.0.1:4321"
    with pytest.raises(TunnelError, match="has no port"):
        url_port(IN_CLUSTER)


def test_a_ready_running_pod_is_picked():
    terminating = pod("a-terminating")
    terminating["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert pick_ready_pod([terminating, pod("c-ready"), pod("b-ready"), pod("d", ready=False)],
                          "triton", SELECTOR) == "b-ready"
    with pytest.raises(TunnelError, match=r"pods found: a-terminating \(Running, terminating\)"):
        pick_ready_pod([terminating], "triton", SELECTOR)
