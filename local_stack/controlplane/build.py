#!/usr/bin/env python
"""Build the local Kubernetes control plane from Go modules, once per pinned version, into a cache.

The programs come from the Go module proxy, never from a download site or a committed binary:

- ``kube-apiserver``, ``kube-controller-manager``, ``kube-scheduler`` from ``k8s.io/kubernetes``
  (go/kubernetes: a wrapper module whose ``replace`` lines point the staging modules at their published
  versions of the same release);
- ``etcd`` from ``go.etcd.io/etcd/server/v3`` (the release Kubernetes pins in build/dependencies.yaml);
- ``kwok`` from ``sigs.k8s.io/kwok`` (fake nodes and pods, and the kubelet API for port-forward);
- ``metrics-adapter``: our stand-in for custom-metrics-stackdriver-adapter, built on the library the real
  adapter is built on (``sigs.k8s.io/custom-metrics-apiserver``).

The cache lives outside the checkout (``$TRITON_FIL_CACHE``, default ``$XDG_CACHE_HOME/rapids-triton-fil``
or ``~/.cache/rapids-triton-fil``), keyed by a digest of each wrapper module (go.mod, go.sum, *.go) and the
Go version, so a fresh clone on the same machine reuses it and a re-pin builds anew. Each program is
built into a temporary folder and renamed into place, so an interrupted build leaves nothing half-made.

CLI: build.py [--print-dir]   (builds what is missing, prints the bin folder)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from local_stack.programs import find_program

HERE = Path(__file__).resolve().parent
GO_MODULES = HERE / "go"

# wrapper module folder -> {program name: Go package path}
PROGRAMS = {
    "kubernetes": {
        "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
        "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
        "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    },
    "etcd": {"etcd": "go.etcd.io/etcd/server/v3"},
    "kwok": {"kwok": "sigs.k8s.io/kwok/cmd/kwok"},
    "metrics-adapter": {"metrics-adapter": "."},
}


class BuildError(RuntimeError):
    """A Go build failed or the toolchain is missing."""


def log(msg):
    print(f"controlplane-build: {msg}", file=sys.stderr, flush=True)


def cache_root():
    explicit = os.environ.get("TRITON_FIL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rapids-triton-fil"


def go_binary():
    return find_program("go", BuildError("the Go toolchain is not on PATH: the local control plane is built from Go "
                                         "modules (Go >= 1.26 and the Go module proxy); install Go or use a machine "
                                         "of the polyglot kind"))


def go_version(go):
    out = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True, check=True).stdout.strip()
    return out or "unknown"


def module_version(module_dir, module_path):
    """The version a wrapper module requires of module_path (from its go.mod)."""
    text = (module_dir / "go.mod").read_text()
    found = re.search(rf"^\s*(?:require\s+)?{re.escape(module_path)}\s+(v\S+)", text, re.MULTILINE)
    return found.group(1) if found else None


def kubernetes_version():
    return module_version(GO_MODULES / "kubernetes", "k8s.io/kubernetes")


def module_digest(module_dir, go_ver):
    digest = hashlib.sha256(go_ver.encode())
    for path in sorted(module_dir.iterdir()):
        if path.is_file() and (path.suffix == ".go" or path.name in ("go.mod", "go.sum")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def staging_replacements_match(module_dir, go, env):
    """The wrapper's replace lines name exactly the staging modules k8s.io/kubernetes points at ./staging."""
    version = kubernetes_version()
    info = subprocess.run([go, "mod", "download", "-json", f"k8s.io/kubernetes@{version}"], cwd=module_dir,
                          capture_output=True, text=True, env=env, check=False)
    gomod = re.search(r'"GoMod":\s*"([^"]+)"', info.stdout)
    if info.returncode != 0 or not gomod:
        raise BuildError(f"go mod download k8s.io/kubernetes@{version} failed:\n{info.stdout}{info.stderr}")
    upstream = set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+\./staging/", Path(gomod.group(1)).read_text(),
                              re.MULTILINE))
    ours = set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+=>\s+k8s\.io/", (module_dir / "go.mod").read_text(),
                          re.MULTILINE))
    if upstream != ours:
        raise BuildError(f"go/kubernetes/go.mod replaces {sorted(ours ^ upstream)} differently from "
                         f"k8s.io/kubernetes@{version}'s staging list: regenerate the replace block")


def ldflags(name):
    """Strip symbols; stamp the Kubernetes version as hack/lib/version.sh does (kube::version::ldflags), so
    /version answers v1.x.y (helm checks a chart's kubeVersion against it) instead of v0.0.0-master."""
    flags = ["-s", "-w"]
    if name == "kubernetes":
        version = kubernetes_version()
        major, minor = version.lstrip("v").split(".")[:2]
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
            flags += [f"-X {package}.gitVersion={version}", f"-X {package}.gitMajor={major}",
                      f"-X {package}.gitMinor={minor}", f"-X {package}.gitTreeState=clean",
                      f"-X {package}.buildDate=1970-01-01T00:00:00Z"]
    return " ".join(flags)


def bin_dir():
    """The cache folder holding every program, built on first use."""
    go = go_binary()
    go_ver = go_version(go)
    keys = {name: module_digest(GO_MODULES / name, go_ver + ldflags(name)) for name in PROGRAMS}
    combined = hashlib.sha256("".join(f"{k}={v}" for k, v in sorted(keys.items())).encode()).hexdigest()[:12]
    target = cache_root() / "controlplane" / f"k8s-{kubernetes_version()}-{combined}" / "bin"
    missing = {name: progs for name, progs in PROGRAMS.items()
               if any(not (target / prog).exists() for prog in progs)}
    if not missing:
        return target
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-mod=mod")
    env["CGO_ENABLED"] = "0"
    target.mkdir(parents=True, exist_ok=True)
    for name, progs in missing.items():
        module_dir = GO_MODULES / name
        if name == "kubernetes":
            staging_replacements_match(module_dir, go, env)
        started = time.monotonic()
        log(f"building {', '.join(progs)} from {module_dir.relative_to(HERE.parent.parent)} "
            f"(once per version; cached in {target})")
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
            out = tmp + "/" if len(progs) > 1 else str(Path(tmp) / next(iter(progs)))
            cmd = [go, "build", "-trimpath", f"-ldflags={ldflags(name)}", "-o", out, *progs.values()]
            result = subprocess.run(cmd, cwd=module_dir, env=env, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise BuildError(f"{' '.join(cmd)} failed in {module_dir}:\n{result.stdout}{result.stderr}")
            for prog in progs:
                os.replace(Path(tmp) / prog, target / prog)
        log(f"built {', '.join(progs)} in {time.monotonic() - started:.0f}s")
    return target


# kwok's own default stages, as kwokctl assembles them (sigs.k8s.io/kwok pkg/kwokctl/runtime/cluster.go,
# getDefaultNodeStages with a node lease, getDefaultPodStages): read from the module the build used.
KWOK_STAGES = ("kustomize/stage/node/fast/node-initialize.yaml",
               "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
               "kustomize/stage/pod/fast/pod-ready.yaml", "kustomize/stage/pod/fast/pod-complete.yaml",
               "kustomize/stage/pod/fast/pod-delete.yaml")


def kwok_module_dir():
    """The sigs.k8s.io/kwok source in the Go module cache (downloaded by the build)."""
    go = go_binary()
    version = module_version(GO_MODULES / "kwok", "sigs.k8s.io/kwok")
    result = subprocess.run([go, "mod", "download", "-json", f"sigs.k8s.io/kwok@{version}"], cwd=GO_MODULES / "kwok",
                            capture_output=True, text=True, check=False)
    found = re.search(r'"Dir":\s*"([^"]+)"', result.stdout)
    if result.returncode != 0 or not found:
        raise BuildError(f"go mod download sigs.k8s.io/kwok@{version} failed:\n{result.stdout}{result.stderr}")
    return Path(found.group(1))


def kwok_stages():
    source = kwok_module_dir()
    return [(source / path).read_text() for path in KWOK_STAGES]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    try:
        print(bin_dir())
    except BuildError as exc:
        log(str(exc))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
