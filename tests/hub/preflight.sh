#!/bin/sh
# Whether `make hub` can run here: exits 0 when it can (installing configurable-http-proxy with npm on the
# way), else prints "hub skipped: <why>" and exits 1. The reasons are the test's own (hub_support.preflight).
set -u
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
    echo "hub skipped: it creates Unix users and runs JupyterHub as root; run \`make hub\` as root (CI does)"
    exit 1
fi
exec .venv/bin/python -c '
import sys
sys.path.insert(0, "tests/hub")
from hub_support import preflight
reason = preflight()
if reason:
    print(reason)
sys.exit(1 if reason else 0)
'
