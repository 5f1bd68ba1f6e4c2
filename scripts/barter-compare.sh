#!/usr/bin/env bash
# Side-by-side with barter-data (issue 13 "Performance": msg per CPU-second
# at least 3x barter-data's on the same frames). Builds the engine and the
# harness in bench/barter (its own workspace: barter-data 0.13 from
# crates.io driving its own Binance spot types, L2 transformer and
# OrderBook; see bench/barter/README.md), runs both on the same Binance
# spot captures and prints a Markdown table:
#
#   * sanity: messages, trades, depth updates applied, final best bid/ask of
#     both sides (the script fails when the books' tops differ);
#   * wall time and CPU time (user + sys of the process, all threads) per
#     replay of the whole capture, RUNS rounds with the variants interleaved:
#     median wall, minimum and median CPU, msg per CPU-s from the minimum;
#   * instructions/msg under callgrind on the first LINES lines, minus a run
#     of the slice's header alone (start-up and shutdown), as
#     scripts/instr-gate.sh does;
#   * the engine both without output and writing JSONL (`engine replay
#     --speed max [--out x.jsonl]`, the instr-gate invocation, default
#     placement: adaptive, which a replay runs inline), and without output
#     on one thread
#     (`signal_placement = "inline"`) and with every frame through the ring
#     to the signal thread (`"threads"`);
#   * barter also with the snapshot cut to 100 levels per side, the depth
#     its own snapshot fetcher requests (`limit=100`): its `OrderBook` is a
#     sorted `Vec` per side, so every insert/remove shifts the deeper levels
#     and the cost grows with the book (the book still grows from the diffs).
#
#   scripts/barter-compare.sh [capture.txt.gz...]   (default: every capture
#                                                     in ../shared/data/binance-spot)
#
# The whole-capture runs read the capture decompressed into a scratch file
# (INPUT=plain, the default): the comparison is of what each side does with
# the frames, and the two sides' gzip readers differ (the engine's flate2 is
# built on zlib-rs, ~5 ms of this capture's ~11 MB; barter's on miniz_oxide,
# ~9 ms). INPUT=gz runs both on the .gz files as given.
#
# ENGINE=<binary> / HARNESS=<binary> skip the builds; RUNS (default 21) and
# LINES (default 20000) tune the measurement. Not part of .ci/run: the
# harness pulls barter's whole dependency tree (reqwest, tokio, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wiresignal-target}"
SHARED="${WIRESIGNAL_SHARED:-../shared}"
RUNS="${RUNS:-21}"
LINES="${LINES:-20000}"
INPUT="${INPUT:-plain}"
case "$INPUT" in plain | gz) ;; *) echo "barter-compare: INPUT must be plain or gz" >&2; exit 1 ;; esac

if [ "$#" -eq 0 ]; then
    set -- "$SHARED"/data/binance-spot/*.gz
fi
for c in "$@"; do
    if [ ! -f "$c" ]; then
        echo "barter-compare: capture $c not found (set WIRESIGNAL_SHARED or name captures)" >&2
        exit 1
    fi
done

for tool in valgrind jq; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "barter-compare: installing $tool"
        sudo=""
        if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
        $sudo apt-get install -y "$tool" >/dev/null ||
            { $sudo apt-get update >/dev/null && $sudo apt-get install -y "$tool" >/dev/null; }
    fi
done

if [ -z "${ENGINE:-}" ]; then
    cargo build --release -p engine >&2
    ENGINE="$CARGO_TARGET_DIR/release/engine"
fi
if [ -z "${HARNESS:-}" ]; then
    cargo build --release --manifest-path bench/barter/Cargo.toml >&2
    HARNESS="$CARGO_TARGET_DIR/release/barter-harness"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wiresignal-barter.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
printf '[engine]\nsignal_placement = "inline"\n' >"$tmp/inline.toml"
printf '[engine]\nsignal_placement = "threads"\n' >"$tmp/threads.toml"

fail() {
    echo "barter-compare: FAIL: $*" >&2
    exit 1
}

# The three measured commands; $1 = input file, $2 = scratch prefix.
run_barter() { "$HARNESS" "$1" >"$2.out"; }
run_barter100() { "$HARNESS" --snapshot-limit 100 "$1" >"$2.out"; }
run_engine() { "$ENGINE" replay "$1" --speed max --stats "$2.stats.json" >"$2.out" 2>"$2.err"; }
run_engine_inline() {
    "$ENGINE" replay "$1" --speed max --config "$tmp/inline.toml" --stats "$2.stats.json" >"$2.out" 2>"$2.err"
}
run_engine_threads() {
    "$ENGINE" replay "$1" --speed max --config "$tmp/threads.toml" --stats "$2.stats.json" >"$2.out" 2>"$2.err"
}
run_engine_jsonl() {
    "$ENGINE" replay "$1" --speed max --stats "$2.stats.json" --out "$2.jsonl" >"$2.out" 2>"$2.err"
}

# "wall cpu" seconds of one run of `$@`: CPU is the children's user + sys
# from bash's `times` (getrusage(RUSAGE_CHILDREN): every thread, ms
# resolution). The subshell runs only the measured command; `times` and the
# clock are builtins (a pipe or `$(...)` would fork and read zeros).
timed() {
    (
        s=$EPOCHREALTIME
        "$@" || exit 1
        e=$EPOCHREALTIME
        times >"$tmp/t.times"
        echo "$s $e" >"$tmp/t.wall"
    ) || return 1
    # `times` prints the shell's line, then the children's: "0m0.123s 0m0.010s".
    awk 'NR == FNR { w = $2 - $1; next }
        FNR == 2 { split($1, u, /[ms]/); split($2, y, /[ms]/)
            printf "%.4f %.4f\n", w, u[1] * 60 + u[2] + y[1] * 60 + y[2] }' "$tmp/t.wall" "$tmp/t.times"
}

# Wall and CPU of the variants in $variants (prefix p runs run_<name>),
# RUNS rounds interleaved (b c e j i, b c e j i, ...) so that every side
# sees the same background load; sets <p>_wall (median), <p>_cpu (minimum:
# the run least disturbed by other processes) and <p>_cpumed (median).
measure_times() {
    local c=$1 i v p f
    for v in "${variants[@]}"; do : >"$tmp/${v%%:*}.times"; done
    for ((i = 0; i < RUNS; i++)); do
        for v in "${variants[@]}"; do
            p=${v%%:*} f=${v#*:}
            timed "$f" "$c" "$tmp/$p" >>"$tmp/$p.times" || fail "$f $c failed"
        done
    done
    for v in "${variants[@]}"; do
        p=${v%%:*}
        printf -v "${p}_wall" '%s' "$(sort -g -k1,1 "$tmp/$p.times" | awk -v n="$RUNS" 'NR == int((n + 1) / 2) { print $1 }')"
        printf -v "${p}_cpu" '%s' "$(sort -g -k2,2 "$tmp/$p.times" | head -n 1 | awk '{ print $2 }')"
        printf -v "${p}_cpumed" '%s' "$(sort -g -k2,2 "$tmp/$p.times" | awk -v n="$RUNS" 'NR == int((n + 1) / 2) { print $2 }')"
    done
}
variants=(b:run_barter c:run_barter100 e:run_engine j:run_engine_jsonl i:run_engine_inline r:run_engine_threads)

# Total Ir of `$@` under callgrind.
ir() {
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" "$@" >/dev/null 2>"$tmp/vg.err" ||
        { tail -n 20 "$tmp/vg.err" >&2; fail "$* under valgrind failed"; }
    sed -n 's/^totals: *\([0-9][0-9]*\).*/\1/p' "$tmp/cg.out" | head -n 1
}
per_msg() { awk -v t="$1" -v e="$2" -v n="$3" 'BEGIN { printf "%d", (t - e) / n }'; }

# Sets <p>_ir (instr/msg of `$@` on the slice minus the header-only run $2)
# and <p>_mv (of which in libc's memcpy/memmove: glibc moves large forward
# copies with `rep movsb`, which callgrind counts as one instruction per
# byte (measured: 64 KiB forward = 65,5xx Ir, backward ~6,000), so barter's
# level shifts cost far fewer cycles than their instruction count says).
slice_ir() {
    local p=$1 base=$2 total mv
    shift 2
    total=$(ir "$@")
    mv=$(callgrind_annotate --inclusive=no --threshold=100 "$tmp/cg.out" 2>/dev/null |
        awk '/libc\.so/ && /mem(move|cpy)/ { gsub(",", "", $1); s += $1 } END { printf "%d", s }')
    printf -v "${p}_ir" '%s' "$(per_msg "$total" "$base" "$n")"
    printf -v "${p}_mv" '%s' "$(awk -v m="$mv" -v n="$n" 'BEGIN { printf "%d", m / n }')"
}

# Numerically equal decimals ("61686.00000000" and "61686")?
same() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 == b + 0) }'; }

# `key=value` from the harness output.
hval() { sed -n "s/^$1=//p" "$2" | head -n 1; }

rows=()
for given in "$@"; do
    name=${given##*/}
    c=$given
    if [ "$INPUT" = plain ]; then
        c="$tmp/whole.txt"
        gzip -dc "$given" >"$c" 2>/dev/null || cp "$given" "$c"
    fi
    # --- sanity: both sides on the whole capture -----------------------------
    run_barter "$c" "$tmp/b" || fail "barter-harness $c failed"
    run_engine "$c" "$tmp/e" || { cat "$tmp/e.err" >&2; fail "engine replay $c failed"; }
    sym=$(hval symbol "$tmp/b.out")
    inst=$(jq -r --arg s "$sym" '.instruments | to_entries[]
        | select(.key | endswith(":" + $s)) | .value' "$tmp/e.stats.json")
    [ -n "$inst" ] || fail "$c: no instrument $sym in the engine's stats"
    e_msgs=$(jq -r '.messages' "$tmp/e.stats.json")
    e_bid=$(jq -r '.best_bid' <<<"$inst")
    e_ask=$(jq -r '.best_ask' <<<"$inst")
    e_trades=$(jq -r '.trades' <<<"$inst")
    e_levels="$(jq -r '.bid_levels' <<<"$inst")/$(jq -r '.ask_levels' <<<"$inst")"
    b_msgs=$(hval messages "$tmp/b.out")
    b_bid=$(hval best_bid "$tmp/b.out")
    b_ask=$(hval best_ask "$tmp/b.out")
    b_trades=$(hval trades "$tmp/b.out")
    b_levels="$(hval bid_levels "$tmp/b.out")/$(hval ask_levels "$tmp/b.out")"
    same "$e_bid" "$b_bid" && same "$e_ask" "$b_ask" ||
        fail "$c: final best bid/ask differ: engine $e_bid/$e_ask, barter $b_bid/$b_ask"
    [ "$(hval gaps "$tmp/b.out")" = 0 ] || echo "barter-compare: warning: barter's sequencer saw a gap in $c" >&2
    echo "### $name" >&2
    echo "sanity: messages engine $e_msgs / barter $b_msgs; trades $e_trades / $b_trades;" \
        "barter depth updates applied $(hval depth_applied "$tmp/b.out") of $(hval depth_frames "$tmp/b.out");" \
        "best bid/ask engine $e_bid/$e_ask, barter $b_bid/$b_ask; levels engine $e_levels, barter $b_levels" >&2

    # --- wall and CPU per whole-capture run ---------------------------------
    run_barter100 "$c" "$tmp/c" || fail "barter-harness --snapshot-limit 100 $c failed"
    same "$(hval best_bid "$tmp/c.out")" "$e_bid" && same "$(hval best_ask "$tmp/c.out")" "$e_ask" ||
        echo "barter-compare: note: with a 100-level snapshot barter's top differs from the engine's" >&2
    measure_times "$c"

    # --- instructions/msg on the slice --------------------------------------
    { gzip -dc "$given" 2>/dev/null || cat "$given" 2>/dev/null || true; } | head -n "$LINES" >"$tmp/slice.txt"
    grep '^#' "$tmp/slice.txt" >"$tmp/header.txt" || true
    n=$(grep -cv -e '^#' -e '^[[:space:]]*$' "$tmp/slice.txt" || true)
    [ "$n" -ge 1000 ] || fail "only $n messages in the first $LINES lines of $c"
    b_base=$(ir "$HARNESS" "$tmp/header.txt")
    slice_ir b "$b_base" "$HARNESS" "$tmp/slice.txt"
    slice_ir c "$b_base" "$HARNESS" --snapshot-limit 100 "$tmp/slice.txt"
    e_base=$(ir "$ENGINE" replay "$tmp/header.txt" --speed max)
    slice_ir e "$e_base" "$ENGINE" replay "$tmp/slice.txt" --speed max
    slice_ir j "$e_base" "$ENGINE" replay "$tmp/slice.txt" --speed max --out "$tmp/s.jsonl"
    i_base=$(ir "$ENGINE" replay "$tmp/header.txt" --speed max --config "$tmp/inline.toml")
    slice_ir i "$i_base" "$ENGINE" replay "$tmp/slice.txt" --speed max --config "$tmp/inline.toml"
    r_base=$(ir "$ENGINE" replay "$tmp/header.txt" --speed max --config "$tmp/threads.toml")
    slice_ir r "$r_base" "$ENGINE" replay "$tmp/slice.txt" --speed max --config "$tmp/threads.toml"

    row() { # label msgs wall cpu-min cpu-median ir memmove-ir
        awk -v l="$1" -v m="$2" -v w="$3" -v c="$4" -v cm="$5" -v i="$6" -v mv="$7" \
            -v bc="$b_cpu" -v bm="$b_msgs" -v bi="$b_ir" 'BEGIN {
            r = m / c; br = bm / bc
            printf "| %s | %d | %.3f | %.3f / %.3f | %.0f | %.2fx | %d | %.2fx | %d |\n",
                l, m, w, c, cm, r, r / br, i, i / bi, mv }'
    }
    rows+=("$(row "barter-data 0.13: parse + sequence + book ($name)" "$b_msgs" "$b_wall" "$b_cpu" "$b_cpumed" "$b_ir" "$b_mv")")
    rows+=("$(row "barter-data 0.13, snapshot cut to 100 levels ($name)" "$b_msgs" "$c_wall" "$c_cpu" "$c_cpumed" "$c_ir" "$c_mv")")
    rows+=("$(row "engine, no output: parse + book + 17 signals, default placement (adaptive, which a replay runs inline) ($name)" "$e_msgs" "$e_wall" "$e_cpu" "$e_cpumed" "$e_ir" "$e_mv")")
    rows+=("$(row "engine, JSONL: the same + signal rows ($name)" "$e_msgs" "$j_wall" "$j_cpu" "$j_cpumed" "$j_ir" "$j_mv")")
    rows+=("$(row "engine, no output, one thread (inline) ($name)" "$e_msgs" "$i_wall" "$i_cpu" "$i_cpumed" "$i_ir" "$i_mv")")
    rows+=("$(row "engine, no output, every frame through the ring (threads) ($name)" "$e_msgs" "$r_wall" "$r_cpu" "$r_cpumed" "$r_ir" "$r_mv")")
done

echo
echo "Whole capture (read $INPUT), $RUNS interleaved rounds: wall = median; CPU (user + sys, all threads) = minimum / median;"
echo "msg per CPU-s from the minimum. instr/msg: callgrind, first $LINES lines minus the header-only run."
echo
echo "| side | messages | wall s | CPU s min / median | msg per CPU-s | ÷ barter | instr/msg | ÷ barter | of which memcpy/memmove |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
