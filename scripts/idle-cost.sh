#!/usr/bin/env bash
# Idle cost of following N quiet containers (default 100), API mode against files mode:
# once all are followed, the capturer's threads, FDs, RSS, virtual size (VmSize) and the
# CPU seconds it spends in 30 s (and the positions file writes). Needs a running Docker Engine and the test image (scripts/test.sh sets both up).
#
#   scripts/idle-cost.sh [N] [--tick S] [--seconds S] [--modes "api files"] [--rounds R]
#
# --tick S: each container writes a line every S seconds instead of sleeping.
# LOG_CAPTURER_BINS="a b": several builds measured on the same containers, taking turns
# (R rounds), so a before/after comparison on a shared machine sees the same noise.
set -euo pipefail
cd "$(dirname "$0")/.."
N=100
TICK=""
SECONDS_IDLE=30
MODES="api files"
ROUNDS=1
while [ $# -gt 0 ]; do
    case "$1" in
        --tick) TICK="$2"; shift 2 ;;
        --seconds) SECONDS_IDLE="$2"; shift 2 ;;
        --modes) MODES="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        [0-9]*) N="$1"; shift ;;
        *) echo "usage: $0 [N] [--tick S] [--seconds S] [--modes \"api files\"] [--rounds R]" >&2; exit 2 ;;
    esac
done
IMAGE="${LOG_CAPTURER_TEST_IMAGE:-log-capturer-test/busybox:latest}"
BIN="${LOG_CAPTURER_BIN:-target/release/log-capturer}"
BINS="${LOG_CAPTURER_BINS:-$BIN}"
[ -n "${LOG_CAPTURER_BINS:-}" ] || [ -x "$BIN" ] || cargo build --release --quiet
WORK=$(mktemp -d /tmp/lc-idle.XXXXXX)
PREFIX="lcidle-$$"
PORT=$((18600 + $$ % 1000))
CAP_PID=""
cleanup() {
    [ -n "$CAP_PID" ] && kill -9 "$CAP_PID" 2>/dev/null || true
    ids=$(docker ps -aq --filter "name=$PREFIX" || true)
    [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
SCRIPT='echo up; sleep 100000'
[ -n "$TICK" ] && SCRIPT="echo up; while :; do sleep $TICK; echo tick; done"
for i in $(seq 1 "$N"); do
    docker run -d --network none --name "$PREFIX-$i" "$IMAGE" sh -c "$SCRIPT" >/dev/null
done
hz=$(getconf CLK_TCK)
# CPU nanoseconds (schedstat, exact) of the follower threads (follow-*, inotify) and of the
# other threads, "f o".
cpu_split() {
    local f=0 o=0 t comm ns
    for t in /proc/"$1"/task/*; do
        comm=$(cat "$t/comm" 2>/dev/null) || continue
        ns=$(awk '{print $1}' "$t/schedstat" 2>/dev/null) || continue
        case "$comm" in follow-*|inotify) f=$((f + ns)) ;; *) o=$((o + ns)) ;; esac
    done
    echo "$f $o"
}
for round in $(seq 1 "$ROUNDS"); do
for bin in $BINS; do
for mode in $MODES; do
    cat > "$WORK/config.toml" <<TOML
[containers]
include_names = ["$PREFIX-*"]
initial = "beginning"
read_from = "$mode"
[positions]
path = "$WORK/positions-$mode.json"
[server]
listen = "127.0.0.1:$PORT"
[[sinks]]
type = "file"
path = "$WORK/out-$mode.jsonl"
TOML
    env -u LOG_CAPTURER_BIN -u LOG_CAPTURER_BINS -u LOG_CAPTURER_IMAGE -u LOG_CAPTURER_TEST_IMAGE RUST_LOG=warn "$bin" --config "$WORK/config.toml" 2>"$WORK/capturer-$mode.log" &
    CAP_PID=$!
    for _ in $(seq 1 600); do
        [ -f "$WORK/out-$mode.jsonl" ] && [ "$(wc -l < "$WORK/out-$mode.jsonl")" -ge "$N" ] && break
        sleep 0.1
    done
    sleep 2
    if ! kill -0 "$CAP_PID" 2>/dev/null; then
        echo "$bin ($mode) exited early:" >&2; tail -20 "$WORK/capturer-$mode.log" >&2; exit 1
    fi
    c0=$(awk '{print $14 + $15}' "/proc/$CAP_PID/stat"); read -r f0 o0 <<<"$(cpu_split "$CAP_PID")"
    sleep "$SECONDS_IDLE"
    c1=$(awk '{print $14 + $15}' "/proc/$CAP_PID/stat"); read -r f1 o1 <<<"$(cpu_split "$CAP_PID")"
    printf '%s %-5s records %s  threads %s  fds %s  rss %s KiB  vmsize %s KiB  positions writes %s  CPU s per %s s idle %.2f (followers %.2f, other threads %.2f)\n' "$bin" "$mode" \
        "$(wc -l < "$WORK/out-$mode.jsonl")" "$(ls "/proc/$CAP_PID/task" | wc -l)" \
        "$(ls "/proc/$CAP_PID/fd" | wc -l)" "$(awk '/VmRSS/ {print $2}' "/proc/$CAP_PID/status")" \
        "$(awk '/VmSize/ {print $2}' "/proc/$CAP_PID/status")" \
        "$(curl -sf "http://127.0.0.1:$PORT/metrics" | awk '$1 == "log_capturer_positions_flushes_total" {print $2}')" "$SECONDS_IDLE" \
        "$(echo "($c1 - $c0) / $hz" | bc -l)" "$(echo "($f1 - $f0) / 1000000000" | bc -l)" "$(echo "($o1 - $o0) / 1000000000" | bc -l)"
    kill -TERM "$CAP_PID"; wait "$CAP_PID" || true; CAP_PID=""
    rm -f "$WORK/out-$mode.jsonl" "$WORK/positions-$mode.json"
done
done
done
