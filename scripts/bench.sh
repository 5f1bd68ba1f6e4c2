#!/usr/bin/env bash
# The standard benchmark suite (issue "Measure it"), under 5 minutes on 2 cores:
#   * baselines in the same run: (a) tokio-tungstenite read loop, (b) a + simd-json tape parse;
#   * engine replay --speed max (and a paced x100 replay for in-process latency) on the
#     shared binance-spot capture and a generated 600 s capture;
#   * engine run over loopback against bench's paced load server at 10k / 100k / 1M msg/s,
#     epoll and busy-poll receivers (busy-poll skipped if the engine rejects the config);
#   * a 10x spike, a soak with RSS sampled every second, CPU vs baseline (a) at 10k, and
#     100 instruments x 1000 levels for memory;
#   * recovery (engine/examples/recovery.rs): time from a fault (drop, gap, silent feed,
#     429) to the first in-sync signal, p50/p99 over repetitions, and messages lost per
#     planned rollover;
#   * iceoryx2 (engine/examples/iox_latency.rs): the iceoryx2 sink to a subscriber process,
#     p50/p99/p99.9/max and unpaced rate, against an rtrb SPSC hop in the same run.
# Writes bench/results/<date>.md (+ .json and SVG plots). Latency = frame stamp (the load
# server's scheduled send time, carried in the Binance E/T fields) -> signals computed.
#
# Options are passed to `loadgen suite`, e.g. `scripts/bench.sh --soak-s 120 --point-s 10`.
# Run on a quiet machine: the load server, the baselines and the engine share the cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wiresignal-target}"
SHARED="${WIRESIGNAL_SHARED:-../shared}"
NAME="${BENCH_NAME:-$(date -u +%F)}"

cargo build --release -p engine -p bench --bins --example recovery --example iox_latency
BIN="$CARGO_TARGET_DIR/release"

captures=()
for c in "$SHARED"/data/binance-spot/*.txt.gz; do
    [ -e "$c" ] && captures+=(--capture "$c")
done
[ ${#captures[@]} -eq 0 ] && echo "note: no captures under $SHARED/data/binance-spot; replaying the generated capture only" >&2

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$BIN/loadgen" suite --engine "$BIN/engine" --out bench/results --name "$NAME" "${captures[@]}" "$@"

# Recovery times, appended to the day's results.
{
    echo
    echo "## Recovery (engine/examples/recovery.rs, 5 runs per fault, loopback simulator at 40x)"
    echo
    "$BIN/examples/recovery" "${RECOVERY_RUNS:-5}" "$SHARED"
} | tee -a "bench/results/$NAME.md"

# iceoryx2 sink latency vs an in-process SPSC hop, appended to the day's results.
{
    echo
    echo "## iceoryx2 sink → subscriber process (engine/examples/iox_latency.rs, vs rtrb in the same run)"
    echo
    "$BIN/examples/iox_latency" "${IOX_RATE:-100000}" "${IOX_SECONDS:-3}" 2>/dev/null
} | tee -a "bench/results/$NAME.md"
