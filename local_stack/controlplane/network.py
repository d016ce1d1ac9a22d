"""The cluster network of the local control plane: where the API server's connections into the cluster go.

A real cluster's API server reaches kubelets (logs, exec, port-forward) and aggregated API servers (the
metrics adapter behind an APIService) over the VPC; on GKE through Konnectivity. kube-apiserver does this
through its egress selector (``--egress-selector-config-file``, the "cluster" network context: an HTTP
CONNECT proxy; k8s.io/apiserver pkg/server/egressselector), and so does the local control plane: this
module is that proxy, on a unix socket. It maps each CONNECT target to a loopback address:

- a node address (every kwok node has the same InternalIP) at the kubelet port -> kwok's kubelet API;
- a Service's cluster IP and port -> the local program standing in for that Service's pods
  (``backends``: "namespace/name" -> (host, port)), looked up in the API server.

Anything else is refused with 502, as an unreachable address would be. Each connection is logged.
"""

from __future__ import annotations

import os
import socket
import socketserver
import threading
import time


class EgressProxy:
    def __init__(self, socket_path, node_ip, kubelet_port, kubelet_target, service_lookup):
        """service_lookup(ip) -> "namespace/name" of the Service with that cluster IP, or None."""
        self.socket_path = str(socket_path)
        self.node_ip, self.kubelet_port, self.kubelet_target = node_ip, int(kubelet_port), kubelet_target
        self.service_lookup = service_lookup
        self.backends = {}    # "namespace/name" -> (host, port)
        self.connections = []  # (target, routed to or None)
        self.lock = threading.Lock()
        self.server = None

    def route(self, host, port):
        if host == self.node_ip and port == self.kubelet_port:
            return self.kubelet_target
        service = self.service_lookup(host)
        if service and service in self.backends:
            return self.backends[service]
        return None

    def serve(self):
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy._handle(self.request)

        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self.server = socketserver.ThreadingUnixStreamServer(self.socket_path, Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    def _handle(self, client):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
            if len(head) > 16384:
                return
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) < 2 or parts[0] != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return
        host, _colon, port = parts[1].rpartition(":")
        target = self.route(host.strip("[]"), int(port or 0))
        with self.lock:
            self.connections.append((parts[1], target, time.time()))
        if target is None:
            client.sendall(f"HTTP/1.1 502 Bad Gateway\r\n\r\nno route to {parts[1]}".encode())
            return
        try:
            upstream = socket.create_connection(target, timeout=10)
        except OSError as exc:
            client.sendall(f"HTTP/1.1 503 Service Unavailable\r\n\r\n{parts[1]} -> {target}: {exc}".encode())
            return
        upstream.settimeout(None)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        rest = head.split(b"\r\n\r\n", 1)[1]
        if rest:
            upstream.sendall(rest)
        pipe(client, upstream)


def copy_until_closed(src, dst, seen=None):
    """Copy bytes src -> dst until either side closes, then shut both down; seen(n) hears each chunk's size."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if seen is not None:
                seen(len(data))
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def pipe(left, right):
    """Copy bytes both ways until either side closes."""
    other = threading.Thread(target=copy_until_closed, args=(right, left), daemon=True)
    other.start()
    copy_until_closed(left, right)
    other.join()
    left.close()
    right.close()
