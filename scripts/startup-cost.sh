#!/usr/bin/env bash
# CPU of a replay with nothing to replay: the fixed cost of starting and
# ending a run (loading the binary, the allocator, threads, rings, state,
# the stats report), which every `engine replay` pays on top of its
# messages (issue 13 "Performance": it counts in barter-compare's
# whole-process CPU, ~10% of a 30 ms replay of the spot capture).
#
#   scripts/startup-cost.sh [engine...]   (default: the release build)
#
# Replays the header lines of the shared spot capture (no message) with
# `--stats`, RUNS rounds (default 40) interleaved across the given
# binaries (and barter-data's harness when HARNESS is set), and prints the
# task-clock (perf stat: user + sys of every thread) minimum, median and
# mean in ms, and the median of the runs' minor page faults.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wiresignal-target}"
SHARED="${WIRESIGNAL_SHARED:-../shared}"
RUNS="${RUNS:-40}"
capture="$SHARED/data/binance-spot/btcusdt_20240808.txt.gz"
[ -f "$capture" ] || { echo "startup-cost: $capture not found (set WIRESIGNAL_SHARED)" >&2; exit 1; }
command -v perf >/dev/null || { echo "startup-cost: needs perf (linux-perf)" >&2; exit 1; }
if [ "$#" -eq 0 ]; then
    cargo build --release -p engine >&2
    set -- "$CARGO_TARGET_DIR/release/engine"
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wiresignal-startup.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
{ gzip -dc "$capture" || true; } | { grep '^#' || true; } >"$tmp/header.txt"
[ -s "$tmp/header.txt" ] || { echo "startup-cost: $capture has no header lines" >&2; exit 1; }

sides=("$@")
[ -n "${HARNESS:-}" ] && sides+=("barter:$HARNESS")
for ((i = 0; i < RUNS; i++)); do
    for ((k = 0; k < ${#sides[@]}; k++)); do
        side=${sides[$k]}
        if [[ $side == barter:* ]]; then
            cmd=("${side#barter:}" "$tmp/header.txt")
        else
            cmd=("$side" replay "$tmp/header.txt" --speed max --stats "$tmp/stats.json")
        fi
        if ! perf stat -x, -e task-clock,minor-faults -o "$tmp/perf.txt" "${cmd[@]}" >/dev/null 2>"$tmp/err"; then
            echo "startup-cost: FAIL: ${cmd[*]}:" >&2
            tail -n 20 "$tmp/err" >&2
            exit 1
        fi
        awk -F, -v k="$k" '$3 == "task-clock" { t = $1 } $3 == "minor-faults" { f = $1 }
            END { print k, t, f }' "$tmp/perf.txt" >>"$tmp/all.txt"
    done
done
echo "| side | runs | CPU ms min | median | mean | minor faults (median) |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for ((k = 0; k < ${#sides[@]}; k++)); do
    faults=$(awk -v k="$k" '$1 == k { print $3 }' "$tmp/all.txt" | sort -n |
        awk '{ f[NR] = $1 } END { print f[int((NR + 1) / 2)] }')
    awk -v k="$k" '$1 == k { print $2 }' "$tmp/all.txt" | sort -n | awk -v name="${sides[$k]}" -v f="$faults" '
        { t[NR] = $1; s += $1 }
        END { printf "| %s | %d | %.2f | %.2f | %.2f | %d |\n", name, NR, t[1], t[int((NR + 1) / 2)], s / NR, f }'
done
