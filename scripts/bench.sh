#!/usr/bin/env bash
# Benchmarks of log-capturer against the raw Docker daemon stream, measured in one run
# on this machine (absolute times drift on shared machines; compare the ratios).
#
#   scripts/bench.sh [--lines N] [--idle N]
#
# Scenarios:
#   1. one container holding N lines (default 1,000,000): raw `curl --unix-socket` read of
#      the logs endpoint vs the capturer (release build, file sink) reading the same
#      container from its beginning: seconds, lines/s, ratio, capturer CPU s and peak RSS.
#   2. idle followed containers (default 50): the capturer's threads, FDs and RSS with 0
#      and with N followed containers.
# Needs a running Docker Engine and the test image: run scripts/test.sh once (or
# scripts/docker-up.sh and scripts/build-test-images.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=1000000
IDLE=50
while [ $# -gt 0 ]; do
    case "$1" in
        --lines) LINES="$2"; shift 2 ;;
        --idle) IDLE="$2"; shift 2 ;;
        *) echo "usage: $0 [--lines N] [--idle N]" >&2; exit 2 ;;
    esac
done

command -v bc >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bc >/dev/null; }
IMAGE="${LOG_CAPTURER_TEST_IMAGE:-log-capturer-test/busybox:latest}"
SOCK=/var/run/docker.sock
API=$(curl -sf --unix-socket "$SOCK" http://localhost/version | python3 -c 'import json,sys; print(json.load(sys.stdin)["ApiVersion"])')
WORK=$(mktemp -d /tmp/lc-bench.XXXXXX)
PREFIX="lcbench-$$"
PORT=18401
CAP_PID=""

cleanup() {
    [ -n "$CAP_PID" ] && kill -9 "$CAP_PID" 2>/dev/null || true
    ids=$(docker ps -aq --filter "name=$PREFIX" || true)
    [ -n "$ids" ] && docker rm -f $ids >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
metric() { # sum of a metric's samples
    curl -sf "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m || index($1, m"{") == 1 { s += $NF } END { printf "%d\n", s }'
}
cpu_seconds() { # utime+stime of a pid, in seconds
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$1/stat"
}
rss_kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
count() { ls "/proc/$1/$2" | wc -l; }

start_capturer() { # $1 = name glob, $2 = initial
    cat > "$WORK/config.toml" <<TOML
[containers]
include_names = ["$1"]
initial = "$2"
[positions]
path = "$WORK/positions.json"
[server]
listen = "127.0.0.1:$PORT"
[[sinks]]
type = "file"
path = "$WORK/out.jsonl"
max_bytes = "10GiB"
TOML
    rm -f "$WORK/out.jsonl"
    RUST_LOG=warn target/release/log-capturer --config "$WORK/config.toml" 2>"$WORK/capturer.log" &
    CAP_PID=$!
    for _ in $(seq 1 200); do
        curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "capturer did not become healthy" >&2; cat "$WORK/capturer.log" >&2; exit 1
}

stop_capturer() {
    kill -TERM "$CAP_PID"; wait "$CAP_PID" || true; CAP_PID=""
}

echo "== building (release)"
cargo build --release --quiet

echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), docker API $API, storage $(docker info --format '{{.Driver}}' 2>/dev/null)"

echo "== scenario 1: one container holding $LINES lines"
NAME="$PREFIX-big"
docker run -d --network none --name "$NAME" "$IMAGE" sh -c \
    "awk 'BEGIN { for (i = 1; i <= $LINES; i++) printf \"line %d lorem ipsum dolor sit amet consectetur\\n\", i }'; sleep 100000" >/dev/null
# Wait until the container has written everything (its log holds N lines).
ID=$(docker inspect --format '{{.Id}}' "$NAME")
LOGFILE=$(docker inspect --format '{{.LogPath}}' "$NAME")
for _ in $(seq 1 600); do
    [ "$(wc -l < "$LOGFILE")" -ge "$LINES" ] && break
    sleep 0.5
done
LOG_BYTES=$(stat -c %s "$LOGFILE")

URL="http://localhost/v$API/containers/$ID/logs?stdout=1&stderr=1&timestamps=1"
t0=$(now); curl -sf --unix-socket "$SOCK" "$URL" > "$WORK/raw.bin"; t1=$(now)
RAW_S=$(echo "$t1 - $t0" | bc -l)
RAW_BYTES=$(stat -c %s "$WORK/raw.bin"); rm -f "$WORK/raw.bin"
t0=$(now); cat "$LOGFILE" > /dev/null; t1=$(now)
CAT_S=$(echo "$t1 - $t0" | bc -l)

t0=$(now)
start_capturer "$NAME" beginning
while [ "$(metric log_capturer_sink_records_total)" -lt "$LINES" ]; do sleep 0.02; done
t1=$(now)
CAP_S=$(echo "$t1 - $t0" | bc -l)
CAP_CPU=$(cpu_seconds "$CAP_PID")
CAP_HWM=$(rss_kib "$CAP_PID" VmHWM)
OUT_LINES=$(wc -l < "$WORK/out.jsonl")
stop_capturer
docker rm -f "$NAME" >/dev/null

printf '%-44s %10s %12s\n' "" "seconds" "lines/s"
printf '%-44s %10.2f %12.0f\n' "raw API read (curl, $((RAW_BYTES / 1048576)) MiB)" "$RAW_S" "$(echo "$LINES / $RAW_S" | bc -l)"
printf '%-44s %10.2f %12.0f\n' "cat of the json-file log ($((LOG_BYTES / 1048576)) MiB)" "$CAT_S" "$(echo "$LINES / $CAT_S" | bc -l)"
printf '%-44s %10.2f %12.0f\n' "log-capturer, start to all acknowledged" "$CAP_S" "$(echo "$LINES / $CAP_S" | bc -l)"
printf 'ratio capturer/raw time: %.2fx   capturer CPU: %s s   peak RSS: %.1f MiB   records written: %s\n' \
    "$(echo "$CAP_S / $RAW_S" | bc -l)" "$CAP_CPU" "$(echo "$CAP_HWM / 1024" | bc -l)" "$OUT_LINES"

echo "== scenario 2: $IDLE idle followed containers"
start_capturer "$PREFIX-idle-*" now
sleep 1
T0=$(count "$CAP_PID" task); F0=$(count "$CAP_PID" fd); R0=$(rss_kib "$CAP_PID" VmRSS)
for i in $(seq 1 "$IDLE"); do
    docker run -d --network none --name "$PREFIX-idle-$i" "$IMAGE" sh -c 'echo up; sleep 100000' >/dev/null
done
for _ in $(seq 1 600); do
    [ "$(metric log_capturer_active_streams)" -ge "$IDLE" ] && break
    sleep 0.1
done
sleep 2
T1=$(count "$CAP_PID" task); F1=$(count "$CAP_PID" fd); R1=$(rss_kib "$CAP_PID" VmRSS)
ids=$(docker ps -aq --filter "name=$PREFIX-idle-")
t0=$(now); kill -TERM "$CAP_PID"; wait "$CAP_PID" || true; t1=$(now); CAP_PID=""
STOP_MS=$(echo "($t1 - $t0) * 1000" | bc -l)
docker rm -f $ids >/dev/null
printf '%-28s %8s %8s %10s\n' "" threads fds "RSS MiB"
printf '%-28s %8s %8s %10.1f\n' "0 followed containers" "$T0" "$F0" "$(echo "$R0 / 1024" | bc -l)"
printf '%-28s %8s %8s %10.1f\n' "$IDLE followed containers" "$T1" "$F1" "$(echo "$R1 / 1024" | bc -l)"
printf 'SIGTERM to exit with %s streams: %.0f ms\n' "$IDLE" "$STOP_MS"
