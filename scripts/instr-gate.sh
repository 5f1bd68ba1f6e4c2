#!/usr/bin/env bash
# Instruction-count gate (issue 13 "Performance"): replays a fixed slice of a
# shared capture under callgrind, with and without JSONL output, and fails when
# either count of instructions per message is above 1.15x (`tolerance`) the
# value recorded in bench/instructions.toml.
#
#   instr/msg = (Ir of the replay - Ir of a replay of the slice's header alone)
#               / messages in the slice
#
# Instruction counts do not depend on the machine's load, so the gate is not
# noisy the way a timing would be (two runs agree to ~0.01%). A change that is
# meant to cost more updates the recorded values deliberately: run
# `scripts/instr-gate.sh --record` and commit bench/instructions.toml.
#
# `scripts/instr-gate.sh --venues [capture.gz...]` measures the same two
# figures on the first `lines` lines of every venue's capture (default: each
# one under ../shared/data) and prints a Markdown table; it gates nothing.
#
# Needs ../shared next to the repository (WIRESIGNAL_SHARED overrides); without
# it the gate is skipped, unless CI=true. ENGINE=<binary> skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wiresignal-target}"
SHARED="${WIRESIGNAL_SHARED:-../shared}"
RECORD="bench/instructions.toml"

record=0
venues=0
# Fewer messages than this in the slice is an error (the venue report takes
# small captures: some venues' frames are big).
min_msgs=1000
case "${1:-}" in
    --record) record=1 ;;
    --venues) venues=1; min_msgs=50; shift ;;
    "") ;;
    *) echo "usage: scripts/instr-gate.sh [--record | --venues [capture.gz...]]" >&2; exit 2 ;;
esac

# `key = value` from the recorded file (quotes and comments stripped).
setting() {
    local v
    v=$(sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\\([^#]*\\).*/\\1/p" "$RECORD" | head -n 1)
    v="${v//\"/}"
    v="${v%"${v##*[![:space:]]}"}"
    if [ -z "$v" ]; then
        echo "instr-gate: $RECORD has no '$1'" >&2
        exit 2
    fi
    printf '%s' "$v"
}

capture="$SHARED/$(setting capture)"
lines=$(setting lines)
tolerance=$(setting tolerance)

if [ "$venues" = 0 ] && [ ! -f "$capture" ]; then
    if [ "${CI:-}" = "true" ]; then
        echo "instr-gate: FAIL: capture $capture not found (CI=true)" >&2
        exit 1
    fi
    echo "instr-gate: skipped: capture $capture not found (set WIRESIGNAL_SHARED)"
    exit 0
fi

if ! command -v valgrind >/dev/null 2>&1; then
    echo "instr-gate: installing valgrind"
    sudo=""
    if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
    $sudo apt-get install -y valgrind >/dev/null ||
        { $sudo apt-get update >/dev/null && $sudo apt-get install -y valgrind >/dev/null; }
fi

if [ -z "${ENGINE:-}" ]; then
    cargo build --release -p engine
    ENGINE="$CARGO_TARGET_DIR/release/engine"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wiresignal-instr.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s.%N)

# Total Ir of one replay under callgrind; extra arguments go to `engine replay`.
ir() {
    local input=$1
    shift
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
        "$ENGINE" replay "$input" --speed max "$@" >"$tmp/stdout" 2>"$tmp/stderr" || {
        echo "instr-gate: FAIL: engine replay $input $* under valgrind failed:" >&2
        tail -n 20 "$tmp/stderr" >&2
        exit 1
    }
    local total
    total=$(sed -n 's/^totals: *\([0-9][0-9]*\).*/\1/p' "$tmp/cg.out" | head -n 1)
    if [ -z "$total" ]; then
        echo "instr-gate: FAIL: no 'totals:' line in the callgrind output" >&2
        exit 1
    fi
    echo "$total"
}

# Sets msgs, rows, empty, none, jsonl and threads (instr/msg) for the first `lines`
# lines of capture $1 (header included); the baseline replays the header
# alone, so start-up and shutdown cancel out.
measure() {
    { gzip -dc "$1" || true; } | head -n "$lines" >"$tmp/slice.txt"
    grep '^#' "$tmp/slice.txt" >"$tmp/header.txt" || true
    msgs=$(grep -cv -e '^#' -e '^[[:space:]]*$' "$tmp/slice.txt" || true)
    if [ "$msgs" -lt "$min_msgs" ]; then
        echo "instr-gate: FAIL: only $msgs messages in the first $lines lines of $1" >&2
        exit 1
    fi
    empty=$(ir "$tmp/header.txt")
    local none_ir jsonl_ir threads_ir threads_empty jsonl_empty
    none_ir=$(ir "$tmp/slice.txt")
    # Every frame through the ring (the default, adaptive, runs a replay
    # inline: every frame on the reader).
    printf '[engine]\nsignal_placement = "threads"\n' >"$tmp/threads.toml"
    threads_ir=$(ir "$tmp/slice.txt" --config "$tmp/threads.toml")
    threads_empty=$(ir "$tmp/header.txt" --config "$tmp/threads.toml")
    jsonl_ir=$(ir "$tmp/slice.txt" --out "$tmp/out.jsonl")
    rows=$(wc -l <"$tmp/out.jsonl")
    # Each row is measured over a header-only run of its own setup (a JSONL
    # run starts a sink thread the others do not, threads mode a signal
    # thread), so start-up and shutdown cancel out of every figure.
    jsonl_empty=$(ir "$tmp/header.txt" --out "$tmp/empty.jsonl")
    if [ "$rows" -lt 1 ]; then
        echo "instr-gate: FAIL: the JSONL replay wrote $rows rows for $msgs messages" >&2
        exit 1
    fi
    none=$(per_msg "$none_ir")
    jsonl=$(per_msg "$jsonl_ir" "$jsonl_empty")
    threads=$(per_msg "$threads_ir" "$threads_empty")
}
# instr/msg of total Ir $1 over the header-only run $2 (default: $empty).
per_msg() { awk -v t="$1" -v e="${2:-$empty}" -v n="$msgs" 'BEGIN { printf "%d", (t - e) / n }'; }

if [ "$venues" = 1 ]; then
    if [ "$#" -eq 0 ]; then
        set -- "$SHARED"/data/*/*.gz
    fi
    echo "| capture (first $lines lines) | messages | JSONL rows | instr/msg, no output | instr/msg, JSONL |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    for c in "$@"; do
        measure "$c"
        echo "| ${c#"$SHARED"/data/} | $msgs | $rows | $none | $jsonl |"
    done
    exit 0
fi

measure "$capture"
elapsed=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')

printf 'instr-gate: %s, first %s lines: %s messages, %s JSONL rows; baseline (header only) %s Ir; %s s\n' \
    "$(setting capture)" "$lines" "$msgs" "$rows" "$empty" "$elapsed"

if [ "$record" = 1 ]; then
    sed -i -e "s/^\\([[:space:]]*no_output[[:space:]]*=[[:space:]]*\\)[0-9][0-9]*/\\1$none/" \
        -e "s/^\\([[:space:]]*jsonl[[:space:]]*=[[:space:]]*\\)[0-9][0-9]*/\\1$jsonl/" \
        -e "s/^\\([[:space:]]*threads[[:space:]]*=[[:space:]]*\\)[0-9][0-9]*/\\1$threads/" "$RECORD"
    echo "instr-gate: recorded no_output = $none, jsonl = $jsonl, threads = $threads instr/msg in $RECORD"
    exit 0
fi

fail=0
check() {
    local name=$1 measured=$2 recorded bound ratio verdict=ok
    recorded=$(setting "$name")
    if ! [ "$recorded" -gt 0 ] 2>/dev/null; then
        echo "instr-gate: $RECORD: '$name' must be a positive count (run --record)" >&2
        exit 2
    fi
    bound=$(awk -v r="$recorded" -v t="$tolerance" 'BEGIN { printf "%d", r * t }')
    ratio=$(awk -v m="$measured" -v r="$recorded" 'BEGIN { printf "%.3f", m / r }')
    if [ "$measured" -gt "$bound" ]; then
        verdict=FAIL
        fail=1
    fi
    printf 'instr-gate: %-9s %6s instr/msg  recorded %6s  bound %6s (x%s)  ratio %s  %s\n' \
        "$name" "$measured" "$recorded" "$bound" "$tolerance" "$ratio" "$verdict"
}
check no_output "$none"
check jsonl "$jsonl"
check threads "$threads"
if [ "$fail" = 1 ]; then
    echo "instr-gate: above the bound; if the extra cost is intended, run" \
        "'scripts/instr-gate.sh --record' and commit $RECORD" >&2
    exit 1
fi
