#!/usr/bin/env bash
# Ensure a Docker Engine answers on /var/run/docker.sock.
#
# Idempotent: exits 0 at once when the daemon already answers GET /_ping.
# Otherwise installs docker.io, busybox-static and curl when missing (needs
# root), removes a stale /var/run/docker.pid left by an unclean stop, starts
# dockerd detached (vfs storage, no iptables, no bridge: the fewest kernel
# features dockerd can run on, and the test containers need no network) and
# waits up to 60 s for it to answer.
#
# Environment:
#   DOCKERD_LOG       dockerd's log file (default /tmp/log-capturer-dockerd.log)
#   DOCKERD_WAIT_SECS how long to wait for /_ping (default 60)
set -euo pipefail

SOCK=/var/run/docker.sock
PIDFILE=/var/run/docker.pid
# Pid file of the containerd that dockerd starts and supervises itself.
CTD_PIDFILE=/var/run/docker/containerd/containerd.pid
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/log-capturer-dockerd.log}"
WAIT_SECS="${DOCKERD_WAIT_SECS:-60}"

say() { printf 'docker-up: %s\n' "$*" >&2; }
die() { printf 'docker-up: ERROR: %s\n' "$*" >&2; exit 1; }

# GET /_ping answers the body "OK".
ping_ok() {
    command -v curl >/dev/null 2>&1 || return 1
    [ -S "$SOCK" ] || return 1
    [ "$(curl -fsS --max-time 3 --unix-socket "$SOCK" http://localhost/_ping 2>/dev/null)" = "OK" ]
}

report_version() {
    local json version api
    json="$(curl -fsS --max-time 5 --unix-socket "$SOCK" http://localhost/version 2>/dev/null || true)"
    version="$(printf '%s' "$json" | sed -n 's/^{.*"Version":"\([^"]*\)".*$/\1/p')"
    api="$(printf '%s' "$json" | sed -n 's/^.*"ApiVersion":"\([^"]*\)".*$/\1/p')"
    echo "docker-up: dockerd ${version:-?} (API ${api:-?}) answers on ${SOCK}"
}

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

have_static_busybox() {
    local bb
    bb="$(command -v busybox 2>/dev/null || true)"
    { [ -n "$bb" ] && is_static "$bb"; } || is_static /bin/busybox || is_static /usr/bin/busybox
}

# Pids of live (non-zombie) processes whose command name is exactly "dockerd".
# Reads /proc directly so procps need not be installed.
dockerd_pids() {
    local d pid comm state
    for d in /proc/[0-9]*; do
        pid="${d#/proc/}"
        comm="$(cat "$d/comm" 2>/dev/null || true)"
        [ "$comm" = "dockerd" ] || continue
        # Field 3 of /proc/PID/stat is the state; a killed dockerd that
        # nobody reaped stays behind as a zombie (Z) and is not alive.
        state="$(sed -n 's/^.*) \(.\).*$/\1/p' "$d/stat" 2>/dev/null || true)"
        case "$state" in Z|X|'') continue ;; esac
        echo "$pid"
    done
}

log_tail() {
    if [ -f "$DOCKERD_LOG" ]; then
        echo "----- last 40 lines of $DOCKERD_LOG -----" >&2
        tail -n 40 "$DOCKERD_LOG" >&2 || true
        echo "----- end of $DOCKERD_LOG -----" >&2
    else
        echo "(no dockerd log at $DOCKERD_LOG)" >&2
    fi
}

# True when PID is a live process (kill -0 also succeeds on a zombie).
pid_alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state="$(sed -n 's/^.*) \(.\).*$/\1/p' "/proc/$1/stat" 2>/dev/null || true)"
    case "$state" in Z|X) return 1 ;; esac
    return 0
}

# Wait until /_ping answers; if PID is given, stop early once neither it nor
# any other dockerd process is alive (dockerd failed to start).
wait_for_ping() {
    local pid="${1:-}" deadline=$((SECONDS + WAIT_SECS))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if ping_ok; then return 0; fi
        if [ -n "$pid" ] && ! pid_alive "$pid" && [ -z "$(dockerd_pids)" ]; then
            say "dockerd exited during startup"
            return 1
        fi
        sleep 0.25
    done
    say "dockerd did not answer GET /_ping on $SOCK within ${WAIT_SECS}s"
    return 1
}

# 1. Already up?
if ping_ok; then
    report_version
    exit 0
fi

# Not answering for lack of permission (socket is root:docker 0660)? Say so now.
if [ -S "$SOCK" ] && [ ! -w "$SOCK" ] && [ "$(id -u)" -ne 0 ]; then
    die "no permission to use $SOCK as $(id -un); run as root or join the group that owns it ($(stat -c %G "$SOCK" 2>/dev/null || echo docker))"
fi

# 2. Install what is missing.
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(dockerd)
have_static_busybox || missing+=("static busybox")
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v docker >/dev/null 2>&1 || missing+=("docker CLI")
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        die "missing: ${missing[*]}; installing them needs root. Run as root, or: sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io busybox-static curl"
    fi
    command -v apt-get >/dev/null 2>&1 \
        || die "missing: ${missing[*]}, and apt-get is not available to install docker.io busybox-static curl"
    say "missing: ${missing[*]}; installing docker.io busybox-static curl with apt-get (takes about a minute)"
    apt-get update || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io busybox-static curl \
        || die "apt-get install -y docker.io busybox-static curl failed"
    command -v dockerd >/dev/null 2>&1 || die "dockerd still not on PATH after installing docker.io (PATH=$PATH)"
    command -v curl >/dev/null 2>&1 || die "curl still not on PATH after installing it"
    have_static_busybox || die "no statically linked busybox after installing busybox-static (command -v busybox: $(command -v busybox || echo none))"
    # A daemon may have been started by the package's scripts (not without systemd, but be safe).
    if ping_ok; then
        report_version
        exit 0
    fi
fi

# 3. A dockerd that is alive but not answering yet (e.g. still starting): wait for it
#    instead of starting a second one, which would fail on the pid file anyway.
mapfile -t running < <(dockerd_pids)
if [ "${#running[@]}" -gt 0 ]; then
    say "dockerd already running (pid ${running[*]}) but not answering yet; waiting up to ${WAIT_SECS}s"
    if wait_for_ping "${running[0]}"; then
        report_version
        exit 0
    fi
    log_tail
    die "dockerd pid ${running[*]} is running but does not answer on $SOCK; stop it (kill ${running[*]}) and re-run"
fi

[ "$(id -u)" -eq 0 ] || die "no Docker Engine answers on $SOCK and starting dockerd needs root"

# 4. No dockerd alive: a leftover pid file is stale (unclean stop) and would make
#    dockerd refuse to start ("pid file found, ensure docker is not running").
if [ -e "$PIDFILE" ]; then
    say "removing stale $PIDFILE (pid $(cat "$PIDFILE" 2>/dev/null || echo ?), no dockerd alive)"
    rm -f "$PIDFILE"
fi

# The same holds for the containerd that dockerd supervises (killed along with it). If
# its pid file names a process that is gone *or a zombie*, dockerd believes containerd
# is "still running" (kill -0 succeeds on a zombie), never starts a new one and fails
# after 10 s with "timeout waiting for containerd to start". Here PID 1 reaps orphans
# only lazily, so a killed containerd stays a zombie for a while.
if [ -e "$CTD_PIDFILE" ]; then
    cpid="$(cat "$CTD_PIDFILE" 2>/dev/null || true)"
    if ! { [ -n "$cpid" ] && pid_alive "$cpid" \
           && [ "$(cat "/proc/$cpid/comm" 2>/dev/null)" = "containerd" ]; }; then
        say "removing stale $CTD_PIDFILE (pid ${cpid:-?} is not a live containerd)"
        rm -f "$CTD_PIDFILE"
    fi
fi

# 5. Start dockerd detached, so it outlives this script and its session.
mkdir -p "$(dirname "$DOCKERD_LOG")"
if [ -s "$DOCKERD_LOG" ]; then
    mv -f "$DOCKERD_LOG" "$DOCKERD_LOG.prev" || true
fi
say "starting dockerd (log: $DOCKERD_LOG)"
start_ms=$(( $(date +%s%N) / 1000000 ))
# The daemon outlives us: it must not inherit our descriptors beyond 0-2 (a lock a
# caller holds, e.g. `flock LOCK scripts/test.sh`, would otherwise stay held by dockerd).
(
    for fd in /proc/self/fd/*; do
        fd=${fd##*/}
        [ "$fd" -gt 2 ] 2>/dev/null && eval "exec $fd>&-"
    done
    exec setsid nohup dockerd --storage-driver=vfs --iptables=false --bridge=none \
        </dev/null >"$DOCKERD_LOG" 2>&1
) &
dpid=$!

if ! wait_for_ping "$dpid"; then
    log_tail
    die "could not start dockerd (see $DOCKERD_LOG)"
fi
say "dockerd (pid $dpid) answered after $(( $(date +%s%N) / 1000000 - start_ms )) ms"
report_version
