"""A small in-memory Kubernetes API server for the roles' kubernetes.core tasks (no real apiserver here).

It speaks enough of the API for kubernetes.core.k8s / k8s_info through the official Python client:
discovery (/version, /api, /apis, resource lists), list with label selectors, get, create, patch
(merge and strategic-merge patches, lists of named items merged by name), replace and delete, with
Status errors (404, 409). Tests drive time with hooks: `on_read[plural](server, verb)` runs before each
get or list ("get"/"list"), so a node can gain its GPUs after a few polls and an APIService become
Available once its Service exists.
Every request is recorded, and every write that changed an object (a no-op patch changes nothing and
keeps the resourceVersion, as on a real server), so tests can tell an idempotent re-run. It is not a
conformance fake: no validation, no admission, no controllers.

pods/portforward speaks the websocket port-forward protocol (subprotocol v4.channel.k8s.io, as the
kubernetes client's kubernetes.stream.portforward expects it) and relays each forwarded pod port to a real
TCP address from `forward[(namespace, pod)] = {pod_port: (host, port)}`; every port-forward is recorded
in `portforwards`.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import socket
import struct
import threading
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

# (group, version, kind, plural, namespaced)
RESOURCES = [
    ("", "v1", "Namespace", "namespaces", False),
    ("", "v1", "Node", "nodes", False),
    ("", "v1", "Pod", "pods", True),
    ("", "v1", "ServiceAccount", "serviceaccounts", True),
    ("", "v1", "Service", "services", True),
    ("", "v1", "Secret", "secrets", True),
    ("", "v1", "ConfigMap", "configmaps", True),
    ("apps", "v1", "Deployment", "deployments", True),
    ("apps", "v1", "DaemonSet", "daemonsets", True),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    ("apiregistration.k8s.io", "v1", "APIService", "apiservices", False),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True),
    ("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True),
    ("monitoring.googleapis.com", "v1", "PodMonitoring", "podmonitorings", True),
    ("monitoring.googleapis.com", "v1", "Rules", "rules", True),
]
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
PORTFORWARD = re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)/portforward$")
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PORTFORWARD_PROTOCOL = "v4.channel.k8s.io"
PATH = re.compile(r"^/(?:api/(?P<cv>v1)|apis/(?P<g>[^/]+)/(?P<v>[^/]+))"
                  r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>status))?$")


def collection_path(obj):
    """The URL path of the collection an object is created in."""
    group_version = obj["apiVersion"]
    resource = next(r for r in RESOURCES if r[2] == obj["kind"]
                    and (f"{r[0]}/{r[1]}" if r[0] else r[1]) == group_version)
    base = f"/apis/{group_version}" if resource[0] else "/api/v1"
    namespace = obj["metadata"].get("namespace")
    return f"{base}/namespaces/{namespace}/{resource[3]}" if resource[4] else f"{base}/{resource[3]}"


def merge(target, patch):
    """Merge patch, plus strategic merge of lists of dicts that all carry a name."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = merge(result.get(key), value)
        elif (isinstance(value, list) and isinstance(result.get(key), list) and value and result[key]
              and all(isinstance(i, dict) and "name" in i for i in value + result[key])):
            by_name = {i["name"]: i for i in result[key]}
            result[key] = [merge(by_name.get(i["name"]), i) for i in value]
        else:
            result[key] = copy.deepcopy(value)
    return result


def selector_matches(selector, labels):
    for term in filter(None, re.split(r",(?![^()]*\))", selector or "")):
        term = term.strip()
        if match := re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", term):
            values = {v.strip() for v in match.group(3).split(",")}
            found = labels.get(match.group(1)) in values
            if found != (match.group(2) == "in"):
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


class FakeApiServer:
    def __init__(self):
        self.objects = {}  # (plural, namespace or "", name) -> object
        self.requests = []  # (method, path)
        self.changes = []  # (method, plural, namespace, name) of writes that changed an object
        self.on_read = {}  # plural -> callable(server, verb), before each get or list
        self.forward = {}  # (namespace, pod) -> {pod port: (host, port)} for pods/portforward
        self.portforwards = []  # {namespace, pod, port, authorization} of every port-forward stream
        self.lock = threading.RLock()
        self._version = 1
        handler = type("Handler", (_Handler,), {"api": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def kubeconfig(self, path):
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        }))
        return path

    # state helpers for tests
    def put(self, obj):
        plural = next(r[3] for r in RESOURCES if r[2] == obj["kind"])
        with self.lock:
            self._store(plural, obj.get("metadata", {}).get("namespace", ""), obj)

    def get(self, plural, name, namespace=""):
        return self.objects.get((plural, namespace, name))

    def items(self, plural):
        return [o for key, o in sorted(self.objects.items()) if key[0] == plural]

    def writes(self):
        return [r for r in self.requests if r[0] in ("POST", "PUT", "PATCH", "DELETE")]

    def _write(self, method, plural, namespace, obj):
        """Store obj unless it equals the stored object (then the write changes nothing)."""
        key = (plural, namespace, obj["metadata"]["name"])
        current = self.objects.get(key)
        if current is not None:
            incoming = copy.deepcopy(obj)
            if namespace:
                incoming["metadata"]["namespace"] = namespace
            if _without_server_fields(current) == _without_server_fields(incoming):
                return current
        self.changes.append((method, *key))
        return self._store(plural, namespace, obj)

    def _store(self, plural, namespace, obj):
        self._version += 1
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        meta["resourceVersion"] = str(self._version)
        if namespace:
            meta["namespace"] = namespace
        self.objects[(plural, namespace, meta["name"])] = obj
        return obj


def _without_server_fields(obj):
    ignored = ("resourceVersion", "uid", "creationTimestamp")
    return {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k not in ignored}}


class _Handler(BaseHTTPRequestHandler):
    api: FakeApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code, reason, message):
        self._send(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": message, "reason": reason, "code": code})

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _discovery(self, path):
        if path == "/version":
            return {"major": "1", "minor": "34", "gitVersion": "v1.34.0", "platform": "linux/amd64"}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}
        if path == "/apis":
            groups = {}
            for resource in RESOURCES:
                if resource[0]:
                    groups.setdefault(resource[0], resource[1])
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v}],
                 "preferredVersion": {"groupVersion": f"{g}/{v}", "version": v}} for g, v in groups.items()]}
        match = re.fullmatch(r"/api/(v1)|/apis/([^/]+)/([^/]+)", path)
        if match:
            group, version = ("", "v1") if match.group(1) else (match.group(2), match.group(3))
            resources = [{"name": plural, "singularName": kind.lower(), "namespaced": namespaced, "kind": kind,
                          "verbs": VERBS} for g, v, kind, plural, namespaced in RESOURCES if (g, v) == (group, version)]
            resources += [{"name": f"{r['name']}/status", "singularName": "", "namespaced": r["namespaced"],
                           "kind": r["kind"], "verbs": ["get", "patch", "update"]} for r in list(resources)]
            if resources:
                return {"kind": "APIResourceList", "apiVersion": "v1",
                        "groupVersion": f"{group}/{version}" if group else version, "resources": resources}
        return None

    def _route(self):
        url = urlparse(self.path)
        self.api.requests.append((self.command, url.path))
        match = PATH.match(url.path)
        if not match:
            return None, None, url
        group = match.group("g") or ""
        version = match.group("cv") or match.group("v")
        resource = next((r for r in RESOURCES if (r[0], r[1], r[3]) == (group, version, match.group("plural"))), None)
        return resource, match, url

    def do_GET(self):  # noqa: N802
        url = urlparse(self.path)
        if PORTFORWARD.match(url.path):
            self.api.requests.append(("GET", url.path))
            return self._portforward(url)
        discovered = self._discovery(url.path)
        if discovered is not None:
            self.api.requests.append(("GET", url.path))
            return self._send(200, discovered)
        resource, match, url = self._route()
        if resource is None:
            return self._status(404, "NotFound", f"the server could not find the requested resource ({url.path})")
        group, version, kind, plural = resource[:4]
        namespace = match.group("ns") or ""
        with self.api.lock:
            hook = self.api.on_read.get(plural)
            if hook:
                hook(self.api, "get" if match.group("name") else "list")
            if match.group("name"):
                obj = self.api.objects.get((plural, namespace, match.group("name")))
                if obj is None:
                    return self._status(404, "NotFound", f'{plural} "{match.group("name")}" not found')
                return self._send(200, obj)
            selector = parse_qs(url.query).get("labelSelector", [""])[0]
            items = [o for key, o in sorted(self.api.objects.items())
                     if key[0] == plural and (not namespace or key[1] == namespace)
                     and selector_matches(selector, o["metadata"].get("labels", {}))]
            gv = f"{group}/{version}" if group else version
            return self._send(200, {"kind": f"{kind}List", "apiVersion": gv,
                                    "metadata": {"resourceVersion": str(self.api._version)}, "items": items})

    def do_POST(self):  # noqa: N802
        resource, match, url = self._route()
        if resource is None or match.group("name"):
            return self._status(404, "NotFound", url.path)
        body = self._body()
        namespace = match.group("ns") or ""
        with self.api.lock:
            key = (resource[3], namespace, body["metadata"]["name"])
            if key in self.api.objects:
                return self._status(409, "AlreadyExists", f'{resource[3]} "{key[2]}" already exists')
            return self._send(201, self.api._write("POST", resource[3], namespace, body))

    def do_PUT(self):  # noqa: N802
        resource, match, url = self._route()
        if resource is None or not match.group("name"):
            return self._status(404, "NotFound", url.path)
        with self.api.lock:
            return self._send(200, self.api._write("PUT", resource[3], match.group("ns") or "", self._body()))

    def do_PATCH(self):  # noqa: N802
        resource, match, url = self._route()
        if resource is None or not match.group("name"):
            return self._status(404, "NotFound", url.path)
        namespace = match.group("ns") or ""
        with self.api.lock:
            key = (resource[3], namespace, match.group("name"))
            if key not in self.api.objects:
                return self._status(404, "NotFound", f'{resource[3]} "{key[2]}" not found')
            patched = merge(self.api.objects[key], self._body())
            return self._send(200, self.api._write("PATCH", resource[3], namespace, patched))

    def do_DELETE(self):  # noqa: N802
        resource, match, url = self._route()
        if resource is None or not match.group("name"):
            return self._status(404, "NotFound", url.path)
        with self.api.lock:
            obj = self.api.objects.pop((resource[3], match.group("ns") or "", match.group("name")), None)
        if obj is None:
            return self._status(404, "NotFound", url.path)
        self.api.changes.append(("DELETE", resource[3], match.group("ns") or "", match.group("name")))
        return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}})

    # pods/portforward over a websocket (RFC 6455 framing, Kubernetes v4 channel protocol)
    def _portforward(self, url):
        match = PORTFORWARD.match(url.path)
        namespace, name = match.group("ns"), match.group("name")
        ports = [int(p) for p in ",".join(parse_qs(url.query).get("ports", [])).split(",") if p]
        if self.api.get("pods", name, namespace) is None:
            return self._status(404, "NotFound", f'pods "{name}" not found')
        if self.headers.get("Upgrade", "").lower() != "websocket" or not ports:
            return self._status(400, "BadRequest", "portforward needs a websocket upgrade and ?ports=")
        offered = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if PORTFORWARD_PROTOCOL not in offered:
            return self._status(400, "BadRequest", f"subprotocol {PORTFORWARD_PROTOCOL} not offered: {offered}")
        accept = base64.b64encode(hashlib.sha1(  # noqa: S324 - RFC 6455 mandates SHA-1
            (self.headers["Sec-WebSocket-Key"] + WEBSOCKET_GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", PORTFORWARD_PROTOCOL)
        self.end_headers()
        self.close_connection = True
        lock = threading.Lock()

        def send(opcode, payload):
            with lock:
                self.wfile.write(ws_frame(opcode, payload))

        targets = self.api.forward.get((namespace, name), {})
        upstreams = {}
        for index, port in enumerate(ports):
            with self.api.lock:
                self.api.portforwards.append({"namespace": namespace, "pod": name, "port": port,
                                              "authorization": self.headers.get("Authorization")})
            for channel in (2 * index, 2 * index + 1):  # data, then error: each starts with the port
                send(0x2, bytes([channel]) + struct.pack("<H", port))
            try:
                if port not in targets:
                    raise OSError("connection refused (no forward target in the fake API server)")
                upstreams[2 * index] = socket.create_connection(targets[port], timeout=5)
                upstreams[2 * index].settimeout(None)
            except OSError as exc:
                send(0x2, bytes([2 * index + 1]) + f"error forwarding port {port} to pod {name}: {exc}".encode())
                continue
            threading.Thread(target=self._relay_from_pod, args=(upstreams[2 * index], 2 * index, send),
                             daemon=True).start()
        try:
            for opcode, payload in ws_messages(self.rfile):
                if opcode == 0x8:  # close
                    send(0x8, payload[:2])
                    break
                if opcode == 0x9:  # ping
                    send(0xA, payload)
                elif opcode == 0x2 and payload and payload[0] in upstreams:
                    upstreams[payload[0]].sendall(payload[1:])
        except OSError:
            pass
        finally:
            for upstream in upstreams.values():
                upstream.close()

    @staticmethod
    def _relay_from_pod(upstream, channel, send):
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                send(0x2, bytes([channel]) + data)
            send(0x8, struct.pack(">H", 1000))
        except OSError:
            pass


def ws_frame(opcode, payload):
    """One unmasked, final server frame."""
    head = bytes([0x80 | opcode])
    if len(payload) < 126:
        head += bytes([len(payload)])
    elif len(payload) < 1 << 16:
        head += bytes([126]) + struct.pack(">H", len(payload))
    else:
        head += bytes([127]) + struct.pack(">Q", len(payload))
    return head + payload


def ws_messages(stream):
    """(opcode, payload) of every message a client sends (masked frames, fragments joined) until EOF."""
    opcode, parts = None, []
    while True:
        head = stream.read(2)
        if len(head) < 2:
            return
        fin, frame_opcode, length = head[0] & 0x80, head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            length = struct.unpack(">H", stream.read(2))[0]
        elif length == 127:
            length = struct.unpack(">Q", stream.read(8))[0]
        mask = stream.read(4) if head[1] & 0x80 else b"\0\0\0\0"
        data = stream.read(length)
        if len(data) < length:
            return
        key = (mask * (length // 4 + 1))[:length]
        payload = (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")
        if frame_opcode >= 0x8:  # control frames are never fragmented
            yield frame_opcode, payload
            continue
        if frame_opcode:
            opcode, parts = frame_opcode, []
        parts.append(payload)
        if fin:
            yield opcode, b"".join(parts)
