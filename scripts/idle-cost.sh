#!/usr/bin/env bash
# Idle cost of following N sleeping containers (default 100), API mode against files mode:
# once all are followed, the capturer's threads, FDs, RSS, virtual size (VmSize) and the
# CPU seconds it spends in 30 s. Needs a running Docker Engine and the test image
# (scripts/test.sh sets both up). LOG_CAPTURER_BINS="a b" compares builds on the same
# containers, taking turns in each mode.
#
#   scripts/idle-cost.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100}
IMAGE="${LOG_CAPTURER_TEST_IMAGE:-log-capturer-test/busybox:latest}"
BIN="${LOG_CAPTURER_BIN:-target/release/log-capturer}"
[ -x "$BIN" ] || cargo build --release --quiet
BINS="${LOG_CAPTURER_BINS:-$BIN}"
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
for i in $(seq 1 "$N"); do
    docker run -d --network none --name "$PREFIX-$i" "$IMAGE" sh -c 'echo up; sleep 100000' >/dev/null
done
hz=$(getconf CLK_TCK)
for mode in api files; do
  for bin in $BINS; do
    rm -f "$WORK/out-$mode.jsonl" "$WORK/positions-$mode.json"
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
    c0=$(awk '{print $14 + $15}' "/proc/$CAP_PID/stat")
    sleep 30
    c1=$(awk '{print $14 + $15}' "/proc/$CAP_PID/stat")
    printf '%s\n' "$bin"
    printf '%-5s records %s  threads %s  fds %s  rss %s KiB  vmsize %s KiB  CPU s per 30 s idle %.2f\n' "$mode" \
        "$(wc -l < "$WORK/out-$mode.jsonl")" "$(ls "/proc/$CAP_PID/task" | wc -l)" \
        "$(ls "/proc/$CAP_PID/fd" | wc -l)" "$(awk '/VmRSS/ {print $2}' "/proc/$CAP_PID/status")" \
        "$(awk '/VmSize/ {print $2}' "/proc/$CAP_PID/status")" \
        "$(echo "($c1 - $c0) / $hz" | bc -l)"
    kill -TERM "$CAP_PID"; wait "$CAP_PID" || true; CAP_PID=""
  done
done
