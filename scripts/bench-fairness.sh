# Scenario 7 of scripts/bench.sh (sourced by it, not run): fairness, a container writing
# as fast as it can beside quiet ones. In each read_from mode (api, then files), with one
# capturer following every container of the scenario:
#   1. solo: one container prints --flood lines (default 3,000,000) alone; its rate is
#      the lines over the time from its first record to its last in the file sink;
#   2. alone: --quiet containers (default 10) print a line every 100 ms for 15 s;
#   3. beside: a second flood of the same size starts beside them; quiet lines are timed
#      until the flood is all in the sink, and its rate is taken as in 1.
# Latency: the moment a quiet record is readable in the file sink minus Docker's
# timestamp of the line. Beside it, `docker logs -f --timestamps` of one quiet container
# times the same lines as dockerd hands them out (API mode: what dockerd adds, before the
# capturer reads anything); in files mode, the line's appearance in Docker's json file.
# Prints p50/p99/max of both, the floods' rates and their ratio, and the peak of
# log_capturer_queue_records during the flood.
# Uses bench.sh's helpers: start_capturer, stop_capturer, result, $WORK, $PREFIX, $IMAGE.

fairness_mode() { # $1 = read_from; prints one JSON object
    local mode=$1
    start_capturer "$PREFIX-fair-$mode-*" now "$mode" "${FAIR_TOML:-}"
    python3 - "$WORK/out.jsonl" "$PREFIX-fair-$mode" "$IMAGE" "$QUIET" "$FLOOD" "$mode" "$PORT" <<'PY'
import datetime, json, os, subprocess, sys, threading, time, urllib.request
out, prefix, image, quiet, flood, mode, port = sys.argv[1:8]
quiet, flood = int(quiet), int(flood)

def ts(s):  # RFC 3339, Z, with up to 9 digits (Docker's json file drops trailing zeros)
    base = datetime.datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    frac = s[20:].rstrip("Z") if s[19:20] == "." else ""
    return base.timestamp() + int((frac + "000000000")[:9]) / 1e9

def run(name, cmd):
    return subprocess.run(["docker", "run", "-d", "--network", "none", "--name", name, image, "sh", "-c", cmd],
                          check=True, capture_output=True, text=True).stdout.strip()

class Sink:
    """Times the quiet records as they become readable in the sink file, and counts the
    flood's records as the file sink acknowledges them. The file is followed by `tail -F`
    piped to `grep` (C tools, woken by inotify): a Python reader of the whole file could
    not keep up with a flood of 300k+ records/s on 2 cores, and its own lag would be timed.
    The flood's records are counted from the sink's log_capturer_sink_records_total, less
    the quiet records seen meanwhile."""
    def __init__(self, path):
        while not os.path.exists(path):
            time.sleep(0.01)
        self.lock = threading.Lock()
        self.tail = subprocess.Popen(f"exec tail -c 0 -F {path} 2>/dev/null | exec grep --line-buffered -F '\"q-'",
                                     shell=True, stdout=subprocess.PIPE, start_new_session=True)
        self.quiet_seen = 0
        self.reset(time.time())
        threading.Thread(target=self.read_quiet, daemon=True).start()
    def reset(self, since):
        with self.lock:
            self.since, self.lat, self.first, self.last = since, [], None, None
            self.base, self.quiet_base = sink_records(), self.quiet_seen
        self.flood = 0
    def read_quiet(self):
        for line in self.tail.stdout:
            now = time.time()
            t = ts(json.loads(line)["time"])
            with self.lock:
                self.quiet_seen += 1
                if t >= self.since:
                    self.lat.append(now - t)
    def poll(self):
        time.sleep(0.02)
        now = time.time()
        with self.lock:
            flood = sink_records() - self.base - (self.quiet_seen - self.quiet_base)
        if flood > self.flood:
            # A few quiet records acknowledged but not yet through grep count as flood for
            # a moment: the flood has begun once 100 are in.
            self.flood = flood; self.last = now
            if flood >= 100:
                self.first = self.first or now
    def close(self):
        os.killpg(self.tail.pid, 15); self.tail.wait()

def metric(name):
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read().decode()
        return int(float(next(l.split()[1] for l in body.splitlines() if l.startswith(name))))
    except Exception:
        return 0

def sink_records():
    return metric("log_capturer_sink_records_total{")

def queue_records():
    return metric("log_capturer_queue_records ")

def pct(xs):
    xs = sorted(x * 1000 for x in xs)
    if not xs:
        return {"n": 0}
    p = lambda q: round(xs[min(len(xs) - 1, int(q * len(xs)))], 1)
    return {"n": len(xs), "p50_ms": p(0.5), "p99_ms": p(0.99), "max_ms": round(xs[-1], 1)}

raw_lat, raw_on, raw_since = [], [True], [0.0]
def raw_reader(cid, log_path):
    # What the daemon hands out (API mode) or writes (files mode), timed the same way.
    if mode == "api":
        p = subprocess.Popen(["docker", "logs", "-f", "--timestamps", cid], stdout=subprocess.PIPE)
        for line in p.stdout:
            if raw_on[0] and b" q-" in line:
                t = ts(line.split(b" ", 1)[0].decode())
                if t >= raw_since[0]:
                    raw_lat.append(time.time() - t)
            if not raw_on[0]:
                break
        p.kill(); p.wait()
    else:
        while not os.path.exists(log_path):
            time.sleep(0.01)
        f = open(log_path, "rb"); buf = b""
        while raw_on[0]:
            chunk = f.read()
            if not chunk:
                time.sleep(0.0005); continue
            now = time.time()
            *lines, buf = (buf + chunk).split(b"\n")
            for l in lines:
                if b"q-" in l:
                    t = ts(json.loads(l)["time"])
                    if t >= raw_since[0]:
                        raw_lat.append(now - t)

def flood_until_done(sink, name):
    sink.reset(time.time())
    run(name, f"seq 1 {flood}")
    peak = 0; t_next = 0
    deadline = time.time() + 600
    while sink.flood < flood and time.time() < deadline:
        sink.poll()
        if time.time() >= t_next:
            peak = max(peak, queue_records()); t_next = time.time() + 0.2
    n = sink.flood
    span = (sink.last or 0) - (sink.first or 0)
    return {"lines": n, "seconds": round(span, 2), "lines_per_s": round(n / span) if span > 0 else 0,
            "peak_queue_records": peak}

sink = Sink(out)
solo = flood_until_done(sink, f"{prefix}-solo")
ids = [run(f"{prefix}-q{i}", "i=0; while :; do i=$((i+1)); echo q-$i; sleep 0.1; done") for i in range(quiet)]
docker_root = os.environ.get("DOCKER_ROOT", "/var/lib/docker")
# The first lines of each quiet container are read as a backlog when it is found: timed
# are the lines written from 2 s after the last start.
raw_since[0] = time.time() + 2
t = threading.Thread(target=raw_reader, args=(ids[0], f"{docker_root}/containers/{ids[0]}/{ids[0]}-json.log"))
t.start()
sink.reset(time.time() + 2)
time.sleep(17)
alone, raw_alone = sink.lat, list(raw_lat)
raw_mark = len(raw_lat)
beside = flood_until_done(sink, f"{prefix}-flood")
raw_beside = raw_lat[raw_mark:]
raw_on[0] = False
t.join(timeout=5)
sink.close()
print(json.dumps({"mode": mode, "quiet": quiet, "solo": solo, "beside": beside,
                  "noisy_ratio": round(beside["lines_per_s"] / solo["lines_per_s"], 3) if solo["lines_per_s"] else None,
                  "quiet_alone": pct(alone), "quiet_beside": pct(sink.lat),
                  "raw_alone": pct(raw_alone), "raw_beside": pct(raw_beside)}))
PY
    stop_capturer
    docker ps -aq --filter "name=$PREFIX-fair-$mode" | xargs -r -n 4 docker rm -f >/dev/null
}

fairness_scenario() {
    echo "== scenario 7: fairness, $QUIET containers writing a line every 100 ms beside one printing $FLOOD lines"
    local mode json all=""
    for mode in ${FAIR_MODES:-api files}; do
        json=$(fairness_mode "$mode")
        all="${all:+$all, }$json"
        python3 - "$json" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
f = lambda d: f"p50 {d.get('p50_ms', '-')} / p99 {d.get('p99_ms', '-')} / max {d.get('max_ms', '-')} ms (n {d['n']})"
raw = "docker logs -f" if r["mode"] == "api" else "json file"
print(f"{r['mode']:5} quiet alone   {f(r['quiet_alone'])};  {raw}: {f(r['raw_alone'])}")
print(f"{r['mode']:5} quiet beside  {f(r['quiet_beside'])};  {raw}: {f(r['raw_beside'])}")
print(f"{r['mode']:5} flood solo {r['solo']['lines_per_s']} lines/s, beside {r['beside']['lines_per_s']} lines/s "
      f"(ratio {r['noisy_ratio']}), peak queue {r['beside']['peak_queue_records']} records")
PY
    done
    result fairness "[$all]"
}
