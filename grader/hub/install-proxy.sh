#!/bin/sh
# Install JupyterHub's proxy, configurable-http-proxy, exactly as package-lock.json pins it, with `npm ci`
# into .leaklab/hub/node_modules (git-ignored), where jupyterhub_config.py looks for it. Needs Node >= 20 and
# npm; reinstalls only when the lock file changed. Prints the proxy's path; on failure, why, and exits 1.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=${LEAKLAB_HUB_NODE_DIR:-$(cd "$here/../.." && pwd)/.leaklab/hub}
proxy=$dest/node_modules/.bin/configurable-http-proxy

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "configurable-http-proxy needs Node.js 20 or newer and npm: $tool is not installed" >&2
        exit 1
    fi
done
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
    echo "configurable-http-proxy needs Node.js 20 or newer: this is $(node --version)" >&2
    exit 1
fi

if [ -x "$proxy" ] && cmp -s "$here/package-lock.json" "$dest/package-lock.json"; then
    echo "$proxy"
    exit 0
fi
mkdir -p "$dest"
cp "$here/package.json" "$here/package-lock.json" "$dest/"
log=$dest/npm-ci.log
if ! (cd "$dest" && npm ci --omit=dev --no-audit --no-fund) >"$log" 2>&1 || [ ! -x "$proxy" ]; then
    rm -f "$dest/package-lock.json"  # so that the next run tries again
    echo "npm ci could not install configurable-http-proxy: $(tail -n 1 "$log") (full log: $log)" >&2
    exit 1
fi
echo "$proxy"
