#!/usr/bin/env bash
# CPU per message at 10k evenly spaced msg/s over loopback WebSocket (issue
# 13 "Performance": CPU within 1.25x of the bare receive loop, baseline a).
# Runs `loadgen suite` one scenario at a time, ROUNDS rounds interleaved, and
# reads the consumer's threads with `perf stat --per-thread` (task-clock and
# context switches) over 3 s of each send window: the load server's thread
# (`load-conn`) is left out of the baseline's process, which hosts both.
# Prints one line per run and the medians, each with its ratio to
# baseline a's median of the same invocation.
#
#   scripts/cpu-per-msg.sh [scenario...]
#       (default: a@10k engine-epoll@10k engine-epoll+threads@10k
#        engine-epoll+inline@10k)
#
# ENGINE=<binary> / LOADGEN=<binary> skip the release build; ROUNDS
# (default 5). Needs `perf` (linux-perf; installed with apt-get when
# missing). Not part of .ci/run: timings, not instruction counts.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wiresignal-target}"
if ! command -v perf >/dev/null; then
    apt-get install -y linux-perf >/dev/null || apt-get install -y linux-tools-generic >/dev/null
fi
if [[ -z "${ENGINE:-}" || -z "${LOADGEN:-}" ]]; then
    cargo build --release -p engine -p bench --bin engine --bin loadgen >&2
    ENGINE="${ENGINE:-$CARGO_TARGET_DIR/release/engine}"
    LOADGEN="${LOADGEN:-$CARGO_TARGET_DIR/release/loadgen}"
fi
ROUNDS="${ROUNDS:-5}"
scenarios=("$@")
if [[ ${#scenarios[@]} -eq 0 ]]; then
    scenarios=(a@10k engine-epoll@10k engine-epoll+threads@10k engine-epoll+inline@10k)
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
engine_name="$(basename "$ENGINE")"
for ((round = 1; round <= ROUNDS; round++)); do
    for sc in "${scenarios[@]}"; do
        "$LOADGEN" suite --engine "$ENGINE" --out "$work/out" --name r --rates 10k \
            --only "$sc" >/dev/null 2>&1 &
        suite=$!
        # The send window starts after the engine's start-up and snapshot.
        sleep 3
        if [[ $sc == a@* || $sc == b@* ]]; then
            # The baselines run inside loadgen itself.
            pid=$suite
        else
            pid=$(pgrep -f "$engine_name run" | head -1)
        fi
        perf stat -e task-clock,context-switches --per-thread -p "$pid" -x, \
            -o "$work/stat" -- sleep 3 >/dev/null 2>&1 || true
        wait "$suite" || true
        # 3 s at 10k msg/s: 30,000 messages.
        awk -F, -v sc="$sc" -v round="$round" '
            $1 !~ /^load-conn/ && $4 == "task-clock" { t += $2 }
            $1 !~ /^load-conn/ && $4 == "context-switches" { c += $2 }
            END { printf "%s %d %.2f %.2f\n", sc, round, t * 1000 / 30000, c / 30000 }' \
            "$work/stat" | tee -a "$work/runs" >&2
    done
done
echo "| scenario | µs of CPU per message (median of $ROUNDS) | ÷ baseline a | context switches per message (that run) |"
echo "|---|---:|---:|---:|"
sort -k1,1 -k3,3n "$work/runs" | awk '
    { us[$1] = us[$1] " " $3; cs[$1] = cs[$1] " " $4; n[$1]++ }
    END {
        for (s in n) {
            split(us[s], u, " "); split(cs[s], c, " ");
            m = int((n[s] + 1) / 2); med[s] = u[m]; csm[s] = c[m]
        }
        base = med["a@10k"]
        for (s in n) {
            r = base > 0 ? sprintf("%.2fx", med[s] / base) : "-"
            printf "| %s | %.2f | %s | %.2f |\n", s, med[s], r, csm[s]
        }
    }' | sort
