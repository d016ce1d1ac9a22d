# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""A port-forward through the Kubernetes API (pods/portforward), the way `kubectl port-forward` does it.

KubeTunnel picks a Ready pod matching a label selector and listens on 127.0.0.1 (one free port per remote
port). Every accepted local connection gets its own websocket to the pod (kubernetes.stream.portforward),
so concurrent clients do not share a stream; two threads copy the bytes each way.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

from ansible_collections.rapids.triton_fil.plugins.module_utils.errors import TritonFilError

try:
    from kubernetes import client as k8s_client, config as k8s_config
    from kubernetes.stream import portforward
    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = exc


def pods_spec(**extra):
    """The argument spec of the pods a module reaches (triton_verify's kubernetes_tunnel, the rollout's kubernetes)."""
    return dict(type="dict", options=dict(
        kubeconfig=dict(type="path", required=True),
        context=dict(type="str"),
        namespace=dict(type="str", required=True),
        selector=dict(type="str", required=True),
        **extra,
    ))


class TunnelError(TritonFilError):
    """The tunnel cannot be opened; the message names what is missing and how to fix it."""


def pod_is_ready(pod):
    """A running pod, not being deleted, whose Ready condition is True (a pod dict from the API)."""
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return ready and status.get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")


def pick_ready_pod(pods, namespace, selector):
    """The first Ready pod by name; TunnelError listing what was found otherwise."""
    ready = sorted(p["metadata"]["name"] for p in pods if pod_is_ready(p))
    if ready:
        return ready[0]
    found = ", ".join(f"{p['metadata']['name']} ({(p.get('status') or {}).get('phase', 'Unknown')}, "
                      f"{'terminating' if p['metadata'].get('deletionTimestamp') else 'not Ready'})"
                      for p in pods) or "none"
    raise TunnelError(
        f"no Ready pod in namespace {namespace!r} matches the selector {selector!r} (pods found: {found}). "
        f"Check that the release is deployed and its pods are Ready (kubectl -n {namespace} get pods -l "
        f"{selector}), that the selector matches the pods' labels, or set the endpoint host to an address "
        "reachable from here (triton_helm_endpoint_host) and drop the tunnel (triton_helm_verify_tunnel: false)")


def list_pods(kubeconfig, context, namespace, selector):
    """Every pod in namespace matching selector, as the API returns them (dicts); TunnelError when refused."""
    try:
        api = k8s_config.new_client_from_config(config_file=kubeconfig, context=context or None, persist_config=False)
    except (k8s_config.ConfigException, OSError, ValueError) as exc:
        raise TunnelError(f"kubeconfig {kubeconfig!r} (context {context or 'current'}) cannot be loaded: {exc}") from exc
    try:
        response = k8s_client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector,
                                                                 _preload_content=False)
        return json.loads(response.data).get("items", [])
    except k8s_client.exceptions.ApiException as exc:
        raise TunnelError(f"listing pods in namespace {namespace!r} (selector {selector!r}) failed: {exc.status} "
                          f"{exc.reason} — check the kubeconfig's credentials and that they may list pods and "
                          "get/create pods/portforward there") from exc
    finally:
        api.close()


def url_port(url):
    """The port of http(s)://host:port/... or host:port (80/443 for http/https without one)."""
    parts = urlsplit(url if "://" in url else "//" + url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    if not port:
        raise TunnelError(f"{url!r} has no port: with a Kubernetes tunnel the URL must name the pod's port")
    return port


def local_url(url, local_port):
    """url with its host and port replaced by 127.0.0.1:local_port (path and scheme kept)."""
    if "://" not in url:
        return f"127.0.0.1:{local_port}"
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{local_port}"))


def _pump(source, target):
    """Copy bytes until either side ends, then close both (the other pump ends too)."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            _close(sock)


def _close(sock):
    """shutdown() first: it wakes a thread blocked in recv() on the socket, close() alone does not."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class KubeTunnel:
    """with KubeTunnel(kubeconfig, context, namespace, selector, [8000, 8002]) as t: t.ports[8000] -> local port.

    pod names the pod to forward to (the rollout opens one tunnel per pod); without it a Ready pod matching
    the selector is picked.
    """

    def __init__(self, kubeconfig, context, namespace, selector, remote_ports, wait_s=0, sleep=time.sleep,
                 pod=None):
        self.kubeconfig, self.context, self.namespace, self.selector = kubeconfig, context, namespace, selector
        self.remote_ports = sorted(set(int(p) for p in remote_ports))
        self.wait_s, self.sleep = wait_s, sleep
        self._named_pod = pod
        self.pod = None
        self.ports = {}  # remote port -> local port
        self.connections = 0
        self.errors = []  # what the API server said on a port's error channel
        self._api = None
        self._core = None
        self._listeners = []
        self._open = []
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def _list_pods(self):
        response = self._core.list_namespaced_pod(self.namespace, label_selector=self.selector,
                                                  _preload_content=False)
        return json.loads(response.data).get("items", [])

    def find_pod(self):
        """A Ready pod, waiting up to wait_s for one (a rollout in progress)."""
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                pods = self._list_pods()
            except k8s_client.exceptions.ApiException as exc:
                raise TunnelError(f"listing pods in namespace {self.namespace!r} (selector {self.selector!r}) "
                                  f"failed: {exc.status} {exc.reason} — check the kubeconfig's credentials and "
                                  "that they may list pods and get/create pods/portforward there") from exc
            try:
                return pick_ready_pod(pods, self.namespace, self.selector)
            except TunnelError:
                if time.monotonic() >= deadline:
                    raise
            self.sleep(2.0)

    def __enter__(self):
        try:
            self._api = k8s_config.new_client_from_config(config_file=self.kubeconfig, context=self.context or None,
                                                          persist_config=False)
        except (k8s_config.ConfigException, OSError, ValueError) as exc:
            raise TunnelError(f"kubeconfig {self.kubeconfig!r} (context {self.context or 'current'}) "
                              f"cannot be loaded: {exc}") from exc
        self._core = k8s_client.CoreV1Api(self._api)
        try:
            self.pod = self._named_pod or self.find_pod()
            for remote in self.remote_ports:
                listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                listener.bind(("127.0.0.1", 0))
                listener.listen(32)
                listener.settimeout(0.2)
                self._listeners.append(listener)
                self.ports[remote] = listener.getsockname()[1]
                threading.Thread(target=self._accept, args=(listener, remote), daemon=True).start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _accept(self, listener, remote):
        while not self._stop.is_set():
            try:
                conn, dummy = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(None)
            threading.Thread(target=self._forward, args=(conn, remote), daemon=True).start()

    def _forward(self, conn, remote):
        try:
            # portforward() swaps the ApiClient's call_api while it connects: one at a time.
            with self._lock:
                forward = portforward(self._core.connect_get_namespaced_pod_portforward, self.pod, self.namespace,
                                      ports=str(remote))
                self.connections += 1
                self._open.append((conn, forward))
            pod_socket = forward.socket(remote)
            pod_socket.setblocking(True)
        except Exception as exc:  # pylint: disable=broad-except  # ApiException, websocket and socket errors
            self.errors.append(f"port {remote}: {exc}")
            conn.close()
            return
        upstream = threading.Thread(target=_pump, args=(conn, pod_socket), daemon=True)
        upstream.start()
        _pump(pod_socket, conn)
        upstream.join(5)
        error = forward.error(remote)
        if error:
            self.errors.append(f"port {remote}: {error.strip()}")
        forward.close()

    def close(self):
        self._stop.set()
        for listener in self._listeners:
            listener.close()
        with self._lock:
            for conn, forward in self._open:
                _close(conn)
                forward.close()
            self._open = []
        if self._api is not None:
            self._api.close()
            self._api = None

    def describe(self):
        """What the module returns: the pod, its namespace and the remote -> local port mapping."""
        return {"pod": self.pod, "namespace": self.namespace, "ports": {str(k): v for k, v in self.ports.items()},
                "connections": self.connections, "errors": self.errors[:5]}
