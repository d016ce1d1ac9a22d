# -*- coding: utf-8 -*-
# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Roll a changed model repository out to running Triton servers, gated on reference outputs.

What Triton does, and so what the rollout relies on (triton-inference-server/core,
src/model_repository_manager/model_lifecycle.cc; server docs/user_guide/model_management.md and
docs/protocol/extension_model_repository.md):

- ``--model-control-mode=explicit``: models load and reload only through ``v2/repository/models/<m>/load``.
  A load re-reads the model's configuration (or takes the ``config`` parameter instead) and its version
  folders; "if the reload fails for any reason the already loaded model will be unchanged and will remain
  loaded. If the reload succeeds, the newly loaded model will replace the already loaded model without any
  loss in availability" (model_management.md). In the source: the new versions load while the old ones
  serve (AsyncLoad), and only when every version loaded are the old versions released and the new ones
  marked READY, under one lock (OnLoadComplete); a failed version releases what this load brought and keeps
  the rest. Since server PR #8562 (December 2025) model_management.md says instead that under EXPLICIT "the
  existing model should be explicitly unloaded prior to the updated version being loaded", and server issue
  #5757 (open) reports failed requests during such a reload from S3; the core code still loads before it
  releases. So the switch does not rely on the docs: it counts every request sent during it (``switch``,
  ``traffic``) and warns about any that failed; the tests on tritonserver 2.51 see none.
- A request without a version is served by the highest READY version (ModelLifeCycle::GetModel, "the
  case where the request is asking for latest version"). So loading N+1 next to N (``version_policy``
  ``specific: [N, N+1]``) would send every unversioned request to N+1 before it is verified. The
  candidate is therefore loaded under its own name (``<model>__rollout_candidate``) from the files
  themselves: the load API's ``file:<version>/<name>`` parameters with a ``config`` make "the override
  model directory to load the model from" (extension_model_repository.md), so nothing of the candidate
  reaches users or the bucket before it answered like its reference.
- ``version_policy`` alone does not make Triton reload the versions that keep serving
  (ConfigChangeRequiresReload ignores it and instance_group, src/model_config_utils.cc).

The order, per model: plan (reads only) -> the new version folders to the bucket (never a configuration)
-> candidate loaded and checked against the reference on every server -> the candidate unloaded -> on each
server in turn, while a few clients keep sending unversioned requests, the model loaded with its
configuration pinned to the new versions (``version_policy: specific``): Triton switches to them and
unloads the old -> every server checked (serves exactly the new versions, answers like the reference)
-> only then the pinned configurations written to the bucket, so a pod that starts later loads the
verified versions. Any failure leaves the old versions serving (a server already switched is loaded back
to them) and deletes nothing from the bucket.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
import threading
import time
import urllib.error
from contextlib import ExitStack
from urllib.parse import quote

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError, open_url

from ansible_collections.rapids.triton_fil.plugins.module_utils.errors import TritonFilError
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcp.session import GcpError
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.client import check_bucket_name
from ansible_collections.rapids.triton_fil.plugins.module_utils.gcs.sync import execute_plan, plan_sync
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import pbtxt_edit
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton import verify
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.model_config import (
    ModelRepositoryError, parse_config_text, select_models,
)
from ansible_collections.rapids.triton_fil.plugins.module_utils.triton.tunnel import (
    KubeTunnel, TunnelError, list_pods, pod_is_ready,
)

try:
    from google.protobuf import text_format
    from google.protobuf.json_format import MessageToJson
    from tritonclient.grpc import model_config_pb2
except ImportError:  # pragma: no cover - model_config reports it
    text_format = None

CANDIDATE_SUFFIX = "__rollout_candidate"
PIN_COMMENT = ("# Served versions, pinned by rapids.triton_fil.triton_model_rollout once they answered like the\n"
               "# reference on every server (a server that starts loads exactly these).\n")
CONFIG_MAIN = "config.pbtxt"


class RolloutError(TritonFilError):
    """A problem found before anything was written; the message names the input and the fix."""

    note = "nothing was written"


class RolloutFailed(TritonFilError):
    """A check failed during the rollout; the old versions keep serving. result: what was done."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


def candidate_name(model):
    return model + CANDIDATE_SUFFIX


# ------------------------------------------------------------------------------ version policy
def policy_versions(config, available, where):
    """The versions Triton serves under config's version_policy from the available version folders.

    Triton's default is ``latest { num_versions: 1 }`` (model_config.proto: "Only the latest 'n' versions
    of the model in the repository are available"); ``specific`` names versions, ``all`` takes every one.
    """
    policy = config.version_policy
    kind = policy.WhichOneof("policy_choice") if config.HasField("version_policy") else None
    if kind == "specific":
        versions = sorted({int(v) for v in policy.specific.versions})
        missing = [v for v in versions if v not in available]
        if not versions:
            raise RolloutError(f"{where}: version_policy specific names no version — list the versions to serve")
        if missing:
            raise RolloutError(f"{where}: version_policy specific names version(s) {missing}, which have no folder "
                               f"(found {available or 'none'}) — add the folder(s) or change the policy")
        return versions
    if not available:
        raise RolloutError(f"{where}: no version folder — put the model file in a numbered folder such as 1/")
    if kind == "all":
        return list(available)
    count = int(policy.latest.num_versions) if kind == "latest" else 1
    if count < 1:
        raise RolloutError(f"{where}: version_policy latest num_versions is {count} — Triton then loads no version; "
                           "set it to 1 or more")
    return list(available)[-count:]


def pin_text(text, versions, source):
    """text with its version_policy replaced by ``specific`` over versions (comments and layout kept)."""
    config = parse_config_text(text, source)
    want = type(config)()
    want.CopyFrom(config)
    want.ClearField("version_policy")
    want.version_policy.specific.versions.extend(sorted(versions))
    listed = ", ".join(str(v) for v in sorted(versions))
    pinned = f"{PIN_COMMENT}version_policy: {{ specific: {{ versions: [ {listed} ] }} }}\n"
    try:
        body = pbtxt_edit.remove_field(text.replace(PIN_COMMENT, ""), "version_policy").rstrip("\n")
        new_text = f"{body}\n{pinned}"
        if parse_config_text(new_text, source) == want:
            return new_text
    except (pbtxt_edit.PbtxtEditError, ValueError, IndexError):
        pass
    # The text edit did not give the intended message: protobuf's canonical text (comments dropped).
    return text_format.MessageToString(want)


def pinned_versions(text, source):
    """The versions a bucket configuration pins (version_policy specific), or None (not pinned / unreadable)."""
    try:
        config = parse_config_text(text, source)
    except (ValueError, ModelRepositoryError):
        return None
    if config.HasField("version_policy") and config.version_policy.WhichOneof("policy_choice") == "specific":
        return sorted(int(v) for v in config.version_policy.specific.versions)
    return None


def config_json(text, source, name=None, versions=None):
    """The configuration as the load API's ``config`` parameter (ModelConfig JSON), optionally renamed/pinned."""
    config = parse_config_text(text, source)
    if name:
        config.name = name
    if versions is not None:
        config.ClearField("version_policy")
        config.version_policy.specific.versions.extend(sorted(versions))
    return MessageToJson(config, preserving_proto_field_name=True, indent=None)


def expected_tensors(text, source):
    """What the configuration declares, in the shape verify.compare_metadata reads."""
    config = parse_config_text(text, source)

    def tensors(items):
        return [{"name": t.name, "data_type": model_config_pb2.DataType.Name(t.data_type),
                 "dims": [int(d) for d in t.dims]} for t in items]

    return {"inputs": tensors(config.input), "outputs": tensors(config.output),
            "max_batch_size": int(config.max_batch_size)}


# ------------------------------------------------------------------------------ the local repository
class LocalModel:
    """One model folder of the local repository: its configurations, versions and reference."""

    def __init__(self, root, name, config_name, reference):
        self.name, self.path = name, os.path.join(root, name)
        self.configs = {}  # relative name -> text: config.pbtxt and configs/<x>.pbtxt
        main = os.path.join(self.path, CONFIG_MAIN)
        if not os.path.isfile(main):
            raise RolloutError(f"{name}/config.pbtxt: missing — every model folder needs one")
        for rel in [CONFIG_MAIN] + sorted(f"configs/{e}" for e in _listdir(os.path.join(self.path, "configs"))
                                          if e.endswith(".pbtxt")):
            with open(os.path.join(self.path, rel), encoding="utf-8") as handle:
                self.configs[rel] = handle.read()
        # The variant tritonserver reads: --model-config-name=<config_name> picks configs/<name>.pbtxt.
        self.server_config = f"configs/{config_name}.pbtxt" if config_name else CONFIG_MAIN
        if self.server_config not in self.configs:
            raise RolloutError(f"config_name: {name}/{self.server_config} does not exist — the servers run "
                               f"--model-config-name={config_name}, so the model needs that variant (or set "
                               "config_name to what the servers run)")
        self.available = sorted(int(e) for e in _listdir(self.path)
                                if e.isdigit() and os.path.isdir(os.path.join(self.path, e)))
        try:
            config = parse_config_text(self.configs[self.server_config], f"{name}/{self.server_config}")
        except ValueError as exc:
            raise RolloutError(str(exc)) from None
        if config.name and config.name != name:
            raise RolloutError(f"{name}/{self.server_config}: name {config.name!r} differs from the folder name — "
                               "Triton requires them to match")
        self.desired = policy_versions(config, self.available, f"{name}/{self.server_config}")
        self.reference_path = reference
        if not reference or not os.path.isfile(reference):
            raise RolloutError(f"references: {name} has no reference file ({reference or 'none given'}): a rollout "
                               f"is gated on reference outputs — write one with rapids.triton_fil.fil_model (it "
                               f"writes <repository>/{name}_reference.json) or name it in references")
        try:
            self.reference = verify.load_reference(reference)
        except verify.VerifyError as exc:
            raise RolloutError(f"references: {exc}") from None

    def pinned_configs(self, versions=None):
        versions = self.desired if versions is None else versions
        return {rel: pin_text(text, versions, f"{self.name}/{rel}") for rel, text in self.configs.items()}

    def version_files(self, version):
        """{path inside the model folder: absolute path} of one version folder."""
        base = os.path.join(self.path, str(version))
        found = {}
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
            for filename in sorted(filenames):
                if filename.startswith(".") or filename.endswith(".pyc"):
                    continue
                full = os.path.join(dirpath, filename)
                found[os.path.relpath(full, self.path).replace(os.sep, "/")] = full
        return found

    def candidate_files(self):
        """The load API's file overrides of the desired versions ("file:<version>/<name>": bytes)."""
        files = {}
        for version in self.desired:
            for rel, full in self.version_files(version).items():
                with open(full, "rb") as handle:
                    files[f"file:{rel}"] = handle.read()
        return files


def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def read_local(src, names, config_name, references):
    if not os.path.isdir(src):
        raise RolloutError(f"src: {src} is not a folder — point it at the local model repository")
    entries = [e for e in _listdir(src) if os.path.isdir(os.path.join(src, e)) and not e.startswith(".")
               and e != "__pycache__" and os.path.isfile(os.path.join(src, e, CONFIG_MAIN))]
    entries = select_models(entries, names, src, RolloutError)
    bad = [e for e in entries if e.endswith(CANDIDATE_SUFFIX)]
    if bad:
        raise RolloutError(f"src: model folder(s) {', '.join(bad)} end with {CANDIDATE_SUFFIX}, the name the rollout "
                           "loads candidates under — rename them")
    references = references or {}
    return [LocalModel(src, name, config_name,
                       references.get(name) or os.path.join(src, f"{name}_reference.json")) for name in entries]


# ------------------------------------------------------------------------------ the bucket
class Bucket:
    """The served repository in GCS: its listing, configurations (read and, at the end, pinned) and version files."""

    def __init__(self, client, bucket, prefix):
        self.client, self.bucket = client, bucket
        self.prefix = (prefix or "").strip("/")
        self.prefix = self.prefix + "/" if self.prefix else ""
        self.objects = client.list_objects(bucket, self.prefix)
        self._texts = {}

    def url(self, rel=""):
        return f"gs://{self.bucket}/{self.prefix}{rel}"

    def name(self, rel):
        return self.prefix + rel

    def read(self, rel):
        name = self.name(rel)
        if name not in self._texts:
            response = self.client.session.request(
                "GET", f"{self.client.api}/b/{quote(self.bucket, safe='')}/o/{quote(name, safe='')}",
                params={"alt": "media"}, context=f"reading gs://{self.bucket}/{name}")
            self._texts[name] = response.content.decode("utf-8", "replace")
        return self._texts[name]

    def configs(self, model):
        """{relative name: text} of the model's configurations in the bucket."""
        found = {}
        base = self.name(model + "/")
        for name in sorted(self.objects):
            rel = name[len(base):] if name.startswith(base) else None
            if rel == CONFIG_MAIN or (rel and re.fullmatch(r"configs/[^/]+\.pbtxt", rel)):
                found[rel] = self.read(f"{model}/{rel}")
        return found

    def models(self):
        """Models with a config.pbtxt in the bucket."""
        names = set()
        for name in self.objects:
            rel = name[len(self.prefix):]
            parts = rel.split("/")
            if len(parts) == 2 and parts[1] == CONFIG_MAIN:
                names.add(parts[0])
        return sorted(names)

    def write(self, model, rel, text):
        """Upload one configuration, only over the generation it was compared with (new: must not exist)."""
        name = self.name(f"{model}/{rel}")
        have = self.objects.get(name)
        data = text.encode("utf-8")
        import hashlib  # pylint: disable=import-outside-toplevel
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode("ascii")  # GCS's integrity hash
        with tempfile.NamedTemporaryFile(prefix="rollout-", suffix=".pbtxt") as handle:
            handle.write(data)
            handle.flush()
            self.client.upload(self.bucket, name, handle.name, md5, len(data),
                               if_generation_match=have["generation"] if have else 0,
                               content_type="text/plain")
        self._texts[name] = text


# ------------------------------------------------------------------------------ the servers
class Target:
    """One Triton server (a pod through its own tunnel, a pod IP, or a URL) and its repository API."""

    def __init__(self, name, url, via, timeout):
        self.name, self.url, self.via, self.timeout = name, url.rstrip("/"), via, timeout
        self.calls = []  # (method, path, status)

    def describe(self):
        return {"name": self.name, "url": self.url, "via": self.via}

    def call(self, method, path, body=None, timeout=None):
        data = None if body is None else json.dumps(body).encode()
        try:
            with open_url(f"{self.url}/{path}", data=data, method=method, timeout=timeout or self.timeout,
                          headers={"Content-Type": "application/json"} if data else {}) as response:
                text = response.read().decode("utf-8", "replace")
                status = response.status
        except urllib.error.HTTPError as exc:
            text, status = exc.read().decode("utf-8", "replace"), exc.code
        except UrlsConnectionError as exc:  # callers handle an unreachable server as an OSError
            raise OSError(f"{method} {self.url}/{path}: {exc}") from exc
        self.calls.append((method, path, status))
        try:
            payload = json.loads(text) if text else {}
        except ValueError:
            payload = {"error": text}
        return status, payload

    def live(self, timeout=5.0):
        try:
            return self.call("GET", "v2/health/live", timeout=timeout)[0] == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def served(self):
        """{model: [READY versions]} from the repository index (models of the repository only)."""
        status, payload = self.call("POST", "v2/repository/index", {})
        if status != 200:
            raise RolloutError(f"server {self.name}: repository index answered {status}: {_error(payload)} — is Triton "
                               "running with --model-control-mode=explicit (the repository API is refused otherwise)?")
        found = {}
        for entry in payload if isinstance(payload, list) else []:
            versions = found.setdefault(entry.get("name"), [])
            if entry.get("state") == "READY" and str(entry.get("version", "")).isdigit():
                versions.append(int(entry["version"]))
        return {name: sorted(v) for name, v in found.items()}

    def is_loaded(self, model):
        return self.call("GET", f"v2/models/{quote(model, safe='')}/ready", timeout=10)[0] == 200

    def load(self, model, config=None, files=None):
        parameters = {}
        if config is not None:
            parameters["config"] = config
        for key, content in (files or {}).items():
            parameters[key] = base64.b64encode(content).decode("ascii")
        status, payload = self.call("POST", f"v2/repository/models/{quote(model, safe='')}/load",
                                    {"parameters": parameters} if parameters else {})
        if status != 200:
            raise CheckFailed(f"loading {model!r} failed: {_error(payload)}")

    def unload(self, model):
        status, payload = self.call("POST", f"v2/repository/models/{quote(model, safe='')}/unload", {})
        if status != 200:
            raise CheckFailed(f"unloading {model!r} failed: {_error(payload)}")

    def repository_writes(self):
        return [f"{m} {p}" for m, p, _s in self.calls if p.endswith(("/load", "/unload"))]


class CheckFailed(TritonFilError):
    """One server did not load or answer as expected; the message says what differed."""


def _error(payload):
    text = payload.get("error") if isinstance(payload, dict) else str(payload)
    text = str(text or payload)
    return text if len(text) < 600 else text[:600] + " ..."


class Targets:
    """Opens the servers to roll out to: the given URLs, or every Ready pod (one tunnel per pod, or its IP)."""

    def __init__(self, params, stack):
        self.params, self.stack = params, stack
        self.timeout = float(params["timeout"])
        self.by_name = {}

    def open(self, wait_for_ready=True):
        """The servers serving now (a list), [] when none is (no pod at all / no URL answers)."""
        kube = self.params.get("kubernetes")
        if kube:
            return self._open_pods(kube, wait_for_ready)
        return self._open_urls(self.params.get("servers") or [])

    def _open_urls(self, servers):
        targets, down = [], []
        for index, server in enumerate(servers):
            name = server.get("name") or f"server-{index}"
            target = self.by_name.get(name) or Target(name, server["url"], "url", self.timeout)
            (targets if target.live() else down).append(target)
        if targets and down:
            raise RolloutError(f"servers: {', '.join(f'{t.name} ({t.url})' for t in down)} do not answer while "
                               f"{', '.join(t.name for t in targets)} do — start them (or leave them out of servers) "
                               "so that every server gets the same versions")
        for target in targets:
            self.by_name[target.name] = target
        return targets

    def _open_pods(self, kube, wait_for_ready):
        namespace, selector = kube["namespace"], kube["selector"]
        deadline = time.monotonic() + (self.timeout if wait_for_ready else 0)
        while True:
            try:
                pods = list_pods(kube["kubeconfig"], kube.get("context"), namespace, selector)
            except TunnelError as exc:
                raise RolloutError(str(exc)) from None
            ready = sorted((p for p in pods if pod_is_ready(p)), key=lambda p: p["metadata"]["name"])
            if ready or not pods or time.monotonic() >= deadline:
                break
            time.sleep(2.0)
        if pods and not ready:
            listed = ", ".join(f"{p['metadata']['name']} ({(p.get('status') or {}).get('phase', 'Unknown')})"
                               for p in pods)
            raise RolloutError(f"pods matching {selector!r} in namespace {namespace!r} exist but none is Ready after "
                               f"{self.timeout:.0f}s ({listed}): a rollout needs serving pods to verify on — kubectl -n "
                               f"{namespace} get pods,events")
        targets = []
        port = int(kube.get("port") or 8000)
        for pod in ready:
            name = f"{namespace}/{pod['metadata']['name']}"
            if name in self.by_name:
                targets.append(self.by_name[name])
                continue
            if kube.get("tunnel", True):
                tunnel = KubeTunnel(kube["kubeconfig"], kube.get("context"), namespace, selector, [port],
                                    pod=pod["metadata"]["name"])
                try:
                    self.stack.enter_context(tunnel)
                except TunnelError as exc:
                    raise RolloutError(str(exc)) from None
                target = Target(name, f"http://127.0.0.1:{tunnel.ports[port]}", "tunnel", self.timeout)
            else:
                ip = (pod.get("status") or {}).get("podIP")
                if not ip:
                    continue
                target = Target(name, f"http://{ip}:{port}", "pod-ip", self.timeout)
            self.by_name[name] = target
            targets.append(target)
        return targets


# ------------------------------------------------------------------------------ checks
def check_answers(target, model, version, local, timeout, expect_version=None):
    """Wait for model (version) on target, compare its metadata with the configuration and its outputs with the
    reference; return a report. Raises CheckFailed naming the difference."""
    # Every call bounded by timeout, and a non-Triton answer named as such (verify's TritonServer).
    client = verify.TritonServer("http", target.url, timeout)
    try:
        try:
            verify.wait_ready(client, model, str(version) if version else "", timeout)
            metadata = verify.normalize_metadata(client.call("get_model_metadata", model, str(version) if version else ""))
        except (verify.VerifyError, verify.InferenceServerException) as exc:
            raise CheckFailed(str(exc)) from None
        problems = verify.compare_metadata(metadata, expected_tensors(local.configs[local.server_config], local.name))
        if problems:
            raise CheckFailed("metadata differs from the configuration: " + "; ".join(problems))
        reference = local.reference
        atol, rtol = float(reference.get("atol", 1e-5)), float(reference.get("rtol", 1e-4))
        inputs, expected = verify.to_arrays(reference["inputs"]), verify.to_arrays(reference["outputs"])
        try:
            actual, answered = verify.infer_with_version(client, model, str(version) if version else "", inputs,
                                                         list(expected))
        except (verify.VerifyError, verify.InferenceServerException) as exc:
            raise CheckFailed(f"inference failed: {exc}") from None
        report, problems = verify.compare_outputs(actual, expected, atol, rtol)
        if problems:
            raise CheckFailed("answered differently from the reference "
                              f"({os.path.basename(local.reference_path)}): " + "; ".join(problems))
        if expect_version is not None and answered != str(expect_version):
            raise CheckFailed(f"an unversioned request was answered by version {answered}, not {expect_version}")
        return {"matched": True, "rows": int(next(iter(inputs.values())).shape[0]), "answered_by": answered,
                "atol": atol, "rtol": rtol, "outputs": report}
    finally:
        try:
            client.close()
        except Exception:  # pylint: disable=broad-except
            pass


class SwitchTraffic:
    """A few clients sending unversioned reference requests to one server while it switches versions."""

    def __init__(self, url, model, reference, concurrency, timeout=30.0):
        self.url, self.model, self.concurrency, self.timeout = url, model, concurrency, timeout
        self.inputs = verify.to_arrays(reference["inputs"])
        self.outputs = list(reference["outputs"])
        self.versions, self.errors, self.requests = {}, [], 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []
        self._started = None

    def _worker(self):
        client = verify.make_client("http", self.url, timeout=self.timeout)
        try:
            while not self._stop.is_set():
                try:
                    _outputs, version = verify.infer_with_version(client, self.model, "", self.inputs, self.outputs)
                    with self._lock:
                        self.requests += 1
                        self.versions[version] = self.versions.get(version, 0) + 1
                except Exception as exc:  # pylint: disable=broad-except  # every failure counts
                    with self._lock:
                        self.requests += 1
                        self.errors.append(str(exc))
        finally:
            try:
                client.close()
            except Exception:  # pylint: disable=broad-except
                pass

    def __enter__(self):
        self._started = time.monotonic()
        for _client in range(self.concurrency):
            thread = threading.Thread(target=self._worker, daemon=True)
            thread.start()
            self._threads.append(thread)
        # Let the clients connect and answer before the switch begins.
        deadline = time.monotonic() + 5.0
        while self.concurrency and self.requests < self.concurrency and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    def report(self):
        return {"clients": self.concurrency, "requests": self.requests, "failed": len(self.errors),
                "first_error": self.errors[0] if self.errors else None,
                "answered_by_version": dict(sorted(self.versions.items())),
                "seconds": round(time.monotonic() - self._started, 3) if self._started else 0.0}


# ------------------------------------------------------------------------------ plan
def _versions_text(versions):
    return "[" + ", ".join(str(v) for v in versions) + "]" if versions else "nothing"


def plan_model(local, bucket, targets, served, params):
    """What one local model needs: unchanged, publish (no server), or rollout (candidate, switch, pin)."""
    bucket_configs = bucket.configs(local.name)
    want_configs = local.pinned_configs()
    config_uploads = sorted(rel for rel, text in want_configs.items() if bucket_configs.get(rel) != text)
    file_plans = [plan_sync(bucket.client, os.path.join(local.path, str(v)), bucket.bucket,
                            bucket.name(f"{local.name}/{v}"), compare=params.get("compare", "auto"))
                  for v in local.desired]
    file_uploads = [a for p in file_plans for a in p.uploads]
    bucket_server = bucket_configs.get(local.server_config) or bucket_configs.get(CONFIG_MAIN)
    pinned = pinned_versions(bucket_server, local.name) if bucket_server else None
    plan = {"model": local.name, "desired": local.desired, "bucket_pinned": pinned,
            "published": bool(bucket_configs), "config_uploads": config_uploads,
            "file_uploads": [a.describe() for a in file_uploads], "servers": {}}
    plan["_file_plans"], plan["_want_configs"] = file_plans, want_configs
    for target in targets:
        plan["servers"][target.name] = {"before": served[target.name].get(local.name, []), "after": local.desired}
    if not targets:
        if not config_uploads and not file_uploads:
            plan["action"] = "unchanged"
        elif bucket_configs and not params.get("unverified_publish"):
            raise RolloutError(
                f"{local.name}: the bucket serves {_versions_text(pinned) if pinned else 'its configuration'} and "
                f"{_versions_text(local.desired)} is wanted, but no Triton server is serving to verify "
                f"{_versions_text(local.desired)} on ({_no_server_reason(params)}). Deploy first with what the "
                "bucket serves, or set unverified_publish (model_rollout_unverified_publish) to pin the new "
                "versions without a check (verify then checks the served model)")
        else:
            plan["action"] = "publish"
        return plan
    every_server_serves = all(served[t.name].get(local.name, []) == local.desired for t in targets)
    if not config_uploads and not file_uploads and every_server_serves:
        plan["action"] = "unchanged"
    else:
        plan["action"] = "rollout"
        plan["new_model"] = not any(served[t.name].get(local.name) for t in targets)
    return plan


def _no_server_reason(params):
    kube = params.get("kubernetes")
    if kube:
        return f"no pod matches {kube['selector']!r} in namespace {kube['namespace']!r}"
    return "none of " + ", ".join(s["url"] for s in params.get("servers") or []) + " answers"


def describe_plan(plan):
    model, action = plan["model"], plan["action"]
    if action == "unchanged":
        return f"{model}: {_versions_text(plan['desired'])} served everywhere, nothing to do"
    if action == "publish":
        return (f"{model}: no server serves yet: publish {_versions_text(plan['desired'])} to the bucket "
                f"({len(plan['file_uploads'])} file(s), {len(plan['config_uploads'])} configuration(s))")
    if action == "remove":
        return f"{model}: unload from {', '.join(plan['servers'])} (kept in the bucket)"
    if action == "kept":
        return (f"{model}: served but not in the local repository; kept (remove_missing is off) on "
                f"{', '.join(plan['servers'])}")
    if action == "cleanup":
        return f"{model}: a candidate left by an interrupted rollout: unload it from {', '.join(plan['servers'])}"
    moves = "; ".join(f"{name}: {_versions_text(s['before'])} -> {_versions_text(s['after'])}"
                      for name, s in plan["servers"].items())
    return (f"{model}: {'new model, ' if plan.get('new_model') else ''}verify {_versions_text(plan['desired'])} as "
            f"{candidate_name(model)} on every server, then switch ({moves}), then pin the bucket's configuration")


def plan_diff(plans, bucket):
    before, after = [], []
    for plan in plans:
        for name, moves in plan["servers"].items():
            if moves["before"] != moves["after"]:
                before.append(f"{name}: {plan['model']} {_versions_text(moves['before'])}\n")
                after.append(f"{name}: {plan['model']} {_versions_text(moves['after'])}\n")
        for rel in plan.get("config_uploads", []):
            was = plan.get("bucket_pinned")
            before.append(f"{bucket.url(plan['model'] + '/' + rel)}: "
                          f"{('pins ' + _versions_text(was)) if was else ('not pinned' if plan['published'] else 'absent')}\n")
            after.append(f"{bucket.url(plan['model'] + '/' + rel)}: pins {_versions_text(plan['desired'])}\n")
        for upload in plan.get("file_uploads", []):
            after.append(f"gs://{bucket.bucket}/{upload['object']} ({upload['bytes']} bytes)\n")
    return {"before_header": bucket.url(), "after_header": bucket.url(), "before": "".join(before),
            "after": "".join(after)}


# ------------------------------------------------------------------------------ execute
def _sync_files(bucket, plan, parallelism):
    done = []
    for file_plan in plan["_file_plans"]:
        done += execute_plan(bucket.client, file_plan, parallelism)
    return [a.name for a in done]


def _write_configs(bucket, plan):
    for rel in plan["config_uploads"]:
        bucket.write(plan["model"], rel, plan["_want_configs"][rel])
    return [bucket.name(f"{plan['model']}/{rel}") for rel in plan["config_uploads"]]


def _verify_candidate(targets, local, timeout, record):
    """Load the desired versions as the candidate on every server and check them; always unload it."""
    name = candidate_name(local.name)
    config = config_json(local.configs[local.server_config], local.name, name=name, versions=local.desired)
    files = local.candidate_files()
    loaded = []
    try:
        for target in targets:
            try:
                target.load(name, config=config, files=files)
                loaded.append(target)
                report = check_answers(target, name, max(local.desired), local, timeout)
                for version in local.desired[:-1]:  # the reference is the newest's; the others must be ready
                    if target.call("GET", f"v2/models/{quote(name, safe='')}/versions/{version}/ready")[0] != 200:
                        raise CheckFailed(f"version {version} of the candidate is not ready")
            except (CheckFailed, urllib.error.URLError, OSError) as exc:
                raise CheckFailed(f"on server {target.name}: {exc}") from None
            record[target.name] = report
    finally:
        for target in loaded:
            try:
                target.unload(name)
            except (CheckFailed, urllib.error.URLError, OSError):
                pass  # a candidate left loaded is unloaded by the next run (plan "cleanup")


def _switch(targets, local, plan, params, record, traffic):
    """Load the pinned configuration on each server in turn (traffic running), then check what it serves."""
    config = config_json(local.configs[local.server_config], local.name, versions=local.desired)
    for target in targets:
        serving_before = plan["servers"][target.name]["before"]
        clients = int(params["switch_clients"]) if serving_before else 0
        loop = SwitchTraffic(target.url, local.name, local.reference, clients, timeout=float(params["timeout"]))
        try:
            with loop:
                target.load(local.name, config=config)
                record[target.name] = check_answers(target, local.name, None, local, float(params["timeout"]),
                                                    expect_version=max(local.desired))
                served = target.served().get(local.name, [])
                if served != local.desired:
                    raise CheckFailed(f"serves versions {served} after the load, not {local.desired}")
        except (CheckFailed, verify.VerifyError, urllib.error.URLError, OSError) as exc:
            traffic[target.name] = loop.report()
            raise CheckFailed(f"on server {target.name}: {exc}") from None
        traffic[target.name] = loop.report()


def _revert(targets, local, plan, bucket_configs):
    """Load the versions each server served before (the bucket's configuration pinned to them), or unload."""
    reverted, problems = [], []
    old = bucket_configs.get(local.server_config) or bucket_configs.get(CONFIG_MAIN)
    for target in targets:
        before = plan["servers"][target.name]["before"]
        try:
            if before and old:
                target.load(local.name, config=config_json(old, local.name, versions=before))
            elif not before:
                target.unload(local.name)
            reverted.append(target.name)
        except (CheckFailed, urllib.error.URLError, OSError) as exc:
            problems.append(f"{target.name}: {exc}")
    return reverted, problems


def _settle(targets_handle, local_by_name, done, timeout):
    """After the pins are written: every Ready server (a pod that started or restarted meanwhile too) serves
    the desired versions; a straggler is loaded from the bucket (no override: the pinned configuration)."""
    settled = []
    for target in targets_handle.open(wait_for_ready=False):
        served = target.served()
        for name in done:
            local = local_by_name[name]
            if served.get(name, []) != local.desired:
                target.load(name)
                check_answers(target, name, None, local, timeout, expect_version=max(local.desired))
                settled.append(f"{target.name}: {name} {_versions_text(local.desired)}")
    return settled


def check_params(params):
    """The module's input checks, before any call: the bucket name, the counts, a non-empty server list."""
    problems = [p for p in [check_bucket_name(params["bucket"], "bucket")] if p]
    problems += [f"{option} ({params[option]}) must be at least {low}"
                 for option, low in (("timeout", 1), ("parallelism", 1), ("switch_clients", 0)) if params[option] < low]
    if params["servers"] is not None and not params["servers"]:
        problems.append("servers is empty — list the servers' URLs, or use kubernetes")
    return problems


def run_rollout(client, params, check_mode):
    """The module's flow; returns the result dict. Raises RolloutError (nothing written) or RolloutFailed."""
    local_models = read_local(params["src"], params.get("models"), params.get("config_name") or "",
                              params.get("references"))
    local_by_name = {m.name: m for m in local_models}
    bucket = Bucket(client, params["bucket"], params.get("prefix", ""))
    result = {"changed": False, "bucket": bucket.url(), "servers": [], "models": {}, "plan": [],
              "uploaded": [], "repository_calls": [], "switch_warnings": [], "rollouts": []}
    with ExitStack() as stack:
        handle = Targets(params, stack)
        targets = handle.open()
        result["servers"] = [t.describe() for t in targets]
        served = {t.name: t.served() for t in targets}
        plans = [plan_model(m, bucket, targets, served, params) for m in local_models]
        plans += _served_elsewhere(targets, served, local_by_name, params)
        plans += _stale_candidates(targets, local_models)
        result["plan"] = [describe_plan(p) for p in plans]
        result["served_models"] = sorted({p["model"] for p in plans if p["action"] not in ("remove", "cleanup")})
        changing = [p for p in plans if p["action"] not in ("unchanged", "kept")]
        result["changed"] = bool(changing)
        result["diff"] = plan_diff(changing, bucket)
        for plan in plans:
            result["models"][plan["model"]] = {k: v for k, v in plan.items() if not k.startswith("_")}
        if check_mode or not changing:
            return result
        for plan in plans:
            try:
                _apply(plan, bucket, targets, local_by_name, params, result)
            except CheckFailed as exc:
                result["repository_calls"] = [c for t in targets for c in t.repository_writes()]
                raise RolloutFailed(f"{plan['model']}: {exc}", result) from None
        done = [p["model"] for p in plans if p["action"] == "rollout"]
        if done and targets:
            try:
                result["settled"] = _settle(handle, local_by_name, done, float(params["timeout"]))
            except (CheckFailed, RolloutError, urllib.error.URLError, OSError) as exc:
                raise RolloutFailed(f"after the rollout, a server that started meanwhile did not take the pinned "
                                    f"versions: {exc}", result) from None
        result["repository_calls"] = [c for t in handle.by_name.values() for c in t.repository_writes()]
    result["rollouts"] = [_rollout_summary(name, result["models"][name]) for name in done]
    return result


def _served_elsewhere(targets, served, local_by_name, params):
    """Plans of served models not in the local repository (or not among models): removed when asked, else kept."""
    scope = set(local_by_name) if not params.get("models") else set(params["models"])
    extra = {}
    for target in targets:
        for name, versions in served[target.name].items():
            if versions and name not in local_by_name and (not params.get("models") or name not in scope):
                extra.setdefault(name, {})[target.name] = {"before": versions, "after": []}
    plans = []
    for name, moves in sorted(extra.items()):
        if params.get("remove_missing") and not params.get("models"):
            plans.append({"model": name, "action": "remove", "servers": moves, "desired": []})
        else:
            plans.append({"model": name, "action": "kept", "desired": moves[next(iter(moves))]["before"],
                          "servers": {t: {"before": m["before"], "after": m["before"]} for t, m in moves.items()}})
    return plans


def _stale_candidates(targets, local_models):
    """Cleanup plans of candidates an interrupted rollout left loaded."""
    plans = []
    for local in local_models:
        stale = [t for t in targets if t.is_loaded(candidate_name(local.name))]
        if stale:
            plans.append({"model": candidate_name(local.name), "action": "cleanup", "desired": [],
                          "servers": {t.name: {"before": ["loaded"], "after": []} for t in stale}})
    return plans


def _apply(plan, bucket, targets, local_by_name, params, result):
    """Carry out one plan: publish its files, unload it (remove, cleanup) or roll it out."""
    if plan["action"] == "publish":
        result["uploaded"] += _sync_files(bucket, plan, params["parallelism"])
        result["uploaded"] += _write_configs(bucket, plan)
    elif plan["action"] in ("remove", "cleanup"):
        for target in targets:
            if target.name in plan["servers"]:
                target.unload(plan["model"])
    elif plan["action"] == "rollout":
        _rollout_one(bucket, targets, local_by_name[plan["model"]], plan, params, result["models"][plan["model"]],
                     result)


def _rollout_summary(name, entry):
    before = sorted({tuple(s["before"]) for s in entry["servers"].values()})
    was = " / ".join(_versions_text(list(v)) for v in before)
    traffic = entry.get("traffic", {"requests": 0, "failed": 0})
    return {"model": name, "before": {t: s["before"] for t, s in entry["servers"].items()},
            "versions": entry["desired"], "servers": len(entry["servers"]), "requests": traffic["requests"],
            "failed": traffic["failed"],
            "summary": (f"{name}: {was} -> {_versions_text(entry['desired'])} on {len(entry['servers'])} server(s), "
                        f"{traffic['failed']} of {traffic['requests']} requests failed during the switch")}


def _rollout_one(bucket, targets, local, plan, params, entry, result):
    """Candidate on every server, switch on each, pin the bucket; a failure reverts and raises CheckFailed."""
    old_configs = bucket.configs(local.name)
    serving = {t: s["before"] for t, s in plan["servers"].items()}
    keeps = ("; " + ", ".join(f"{t} keeps serving {_versions_text(v)}" for t, v in serving.items() if v)) \
        if any(serving.values()) else "; it serves nowhere"
    versions = _versions_text(local.desired)
    label = f"version {local.desired[0]}" if len(local.desired) == 1 else f"versions {versions}"
    folders = ", ".join(f"{local.name}/{v}/" for v in local.desired if v not in (plan["bucket_pinned"] or []))
    pinned = plan["bucket_pinned"]
    bucket_state = (f"the bucket's configuration still pins {_versions_text(pinned)}" if pinned
                    else "the bucket holds no configuration of it" if not plan["published"]
                    else "the bucket's configuration is unchanged")
    bucket_state += f" ({folders} stay there unserved; nothing was deleted)" if folders else " (nothing was deleted)"
    result["uploaded"] += _sync_files(bucket, plan, params["parallelism"])
    entry["candidate"] = {}
    try:
        _verify_candidate(targets, local, float(params["timeout"]), entry["candidate"])
    except CheckFailed as exc:
        raise CheckFailed(f"{label} refused {exc}{keeps}; {bucket_state}") from None
    entry["switch"], entry["served"] = {}, {}
    try:
        _switch(targets, local, plan, params, entry["served"], entry["switch"])
    except CheckFailed as exc:
        reverted, problems = _revert(targets, local, plan, old_configs)
        tail = f"; reverting failed on {'; '.join(problems)}" if problems else ""
        raise CheckFailed(f"switching to {label} failed {exc}; reverted {', '.join(reverted) or 'nothing'} to "
                          f"what it served{tail}; {bucket_state}") from None
    try:
        result["uploaded"] += _write_configs(bucket, plan)
    except GcpError as exc:
        reverted, problems = _revert(targets, local, plan, old_configs)
        tail = f"; reverting failed on {'; '.join(problems)}" if problems else ""
        raise CheckFailed(f"every server serves {versions}, but pinning them in the bucket failed ({exc}); reverted "
                          f"{', '.join(reverted) or 'nothing'} to what the bucket serves{tail}") from None
    entry["traffic"] = {
        "requests": sum(r["requests"] for r in entry["switch"].values()),
        "failed": sum(r["failed"] for r in entry["switch"].values()),
    }
    if entry["traffic"]["failed"]:
        first = next(r["first_error"] for r in entry["switch"].values() if r["failed"])
        result["switch_warnings"].append(
            f"{local.name}: {versions} serves and answers like its reference on every server, "
            f"but {entry['traffic']['failed']} of {entry['traffic']['requests']} requests failed "
            f"during the switch (first: {first})")
