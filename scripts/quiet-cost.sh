#!/usr/bin/env bash
# CPU cost of following quiet containers: N containers (default 100) each printing a
# line every S seconds (default 5); once every container is followed, the capturer's CPU
# seconds over a window (default 60 s), with the batches it dispatched and the positions
# file writes, in API mode and in files mode. Several builds may be given: they take
# turns (each mode, each build, for --rounds rounds), so their figures compare on a
# shared machine. Needs a running Docker Engine and the test image (scripts/test.sh sets
# both up).
#
#   scripts/quiet-cost.sh [--containers N] [--every S] [--window S] [--rounds R] [BIN...]
set -euo pipefail
cd "$(dirname "$0")/.."
N=100
EVERY=5
WINDOW=60
ROUNDS=1
BINS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --containers) N="$2"; shift 2 ;;
        --every) EVERY="$2"; shift 2 ;;
        --window) WINDOW="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        -*) echo "usage: $0 [--containers N] [--every S] [--window S] [--rounds R] [BIN...]" >&2; exit 2 ;;
        *) BINS+=("$1"); shift ;;
    esac
done
if [ ${#BINS[@]} -eq 0 ]; then
    BINS=("${LOG_CAPTURER_BIN:-target/release/log-capturer}")
    [ -x "${BINS[0]}" ] || cargo build --release --quiet
fi
IMAGE="${LOG_CAPTURER_TEST_IMAGE:-log-capturer-test/busybox:latest}"
WORK=$(mktemp -d /tmp/lc-quiet.XXXXXX)
PREFIX="lcquiet-$$"
PORT=$((18700 + $$ % 1000))
CAP_PID=""
cleanup() {
    [ -n "$CAP_PID" ] && kill -9 "$CAP_PID" 2>/dev/null || true
    ids=$(docker ps -aq --filter "name=$PREFIX" || true)
    [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
for i in $(seq 1 "$N"); do
    docker run -d --network none --name "$PREFIX-$i" "$IMAGE" \
        sh -c "echo up; while :; do sleep $EVERY; echo tick; done" >/dev/null
done
hz=$(getconf CLK_TCK)
metric() { curl -sf "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "$N containers, a line every $EVERY s each; CPU over $WINDOW s once all are followed"
for round in $(seq 1 "$ROUNDS"); do
    for mode in api files; do
        for b in "${!BINS[@]}"; do
            bin=${BINS[$b]}
            run="$WORK/$round-$mode-$b"
            mkdir -p "$run"
            cat > "$run/config.toml" <<TOML
[containers]
include_names = ["$PREFIX-*"]
initial = "beginning"
read_from = "$mode"
[positions]
path = "$run/positions.json"
[server]
listen = "127.0.0.1:$PORT"
[[sinks]]
type = "file"
path = "$run/out.jsonl"
TOML
            env -u LOG_CAPTURER_BIN RUST_LOG=warn "$bin" --config "$run/config.toml" 2>"$run/capturer.log" &
            CAP_PID=$!
            for _ in $(seq 1 600); do
                [ -f "$run/out.jsonl" ] && [ "$(grep -c '"up"' "$run/out.jsonl")" -ge "$N" ] && break
                sleep 0.1
            done
            sleep 2
            c0=$(cpu "$CAP_PID"); b0=$(metric log_capturer_batch_records_count); w0=$(metric log_capturer_positions_flushes_total)
            r0=$(wc -l < "$run/out.jsonl")
            sleep "$WINDOW"
            c1=$(cpu "$CAP_PID"); b1=$(metric log_capturer_batch_records_count); w1=$(metric log_capturer_positions_flushes_total)
            r1=$(wc -l < "$run/out.jsonl")
            printf 'round %s %-5s %s: CPU s %.2f  records %s  batches %s  positions writes %s  threads %s  rss %s KiB\n' \
                "$round" "$mode" "$bin" "$(echo "($c1 - $c0) / $hz" | bc -l)" "$((r1 - r0))" \
                "$(echo "$b1 - $b0" | bc)" "$(echo "$w1 - $w0" | bc)" \
                "$(ls "/proc/$CAP_PID/task" | wc -l)" "$(awk '/VmRSS/ {print $2}' "/proc/$CAP_PID/status")"
            kill -TERM "$CAP_PID"; wait "$CAP_PID" || true; CAP_PID=""
        done
    done
done
