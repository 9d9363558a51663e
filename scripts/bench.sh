#!/usr/bin/env bash
# Benchmarks of log-capturer against the raw Docker daemon stream, measured in one run
# on this machine (absolute times drift on shared machines; compare the ratios).
#
#   scripts/bench.sh [--lines N] [--many N] [--idle N] [--starts N] [--read-from api|files]
#                    [--json FILE] [--only-rules] [--only-scale] [--scale-sizes N,N,...]
#                    [--scale-minutes M] [--scale-starts N] [--scale-plot BASE]
#                    [--only-fairness] [--flood N] [--quiet N] [--only-starts]
#
# Scenarios (1 runs both read_from modes; --read-from sets the mode of 2 to 4):
#   1. one container holding N lines (default 1,000,000): raw `curl --unix-socket` read of
#      the logs endpoint and `cat` of its json file vs the capturer (release build, file
#      sink) reading the same container from its beginning, through the API
#      (read_from = "api") and from disk (read_from = "files"): seconds, lines/s, ratio,
#      CPU seconds of the capturer and of dockerd, capturer peak RSS.
#   2. N containers (default 50) x 20,000 lines at once: the capturer following them live
#      vs N concurrent raw reads of the same logs afterwards.
#   3. start-to-first-record latency over N container starts (default 100), p50 and p99:
#      from the line's Docker timestamp to the record appearing in the sink file.
#   4. idle followed containers: threads, FDs and RSS with 0, N/2 and N (default 200)
#      followed containers, then the SIGTERM-to-exit time with N active streams.
#   5. rules: one container holding N JSON lines, read from disk (read_from = "files")
#      with no rule, `multiline = "auto"` and `parse = "json"`, after a warm-up run, twice
#      each taking turns: seconds and CPU seconds of the capturer (means), and each rule's
#      CPU against no rule (goals: auto <= 1.3x, json <= 2x). `--only-rules` runs this
#      scenario alone.
#   6. scale: 10, 100, 300 and 1000 (--scale-sizes) idle followed containers, each printing
#      a line every 10 s, grown from one size to the next; at each size, dockerd's CPU
#      without a capturer, then a capturer in API mode and one in files mode in turn:
#      RSS (and per container), threads, FDs, CPU seconds per minute of the capturer, of
#      dockerd and of containerd over --scale-minutes (default 1), and the median
#      start-to-first-record of --scale-starts (default 5) new containers. A Markdown
#      table, and BASE.dat and BASE.svg (gnuplot) with --scale-plot BASE (default
#      docs/bench/scale-<commit>). `--only-scale` runs this scenario alone. See
#      scripts/bench-scale.sh.
#   7. fairness: --quiet containers (default 10) writing a line every 100 ms beside one
#      printing --flood lines (default 3,000,000), in both modes: the quiet lines' latency
#      (p50/p99/max) alone and beside the flood, what dockerd itself adds (`docker logs
#      -f`; in files mode the json file), and the flood's rate beside them against alone.
#      `--only-fairness` runs this scenario alone. See scripts/bench-fairness.sh.
# Needs a running Docker Engine and the test image: run scripts/test.sh once (or
# scripts/docker-up.sh and scripts/build-test-images.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=1000000
MANY=50
IDLE=200
STARTS=100
JSON=""
READ_FROM=api
ONLY_RULES=""
ONLY_SCALE=""
ONLY_FAIRNESS=""
ONLY_STARTS=""
FLOOD=3000000
QUIET=10
SCALE_SIZES=10,100,300,1000
SCALE_MINUTES=1
SCALE_STARTS=5
SCALE_PLOT="docs/bench/scale-$(git rev-parse --short HEAD)"
while [ $# -gt 0 ]; do
    case "$1" in
        --only-rules) ONLY_RULES=1; shift ;;
        --only-scale) ONLY_SCALE=1; shift ;;
        --only-fairness) ONLY_FAIRNESS=1; shift ;;
        --only-starts) ONLY_STARTS=1; shift ;;
        --flood) FLOOD="$2"; shift 2 ;;
        --quiet) QUIET="$2"; shift 2 ;;
        --scale-sizes) SCALE_SIZES="$2"; shift 2 ;;
        --scale-minutes) SCALE_MINUTES="$2"; shift 2 ;;
        --scale-starts) SCALE_STARTS="$2"; shift 2 ;;
        --scale-plot) SCALE_PLOT="$2"; shift 2 ;;
        --lines) LINES="$2"; shift 2 ;;
        --many) MANY="$2"; shift 2 ;;
        --idle) IDLE="$2"; shift 2 ;;
        --starts) STARTS="$2"; shift 2 ;;
        --read-from) READ_FROM="$2"; shift 2 ;;
        --json) JSON="$2"; shift 2 ;;
        *) echo "usage: $0 [--lines N] [--many N] [--idle N] [--starts N] [--read-from api|files] [--json FILE] [--only-rules] [--only-scale] [--scale-sizes N,N,...] [--scale-minutes M] [--scale-starts N] [--scale-plot BASE] [--only-fairness] [--flood N] [--quiet N] [--only-starts]" >&2; exit 2 ;;
    esac
done
RESULTS=()
result() { RESULTS+=("\"$1\": $2"); }

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
    # four at a time (see scale_remove in scripts/bench-scale.sh)
    docker ps -aq --filter "name=$PREFIX" 2>/dev/null | xargs -r -n 4 docker rm -f >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # so that cleanup runs (scenario 6 leaves up to 1000 containers)

now() { date +%s.%N; }
metric() { # sum of a metric's samples
    curl -sf "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m || index($1, m"{") == 1 { s += $NF } END { printf "%d\n", s }'
}
cpu_seconds() { # utime+stime of a pid, in seconds
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$1/stat"
}
rss_kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
count() { ls "/proc/$1/$2" | wc -l; }

start_capturer() { # $1 = name glob, $2 = initial, $3 = read_from (default api), $4 = more TOML
    rm -f "$WORK/positions.json"
    cat > "$WORK/config.toml" <<TOML
${4:-}
[containers]
include_names = ["$1"]
initial = "$2"
read_from = "${3:-api}"
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
    env -u LOG_CAPTURER_BIN -u LOG_CAPTURER_IMAGE -u LOG_CAPTURER_TEST_IMAGE RUST_LOG=warn "$BIN" --config "$WORK/config.toml" 2>"$WORK/capturer.log" &
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

first_records() { # $1 = sink file, $2 = starts, $3 = name prefix: prints "p50_ms p99_ms seen event_p50_ms after_event_p50_ms"
    # Starts $2 containers one at a time, named $3-<i>, each printing a line at once, and
    # times each line from its Docker timestamp to its record appearing in the sink file.
    # Also split in two: dockerd's `start` event time (from `docker events`) minus the
    # line's timestamp (dockerd's part: the capturer cannot start following before it),
    # and the record's appearance minus the event time (the capturer's part).
    python3 - "$1" "$2" "$3" "$IMAGE" <<'PY'
import json, subprocess, sys, threading, time, datetime
path, starts, prefix, image = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def ts(s):  # RFC 3339 with 9 digits, Z
    base = datetime.datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return base.timestamp() + int(s[20:29]) / 1e9
events = {}
ev = subprocess.Popen(["docker", "events", "--filter", "type=container", "--filter", "event=start",
                       "--format", "{{.Actor.Attributes.name}} {{.TimeNano}}"], stdout=subprocess.PIPE, text=True)
def read_events():
    for line in ev.stdout:
        name, t = line.split()
        events[name] = int(t) / 1e9
threading.Thread(target=read_events, daemon=True).start()
time.sleep(0.5)
lat, to_event, after_event = [], [], []
f = open(path, "a+"); f.seek(0, 2)
buf = ""
for i in range(starts):
    name = f"{prefix}-{i}"
    subprocess.run(["docker", "run", "-d", "--network", "none", "--name", name, image, "sh", "-c",
                    f"echo first-{i}; sleep 100000"], check=True, stdout=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        chunk = f.read()
        if chunk:
            buf += chunk
            *lines, buf = buf.split("\n")
            hit = [json.loads(l) for l in lines if f'"first-{i}"' in l]
            if hit:
                now, t = time.time(), ts(hit[0]["time"])
                lat.append(now - t)
                if name in events:
                    to_event.append(events[name] - t); after_event.append(now - events[name])
                break
        else:
            time.sleep(0.0005)
ev.kill()
p = lambda xs, q: f"{sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] * 1000:.1f}" if xs else "null"
print(p(lat, 0.5), p(lat, 0.99), len(lat), p(to_event, 0.5), p(after_event, 0.5))
PY
}

# shellcheck source=scripts/bench-scale.sh
. scripts/bench-scale.sh
# shellcheck source=scripts/bench-fairness.sh
. scripts/bench-fairness.sh

BIN="${LOG_CAPTURER_BIN:-}"
if [ -z "$BIN" ]; then
    echo "== building (release)"
    cargo build --release --quiet
    BIN=target/release/log-capturer
fi

echo "== scenarios 2-4 with read_from = $READ_FROM"
echo "== machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r), docker API $API, storage $(docker info --format '{{.Driver}}' 2>/dev/null)"

rules_scenario() {
    echo "== scenario 5: rules, one container holding $LINES JSON lines, read_from = files"
    local name="$PREFIX-json"
    docker run -d --network none --name "$name" "$IMAGE" sh -c \
        "awk 'BEGIN { for (i = 1; i <= $LINES; i++) printf \"{\\\"level\\\":\\\"info\\\",\\\"msg\\\":\\\"line %d lorem ipsum dolor\\\",\\\"i\\\":%d}\\n\", i, i }'; sleep 100000" >/dev/null
    local logfile
    logfile=$(docker inspect --format '{{.LogPath}}' "$name")
    for _ in $(seq 1 600); do
        [ "$(wc -l < "$logfile")" -ge "$LINES" ] && break
        sleep 0.5
    done
    # A first run warms the page cache and the allocator's view of the machine (it used to
    # read as the slowest by far); then two rounds, the rules taking turns; each figure is
    # the mean of its two runs.
    local rule round t0 t1 toml
    declare -A secs cpu
    for round in warm 1 2; do
        for rule in none auto json; do
            [ "$round" = warm ] && [ "$rule" != none ] && continue
            toml=""
            case "$rule" in
                auto) toml=$'[[rules]]\nmultiline = "auto"' ;;
                json) toml=$'[[rules]]\nparse = "json"' ;;
            esac
            t0=$(now)
            start_capturer "$name" beginning files "$toml"
            while [ "$(metric log_capturer_sink_records_total)" -lt "$LINES" ]; do sleep 0.02; done
            t1=$(now)
            if [ "$round" != warm ]; then
                secs[$rule]=$(echo "${secs[$rule]:-0} + ($t1 - $t0) / 2" | bc -l)
                cpu[$rule]=$(echo "${cpu[$rule]:-0} + $(cpu_seconds "$CAP_PID") / 2" | bc -l)
            fi
            if [ "$rule" = json ]; then
                head -1 "$WORK/out.jsonl" | grep -q '"fields":{' || { echo "parse = json made no fields" >&2; exit 1; }
            fi
            stop_capturer
        done
    done
    printf '%-46s %8s %9s %9s\n' "" "seconds" "CPU s" "CPU ratio"
    local json_out="{\"lines\": $LINES"
    for rule in none auto json; do
        printf '%-46s %8.2f %9.2f %8.2fx\n' "log-capturer, files, rule: $rule" "${secs[$rule]}" "${cpu[$rule]}" "$(echo "${cpu[$rule]} / ${cpu[none]}" | bc -l)"
        json_out="$json_out, \"${rule}_s\": ${secs[$rule]}, \"${rule}_cpu_s\": ${cpu[$rule]}, \"${rule}_cpu_ratio\": $(echo "${cpu[$rule]} / ${cpu[none]}" | bc -l)"
    done
    docker rm -f "$name" >/dev/null
    result rules "$json_out}"
}

write_json() {
    [ -n "$JSON" ] || return 0
    { printf '{"commit": "%s", "machine": "%s cores", "read_from_2_4": "%s", ' "$(git rev-parse --short HEAD)" "$(nproc)" "$READ_FROM"
      (IFS=,; printf '%s' "${RESULTS[*]}"); printf '}\n'; } |
        sed -E 's/([:,[] *)(-?)\./\1\20./g' > "$JSON"  # bc prints .5 for 0.5
    python3 -m json.tool "$JSON" >/dev/null && echo "== results: $JSON"
}

if [ -n "$ONLY_SCALE" ]; then
    scale_scenario
    write_json
    exit 0
fi
starts_scenario() {
    echo "== scenario 3: start-to-first-record latency over $STARTS container starts"
    start_capturer "$PREFIX-lat-*" now "$READ_FROM"
    LAT=$(first_records "$WORK/out.jsonl" "$STARTS" "$PREFIX-lat")
    read -r P50 P99 GOT TO_EVENT AFTER_EVENT <<<"$LAT"
    stop_capturer
    docker ps -aq --filter "name=$PREFIX-lat-" | xargs -r -n 4 docker rm -f >/dev/null
    printf 'first record: p50 %s ms, p99 %s ms (%s of %s starts seen); p50 line to start event %s ms (dockerd), start event to record %s ms (capturer)\n' \
        "$P50" "$P99" "$GOT" "$STARTS" "$TO_EVENT" "$AFTER_EVENT"
    result first_record_latency "{\"starts\": $STARTS, \"seen\": $GOT, \"p50_ms\": $P50, \"p99_ms\": $P99, \"line_to_event_p50_ms\": $TO_EVENT, \"event_to_record_p50_ms\": $AFTER_EVENT}"
}
if [ -n "$ONLY_STARTS" ]; then
    starts_scenario
    write_json
    exit 0
fi
if [ -n "$ONLY_FAIRNESS" ]; then
    fairness_scenario
    write_json
    exit 0
fi
if [ -n "$ONLY_RULES" ]; then
    rules_scenario
    write_json
    exit 0
fi

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
DOCKERD=$(pgrep -xo dockerd)
d0=$(cpu_seconds "$DOCKERD")
t0=$(now); curl -sf --unix-socket "$SOCK" "$URL" > "$WORK/raw.bin"; t1=$(now)
RAW_S=$(echo "$t1 - $t0" | bc -l)
RAW_DCPU=$(echo "$(cpu_seconds "$DOCKERD") - $d0" | bc -l)
RAW_BYTES=$(stat -c %s "$WORK/raw.bin"); rm -f "$WORK/raw.bin"
t0=$(now); cat "$LOGFILE" > /dev/null; t1=$(now)
CAT_S=$(echo "$t1 - $t0" | bc -l)

capture_all() { # $1 = read_from; sets CAP_S CAP_CPU CAP_HWM OUT_LINES CAP_DCPU
    d0=$(cpu_seconds "$DOCKERD")
    t0=$(now)
    start_capturer "$NAME" beginning "$1"
    while [ "$(metric log_capturer_sink_records_total)" -lt "$LINES" ]; do sleep 0.02; done
    t1=$(now)
    CAP_S=$(echo "$t1 - $t0" | bc -l)
    CAP_CPU=$(cpu_seconds "$CAP_PID")
    CAP_DCPU=$(echo "$(cpu_seconds "$DOCKERD") - $d0" | bc -l)
    CAP_HWM=$(rss_kib "$CAP_PID" VmHWM)
    OUT_LINES=$(wc -l < "$WORK/out.jsonl")
    stop_capturer
}
capture_all api
API_S=$CAP_S; API_CPU=$CAP_CPU; API_DCPU=$CAP_DCPU; API_HWM=$CAP_HWM; API_LINES=$OUT_LINES
capture_all files
FILES_S=$CAP_S; FILES_CPU=$CAP_CPU; FILES_DCPU=$CAP_DCPU; FILES_HWM=$CAP_HWM; FILES_LINES=$OUT_LINES
docker rm -f "$NAME" >/dev/null

printf '%-46s %8s %11s %9s %11s %9s\n' "" "seconds" "lines/s" "CPU s" "dockerd s" "peak RSS"
printf '%-46s %8.2f %11.0f %9s %11.2f %9s\n' "raw API read (curl, $((RAW_BYTES / 1048576)) MiB)" "$RAW_S" "$(echo "$LINES / $RAW_S" | bc -l)" "-" "$RAW_DCPU" "-"
printf '%-46s %8.2f %11.0f %9s %11s %9s\n' "cat of the json-file log ($((LOG_BYTES / 1048576)) MiB)" "$CAT_S" "$(echo "$LINES / $CAT_S" | bc -l)" "-" "0" "-"
printf '%-46s %8.2f %11.0f %9s %11.2f %7.1fMiB\n' "log-capturer, read_from=api (all acked)" "$API_S" "$(echo "$LINES / $API_S" | bc -l)" "$API_CPU" "$API_DCPU" "$(echo "$API_HWM / 1024" | bc -l)"
printf '%-46s %8.2f %11.0f %9s %11.2f %7.1fMiB\n' "log-capturer, read_from=files (all acked)" "$FILES_S" "$(echo "$LINES / $FILES_S" | bc -l)" "$FILES_CPU" "$FILES_DCPU" "$(echo "$FILES_HWM / 1024" | bc -l)"
printf 'ratio api-mode/raw time: %.2fx   files-mode speed-up over api mode: %.2fx   records written: api %s, files %s\n' \
    "$(echo "$API_S / $RAW_S" | bc -l)" "$(echo "$API_S / $FILES_S" | bc -l)" "$API_LINES" "$FILES_LINES"
result one_container "{\"lines\": $LINES, \"raw_s\": $RAW_S, \"raw_dockerd_cpu_s\": $RAW_DCPU, \"cat_s\": $CAT_S, \"capturer_s\": $API_S, \"ratio\": $(echo "$API_S / $RAW_S" | bc -l), \"cpu_s\": $API_CPU, \"dockerd_cpu_s\": $API_DCPU, \"peak_rss_kib\": $API_HWM, \"records\": $API_LINES, \"files_s\": $FILES_S, \"files_cpu_s\": $FILES_CPU, \"files_dockerd_cpu_s\": $FILES_DCPU, \"files_peak_rss_kib\": $FILES_HWM, \"files_records\": $FILES_LINES, \"files_speedup\": $(echo "$API_S / $FILES_S" | bc -l)}"

echo "== scenario 2: $MANY containers x 20000 lines at once"
start_capturer "$PREFIX-many-*" now "$READ_FROM"
t0=$(now)
pids=()
for i in $(seq 1 "$MANY"); do
    docker run -d --network none --name "$PREFIX-many-$i" "$IMAGE" sh -c \
        "awk 'BEGIN { for (i = 1; i <= 20000; i++) printf \"c$i line %d lorem ipsum dolor sit amet\\n\", i }'; sleep 100000" >/dev/null &
    pids+=($!)
done
wait "${pids[@]}"  # not a bare `wait`: the capturer is a child too
TOTAL=$((MANY * 20000))
while [ "$(metric log_capturer_sink_records_total)" -lt "$TOTAL" ]; do sleep 0.05; done
t1=$(now)
MANY_CAP_S=$(echo "$t1 - $t0" | bc -l)
MANY_CPU=$(cpu_seconds "$CAP_PID"); MANY_HWM=$(rss_kib "$CAP_PID" VmHWM)
stop_capturer
ids=()
for i in $(seq 1 "$MANY"); do ids+=("$(docker inspect --format '{{.Id}}' "$PREFIX-many-$i")"); done
t0=$(now)
pids=()
for id in "${ids[@]}"; do
    curl -sf --unix-socket "$SOCK" "http://localhost/v$API/containers/$id/logs?stdout=1&stderr=1&timestamps=1" >/dev/null &
    pids+=($!)
done
wait "${pids[@]}"
t1=$(now)
MANY_RAW_S=$(echo "$t1 - $t0" | bc -l)
docker ps -aq --filter "name=$PREFIX-many-" | xargs -r docker rm -f >/dev/null
printf '%-44s %10s %12s\n' "" "seconds" "lines/s"
printf '%-44s %10.2f %12.0f\n' "$MANY concurrent raw reads afterwards" "$MANY_RAW_S" "$(echo "$TOTAL / $MANY_RAW_S" | bc -l)"
printf '%-44s %10.2f %12.0f\n' "log-capturer, live, start to all acked" "$MANY_CAP_S" "$(echo "$TOTAL / $MANY_CAP_S" | bc -l)"
printf 'capturer CPU: %s s   peak RSS: %.1f MiB (the live figure includes starting %s containers)\n' "$MANY_CPU" "$(echo "$MANY_HWM / 1024" | bc -l)" "$MANY"
result many_containers "{\"containers\": $MANY, \"lines\": $TOTAL, \"raw_s\": $MANY_RAW_S, \"capturer_s\": $MANY_CAP_S, \"cpu_s\": $MANY_CPU, \"peak_rss_kib\": $MANY_HWM}"

starts_scenario

echo "== scenario 4: idle followed containers, then shutdown with $IDLE streams"
start_capturer "$PREFIX-idle-*" now "$READ_FROM"
sleep 1
T0=$(count "$CAP_PID" task); F0=$(count "$CAP_PID" fd); R0=$(rss_kib "$CAP_PID" VmRSS)
idle_up_to() {
    for i in $(seq "$1" "$2"); do
        echo "$i"
    done | xargs -P 4 -I{} docker run -d --network none --name "$PREFIX-idle-{}" "$IMAGE" sh -c 'echo up; sleep 100000' >/dev/null
    for _ in $(seq 1 600); do
        [ "$(metric log_capturer_active_streams)" -ge "$2" ] && break
        sleep 0.1
    done
    sleep 2
}
HALF=$((IDLE / 2))
idle_up_to 1 "$HALF"
T1=$(count "$CAP_PID" task); F1=$(count "$CAP_PID" fd); R1=$(rss_kib "$CAP_PID" VmRSS)
idle_up_to $((HALF + 1)) "$IDLE"
T2=$(count "$CAP_PID" task); F2=$(count "$CAP_PID" fd); R2=$(rss_kib "$CAP_PID" VmRSS)
ACTIVE=$(metric log_capturer_active_streams)
t0=$(now); kill -TERM "$CAP_PID"; wait "$CAP_PID" || true; t1=$(now); CAP_PID=""
STOP_MS=$(echo "($t1 - $t0) * 1000" | bc -l)
docker ps -aq --filter "name=$PREFIX-idle-" | xargs -r docker rm -f >/dev/null
printf '%-28s %8s %8s %10s\n' "" threads fds "RSS MiB"
printf '%-28s %8s %8s %10.1f\n' "0 followed containers" "$T0" "$F0" "$(echo "$R0 / 1024" | bc -l)"
printf '%-28s %8s %8s %10.1f\n' "$HALF followed containers" "$T1" "$F1" "$(echo "$R1 / 1024" | bc -l)"
printf '%-28s %8s %8s %10.1f\n' "$IDLE followed containers" "$T2" "$F2" "$(echo "$R2 / 1024" | bc -l)"
printf 'SIGTERM to exit with %s active streams: %.0f ms\n' "$ACTIVE" "$STOP_MS"
result idle "{\"followed\": [0, $HALF, $IDLE], \"threads\": [$T0, $T1, $T2], \"fds\": [$F0, $F1, $F2], \"rss_kib\": [$R0, $R1, $R2], \"stop_ms\": $STOP_MS, \"active_at_stop\": $ACTIVE}"

rules_scenario
scale_scenario
fairness_scenario
write_json
