#!/usr/bin/env bash
# Prints the path of a headless-capable Chromium, installing Debian's
# `chromium` package when none is found. The page test runs this; .ci/run
# runs it once up front.
set -euo pipefail
for c in chromium chromium-browser google-chrome; do
    if p=$(command -v "$c" 2>/dev/null); then echo "$p"; exit 0; fi
done
sudo=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; fi
echo "chromium.sh: installing Debian's chromium" >&2
{ $sudo apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null 2>&1 &&
        $sudo apt-get install -y --no-install-recommends chromium >/dev/null 2>&1; }; } || true
for c in chromium chromium-browser; do
    if p=$(command -v "$c" 2>/dev/null); then echo "$p"; exit 0; fi
done
echo "chromium.sh: no chromium could be installed" >&2
exit 1
