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
#     p50/p99/p99.9/max and unpaced rate, against an rtrb SPSC hop in the same run;
#   * NATS (engine/examples/nats_latency.rs): the engine's NATS sink → nats-server on
#     loopback → subscriber, JSON and binary, paced and unpaced, against raw async-nats;
#   * outputs (`loadgen outputs`): gateway fan-out to 100 WebSocket clients (engine CPU vs
#     none), and `engine replay --speed max` with 0, 1 and 3 sinks (ratios to 0 sinks).
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

cargo build --release -p engine -p bench --bins --example recovery --example iox_latency --example nats_latency
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

# NATS sink latency vs raw async-nats in the same run (a nats-server on a free loopback
# port, stopped at the end), appended to the day's results. NATS_SECONDS per phase.
NATS_BIN="$(bash scripts/nats-server.sh 2>/dev/null || true)"
{
    echo
    echo "## NATS sink → nats-server → subscriber over loopback (engine/examples/nats_latency.rs, vs raw async-nats in the same run)"
    echo
    if [ -n "$NATS_BIN" ]; then
        NATS_SERVER="$NATS_BIN" "$BIN/examples/nats_latency" "${NATS_SECONDS:-1}" "${NATS_RATES:-10000,100000}" 2>/dev/null
    else
        echo "skipped: scripts/nats-server.sh found no nats-server"
    fi
} | tee -a "bench/results/$NAME.md"

# Gateway fan-out and engine throughput with 0, 1 and 3 sinks, appended to the day's results.
# GW_CLIENTS, GW_RATE (frames/s), GW_SECONDS per run; SINK_RUNS replays per sink count.
nats_arg=()
[ -n "$NATS_BIN" ] && nats_arg=(--nats-server "$NATS_BIN")
"$BIN/loadgen" outputs --engine "$BIN/engine" "${captures[@]}" "${nats_arg[@]}" \
    --gw-clients "${GW_CLIENTS:-100}" --gw-rate "${GW_RATE:-1000}" --gw-s "${GW_SECONDS:-4}" \
    --sink-runs "${SINK_RUNS:-5}" 2>/dev/null | tee -a "bench/results/$NAME.md"
