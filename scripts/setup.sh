#!/usr/bin/env bash
# Sets up everything Lamina needs on a Debian machine with Python 3.11: the system packages,
# a virtualenv in .venv, and the package (with test tools, the benchmark's peer and plotting,
# and `wrk` when called with "test" or "bench": the tests run a short benchmark too).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
WHAT="${1:-run}"

need_apt=()
command -v curl >/dev/null 2>&1 || need_apt+=(curl)          # the classic shell bootstrap in tests
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)   # the sandbox launcher
ldconfig -p 2>/dev/null | grep -q libseccomp.so.2 || need_apt+=(libseccomp2)  # seccomp filters
command -v mkfs.ext4 >/dev/null 2>&1 || need_apt+=(e2fsprogs)   # sandboxes' /tmp images
command -v prlimit >/dev/null 2>&1 || need_apt+=(util-linux)
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)       # outbound network for sandboxes
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
if [ "$WHAT" = bench ] || [ "$WHAT" = test ]; then
  command -v wrk >/dev/null 2>&1 || need_apt+=(wrk)          # the HTTP load generator of bench/ (G7)
fi
if [ "$WHAT" = test ]; then
  command -v node >/dev/null 2>&1 || need_apt+=(nodejs)      # the Node.js runtime's tests
  command -v npm >/dev/null 2>&1 || need_apt+=(npm)          # the SDK, test packages, `lamina build` tests
fi
command -v "$PYTHON" >/dev/null 2>&1 || need_apt+=(python3.11 python3.11-venv)
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then need_apt+=(python3.11-venv); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "setup: installing system packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PYTHON"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.installed-$WHAT"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Lamina ($WHAT) into .venv"
  case "$WHAT" in
    test|bench) extra='.[test,bench]' ;;
    *) extra='.' ;;
  esac
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$extra"
  touch "$stamp"
fi

# The AWS SDK for JavaScript v3 clients the Node.js runtimes carry (as Lambda's do), pinned by the
# committed package-lock.json; with "test", also the npm packages the Node.js tests vendor into
# their functions' zips. Without npm the server still runs Node.js functions, without the SDK.
npm_ci() {  # npm_ci DIR: install DIR/package-lock.json into DIR/node_modules, unless already done
  local dir="$1" stamp="$1/node_modules/.package-lock.json"
  if [ -f "$stamp" ] && [ ! "$dir/package-lock.json" -nt "$stamp" ]; then return 0; fi
  echo "setup: installing $dir/package-lock.json with npm"
  # No install scripts run; world-readable files, because sandbox uids read them through a mount.
  (cd "$dir" && umask 022 && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
}
if command -v node >/dev/null 2>&1; then
  if command -v npm >/dev/null 2>&1; then
    npm_ci lamina/runtimes/sdk/nodejs
    if [ "$WHAT" = test ]; then npm_ci tests/fixtures/nodejs; fi
  else
    echo "setup: warning: npm not found; Node.js functions will run without the bundled AWS SDK" >&2
  fi
fi
# The AWS SDK the managed Python runtimes carry (lamina/runtimes/sdk.py): each pinned set of
# lamina/runtimes/sdk_requirements goes into .runtime-sdk/<set>, byte-compiled for every python3.X
# on this host that uses it (sandboxes see it read-only), readable by the sandboxes' uids.
for req in lamina/runtimes/sdk_requirements/python3.*.txt; do
  set_name="$(basename "$req" .txt)"
  dir=".runtime-sdk/$set_name"
  if [ -f "$dir/.installed" ] && [ ! "$req" -nt "$dir/.installed" ]; then continue; fi
  interpreters="$(.venv/bin/python - "$set_name" <<'PY'
import sys
from lamina.runtimes.catalog import RuntimeCatalog
from lamina.runtimes.sdk import set_name
catalog = RuntimeCatalog.discover()
for rid in catalog.available:
    info = catalog.get(rid)
    if info is not None and info.interpreter is not None and set_name(rid) == sys.argv[1]:
        print(info.interpreter)
PY
)"
  [ -n "$interpreters" ] || continue   # no interpreter here uses this set
  echo "setup: installing the AWS SDK of the $set_name runtimes into $dir"
  rm -rf "$dir"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "${set_name#python}" --no-compile --target "$dir" -r "$req"
  for py in $interpreters; do "$py" -m compileall -q "$dir" >/dev/null; done
  chmod -R a+rX "$dir"
  touch "$dir/.installed"
done
