#!/usr/bin/env bash
# Bandwidth vs CPU of permessage-deflate (docs/compression.md) over loopback:
# the same capture slice served by `engine sim --compression none|deflate` at
# max speed and consumed by `engine run` (`compression` of the feed to match,
# signal_placement = "inline" so the engine is one receiver thread plus the
# sink). Prints one Markdown row per mode:
#
#   messages, payload bytes (`bytes`), wire bytes (`wire_bytes`: read from the
#   socket, framing included), wire bytes/msg, compression ratio
#   (payload / wire), engine CPU (perf stat task-clock of the whole process,
#   start-up included) and CPU per message, simulator CPU (utime + stime from
#   /proc when it is stopped) and per message.
#
# `CALLGRIND=1` also runs the engine under callgrind (a 20,000-line slice):
# instructions per message of the whole process in each mode.
#
#   scripts/deflate-bench.sh [capture.gz]     (default: the shared spot capture)
#   LINES=200000 RUNS=3 ENGINE=target/release/engine scripts/deflate-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wiresignal-target}"
SHARED="${WIRESIGNAL_SHARED:-../shared}"
capture="${1:-$SHARED/data/binance-spot/btcusdt_20240808.txt.gz}"
lines="${LINES:-200000}"
runs="${RUNS:-3}"
duration="${DURATION:-15}"
# Under callgrind the engine runs ~50x slower: long enough to drain the slice.
cg_duration="${CG_DURATION:-90}"
engine="${ENGINE:-}"
if [ -z "$engine" ]; then
    nice -n 19 cargo build --release -p engine >&2
    engine="$CARGO_TARGET_DIR/release/engine"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
zcat -f "$capture" | head -n "$lines" > "$work/slice.txt"
hz=$(getconf CLK_TCK)

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# $1 mode (none|deflate), $2 slice, $3 wrapper ("" or callgrind): prints
# "messages bytes wire_bytes compressed engine_ms sim_ms" (engine_ms: task-clock).
one_run() {
    local mode=$1 slice=$2 wrap=$3 port
    port=$(free_port)
    "$engine" sim "$slice" --listen "127.0.0.1:$port" --speed max --compression "$mode" \
        2> "$work/sim.log" &
    local sim=$!
    sleep 0.5
    cat > "$work/run.toml" <<EOF
[engine]
pin_cores = false
signal_placement = "inline"
[[feeds]]
ws_url = "ws://127.0.0.1:$port"
rest_url = "http://127.0.0.1:$port"
symbols = ["BTCUSDT"]
compression = "$mode"
EOF
    local ms
    if [ "$wrap" = callgrind ]; then
        valgrind --tool=callgrind --callgrind-out-file="$work/cg.$mode" \
            "$engine" run --config "$work/run.toml" --stats "$work/stats.json" \
            --duration "$cg_duration" 2> "$work/engine.log" >/dev/null
        ms=$(sed -n 's/^summary: //p' "$work/cg.$mode")
    else
        perf stat -x, -e task-clock -o "$work/perf.txt" \
            "$engine" run --config "$work/run.toml" --stats "$work/stats.json" \
            --duration "$duration" 2> "$work/engine.log" >/dev/null
        ms=$(awk -F, '/task-clock/ {print $1}' "$work/perf.txt")
    fi
    local st sim_ms
    read -r -a st < "/proc/$sim/stat"
    # utime, stime: fields 14 and 15 (the name has no spaces here).
    sim_ms=$(( (st[13] + st[14]) * 1000 / hz ))
    kill -INT "$sim"
    wait "$sim" 2>/dev/null || true
    python3 - "$work/stats.json" "$ms" "$sim_ms" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
print(s["messages"], s["bytes"], s["wire_bytes"], s["compressed"], sys.argv[2], sys.argv[3])
EOF
}

echo "capture: $capture, first $lines lines; $runs runs per mode, median shown"
echo
echo "| mode | messages | payload bytes | wire bytes | wire B/msg | ratio | engine CPU ms | engine µs/msg | sim CPU ms | sim µs/msg |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for mode in none deflate; do
    : > "$work/rows.$mode"
    for _ in $(seq "$runs"); do
        one_run "$mode" "$work/slice.txt" "" >> "$work/rows.$mode"
    done
    python3 - "$mode" "$work/rows.$mode" <<'EOF'
import sys, statistics
mode, path = sys.argv[1], sys.argv[2]
rows = [l.split() for l in open(path) if l.strip()]
msgs, payload, wire, comp = (int(rows[0][i]) for i in range(4))
assert all(int(r[0]) == msgs for r in rows), "message counts differ between runs"
assert comp == (1 if mode == "deflate" else 0), f"compressed={comp}"
eng = statistics.median(float(r[4]) for r in rows)
sim = statistics.median(float(r[5]) for r in rows)
print(f"| {mode} | {msgs:,} | {payload:,} | {wire:,} | {wire/msgs:.1f} | {payload/wire:.2f} "
      f"| {eng:.0f} | {eng*1000/msgs:.2f} | {sim:.0f} | {sim*1000/msgs:.2f} |")
EOF
done

if [ "${CALLGRIND:-0}" = 1 ]; then
    head -n 20000 "$work/slice.txt" > "$work/small.txt"
    echo
    echo "callgrind, whole engine process, first 20,000 lines:"
    echo
    echo "| mode | messages | instructions | instructions/msg | allocations | allocations/msg |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for mode in none deflate; do
        read -r msgs _ _ _ ir _ < <(one_run "$mode" "$work/small.txt" callgrind)
        # Calls into mimalloc's allocation entry points (C, never inlined).
        allocs=$(python3 - "$work/cg.$mode" <<'PY'
import re, sys
names, cur, total = {}, None, 0
for line in open(sys.argv[1], errors="replace"):
    m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(2):
            names[m.group(1)] = m.group(2).strip()
        cur = names.get(m.group(1), "")
        continue
    if line.startswith("calls=") and cur and re.match(r"mi_(malloc|zalloc|realloc|calloc)", cur):
        total += int(line[6:].split()[0])
print(total)
PY
)
        per=$(python3 -c "print(f'{$allocs / $msgs:.2f}')")
        echo "| $mode | $msgs | $ir | $(( ir / msgs )) | $allocs | $per |"
    done
fi
