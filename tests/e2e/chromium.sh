#!/bin/sh
# Make sure the browser test has a Chromium to drive, or say why not: prints "e2e skipped: <why>" and exits 1.
# As root on Debian/Ubuntu it installs Debian's `chromium` with apt-get (about 30 s and 480 MB; CI runs as root).
# LEAKLAB_CHROMIUM=/path/to/chromium picks another Chromium (or Chrome) binary.
set -u
if [ -n "${LEAKLAB_CHROMIUM:-}" ]; then
    [ -x "$LEAKLAB_CHROMIUM" ] && exit 0
    echo "e2e skipped: LEAKLAB_CHROMIUM=$LEAKLAB_CHROMIUM is not an executable file"
    exit 1
fi
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "e2e skipped: Chromium is not installed and there is no apt-get here to install it" \
        "(install Chromium, or set LEAKLAB_CHROMIUM=/path/to/chromium)"
    exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "e2e skipped: Chromium is not installed and installing it needs root: sudo apt-get install chromium"
    exit 1
fi
mkdir -p .leaklab
log=.leaklab/apt-chromium.log
echo "e2e: installing Chromium with apt-get (about 30 s, 480 MB; log: $log)"
export DEBIAN_FRONTEND=noninteractive
# A fresh container has no package lists yet: update once if the first try cannot find the package.
if { apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; } >"$log" 2>&1 \
    && command -v chromium >/dev/null 2>&1; then
    exit 0
fi
echo "e2e skipped: apt-get could not install chromium: $(tail -n 1 "$log") (full log: $log)"
exit 1
