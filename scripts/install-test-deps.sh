#!/usr/bin/env bash
# Installs what the end-to-end tests (tests/e2e) need: the Python packages pinned in
# requirements-test.txt (Playwright drives the browser), Debian's fiu-utils (fiu-run,
# fiu-ctrl) for fault injection, and Debian's Chromium with a CJK font for the dashboard.
# Safe to run again: it only installs what is missing, and returns quickly when nothing is.
# 安装端到端测试所需的依赖（Python 包、fiu-utils、Chromium 与中文字体）；可重复执行。
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo -n "$@"
  else
    echo "install-test-deps: need root to run: $*" >&2
    return 1
  fi
}

apt_install() {
  # Try with the package lists we have; refresh them only if that fails.
  export DEBIAN_FRONTEND=noninteractive
  if ! as_root apt-get install -y -q --no-install-recommends "$@"; then
    as_root apt-get update -q
    as_root apt-get install -y -q --no-install-recommends "$@"
  fi
}

# --- Python packages -------------------------------------------------------------------
# Pinned versions already installed: nothing to do (pip is slow to say so).
if ! "$python" - requirements-test.txt <<'PY' 2>/dev/null
import sys
from importlib.metadata import version, PackageNotFoundError
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line:
        continue
    name, _, wanted = line.partition("==")
    try:
        if version(name) != wanted:
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
PY
then
  if ! "$python" -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
  fi
  # A Debian system Python refuses pip installs (PEP 668) unless told otherwise.
  if "$python" -c 'import sys, sysconfig, os; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()["stdlib"], "EXTERNALLY-MANAGED")) else 1)'; then
    export PIP_BREAK_SYSTEM_PACKAGES=1
  fi
  PIP_ROOT_USER_ACTION=ignore "$python" -m pip install -q --disable-pip-version-check -r requirements-test.txt
fi

# --- fault injection ---------------------------------------------------------------------
if ! command -v fiu-run >/dev/null 2>&1 || ! command -v fiu-ctrl >/dev/null 2>&1; then
  apt_install fiu-utils
fi

# --- the dashboard's browser tests: Debian's Chromium, and a font with Chinese glyphs ------
if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium
fi
if [ ! -d /usr/share/fonts/truetype/wqy ]; then
  apt_install fonts-wqy-microhei
fi

echo "install-test-deps: python packages, fiu-utils, chromium and fonts are installed"
