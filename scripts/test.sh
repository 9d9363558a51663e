#!/usr/bin/env bash
# The project's test command (README, CI): start a real Docker Engine, build the
# test images and the log-capturer image, check the alert rules and the dashboard,
# check formatting and lints, then run the whole test suite against the engine: the unit
# tests, tests/offline.rs, and tests/docker.rs (the `docker-tests` feature builds it).
# When a Grafana Loki binary is found (LOKI_BIN, or loki.xz in a shared directory next to
# the clone), two Loki instances are started early (tests/loki/loki.yaml) and the
# real-Loki tests run too (the `real-loki` feature); when none is, the script says so,
# also in its closing line.
# Extra arguments go to `cargo test`, e.g. scripts/test.sh -- --test-threads=4
# Never skips the Docker-backed tests: exits non-zero when Docker cannot be started.
set -euo pipefail

cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'test.sh: ERROR: %s\n' "$*" >&2; exit 1; }

# rustfmt/clippy: use them if present; otherwise try rustup (needs network).
ensure_cargo_tool() { # $1 = rustup component, $2 = cargo subcommand
    cargo "$2" --version >/dev/null 2>&1 && return 0
    if command -v rustup >/dev/null 2>&1; then
        step "installing rustup component $1"
        rustup component add "$1" || die "cargo $2 is missing and 'rustup component add $1' failed"
        cargo "$2" --version >/dev/null 2>&1 && return 0
    fi
    die "cargo $2 is not available (install the $1 component: rustup component add $1)"
}

# --- A real Grafana Loki, started now: it takes 10-20 s to be ready, which the image
# builds below cover. LOKI_BIN (an unpacked binary) wins; else the shared xz-compressed
# copy next to the clone, or at /work/shared. Each instance is stopped (SIGTERM to its own
# PID) when this script exits.
scratch=$(mktemp -d)
loki_pids=()
cleanup() {
    local pid
    for pid in "${loki_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${loki_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$scratch"
}
trap cleanup EXIT

find_loki() {
    if [ -n "${LOKI_BIN:-}" ]; then
        [ -x "$LOKI_BIN" ] || die "LOKI_BIN=$LOKI_BIN is not an executable file"
        LOKI_BIN=$(cd "$(dirname "$LOKI_BIN")" && pwd)/$(basename "$LOKI_BIN")
        return 0
    fi
    local xz_file
    for xz_file in ../shared/loki/loki.xz /work/shared/loki/loki.xz; do
        [ -f "$xz_file" ] || continue
        if ! command -v xz >/dev/null 2>&1; then
            step "installing xz (Debian package xz-utils) to unpack $xz_file"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends xz-utils >/dev/null \
                || die "$xz_file needs xz to unpack (apt-get install xz-utils failed)"
        fi
        step "unpacking Grafana Loki from $xz_file"
        mkdir -p "$scratch/bin"
        xz -dc "$xz_file" >"$scratch/bin/loki" && chmod +x "$scratch/bin/loki" || die "could not unpack $xz_file"
        LOKI_BIN=$scratch/bin/loki
        return 0
    done
    return 1
}

# A loopback port nothing listens on.
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 20000))
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
    done
}

# start_loki NAME AUTH VAR: one instance on free ports, its data in $scratch/data-NAME and
# its log in $scratch/NAME.log; its URL goes to the variable VAR (not echoed: a subshell would lose the PID).
start_loki() {
    local port grpc
    port=$(free_port); grpc=$(free_port)
    LOKI_DATA="$scratch/data-$1" LOKI_HTTP_PORT=$port LOKI_GRPC_PORT=$grpc LOKI_AUTH=$2 \
        LOKI_OVERRIDES="$PWD/tests/loki/overrides.yaml" \
        "$LOKI_BIN" -config.file="$PWD/tests/loki/loki.yaml" -config.expand-env=true \
        >"$scratch/$1.log" 2>&1 &
    loki_pids+=($!)
    printf -v "$3" 'http://127.0.0.1:%s' "$port"
}

# wait_loki URL PID NAME: until GET /ready answers "ready" (2 minutes at most).
wait_loki() {
    local port=${1##*:} deadline=$((SECONDS + 120)) answer
    while [ "$SECONDS" -lt "$deadline" ]; do
        kill -0 "$2" 2>/dev/null || die "Loki ($3) exited while starting: $(tail -n 5 "$scratch/$3.log")"
        answer=$( (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /ready HTTP/1.0\r\n\r\n' >&3 && cat <&3) 2>/dev/null || true)
        case $answer in *$'\r\n\r\n'ready*) return 0 ;; esac
        sleep 1
    done
    die "Loki ($3) at $1 was not ready within 2 minutes: $(tail -n 5 "$scratch/$3.log")"
}

step "Grafana Loki for the real-Loki tests"
features=docker-tests
loki_note="real-Loki tests NOT RUN: no Loki found (set LOKI_BIN to a Grafana Loki 3.x binary)"
if find_loki; then
    export LOKI_BIN
    start_loki loki false LOKI_URL
    start_loki loki-mt true LOKI_MT_URL
    export LOKI_URL LOKI_MT_URL
    features=docker-tests,real-loki
    loki_note="real-Loki tests ran against $("$LOKI_BIN" -version 2>/dev/null | head -n 1)"
    echo "Loki $LOKI_BIN starting: $LOKI_URL (auth off), $LOKI_MT_URL (multi-tenant)" >&2
else
    echo "test.sh: $loki_note" >&2
fi

step "Docker Engine"
scripts/docker-up.sh || die "could not start a Docker Engine; the integration tests need one"

export LOG_CAPTURER_TEST_IMAGE="${LOG_CAPTURER_TEST_IMAGE:-log-capturer-test/busybox:latest}"
step "test images ($LOG_CAPTURER_TEST_IMAGE)"
scripts/build-test-images.sh || die "could not build the test images"

# The log-capturer image itself (tests/image.rs): a static release build on the host,
# then the Dockerfile's final stage (no registry needed). The cold build is the slow
# part of this script; later runs only rebuild what changed.
export LOG_CAPTURER_IMAGE="${LOG_CAPTURER_IMAGE:-log-capturer:local}"
step "container image ($LOG_CAPTURER_IMAGE)"
scripts/build-image.sh || die "could not build the container image"

# promtool (Debian's prometheus package) checks the /metrics exposition in the tests.
if ! command -v promtool >/dev/null 2>&1; then
    step "installing promtool (Debian package prometheus)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
        || die "could not install promtool (apt-get install prometheus)"
fi

# rsyslogd (Debian packages rsyslog and rsyslog-gnutls): tests/syslog.rs runs its own
# instances (own config, port and files; never the system's, which is not started).
if ! command -v rsyslogd >/dev/null 2>&1 || ! [ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so ]; then
    step "installing rsyslog and rsyslog-gnutls (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rsyslog rsyslog-gnutls >/dev/null \
        || die "could not install rsyslog (apt-get install rsyslog rsyslog-gnutls)"
fi

# openssl (Debian package openssl) makes the RSA and SEC1 client keys of tests/tls.rs.
if ! command -v openssl >/dev/null 2>&1; then
    step "installing openssl (Debian package openssl)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl >/dev/null \
        || die "could not install openssl (apt-get install openssl)"
fi

step "promtool check rules config/alerts.yml; promtool test rules config/alerts.test.yml"
promtool check rules config/alerts.yml || die "config/alerts.yml does not pass promtool check rules"
promtool test rules config/alerts.test.yml || die "the alert unit tests (config/alerts.test.yml) fail"

step "config/grafana-dashboard.json is valid JSON"
if command -v python3 >/dev/null 2>&1; then
    python3 -m json.tool config/grafana-dashboard.json >/dev/null
elif command -v jq >/dev/null 2>&1; then
    jq empty config/grafana-dashboard.json
else
    die "neither python3 nor jq is available to validate config/grafana-dashboard.json"
fi || die "config/grafana-dashboard.json is not valid JSON"

ensure_cargo_tool rustfmt fmt
ensure_cargo_tool clippy clippy

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

# Both ways the crate is built: without the feature (a plain `cargo test`) and with it
# (the Docker-backed test binary exists only then).
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
step "cargo clippy --all-targets --features docker-tests -- -D warnings"
cargo clippy --all-targets --features docker-tests -- -D warnings
step "cargo clippy --all-targets --features docker-tests,real-loki -- -D warnings"
cargo clippy --all-targets --features docker-tests,real-loki -- -D warnings

if [ "$features" = docker-tests,real-loki ]; then
    step "waiting for Loki to be ready"
    wait_loki "$LOKI_URL" "${loki_pids[0]}" loki
    wait_loki "$LOKI_MT_URL" "${loki_pids[1]}" loki-mt
fi

# One cargo run for all three binaries: unit tests, tests/offline.rs, tests/docker.rs;
# every binary runs even when an earlier one failed, so the summary counts them all.
step "cargo test --no-fail-fast --features $features $*"
log=$scratch/cargo-test.log
set +e
cargo test --no-fail-fast --features "$features" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run (cargo prints one per test binary).
summary=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed", p, f }' "$log")
summary="$summary; $loki_note"
echo "$summary"
[ "$status" -eq 0 ] || exit "$status"
grep -q 'Running tests/docker.rs' "$log" || die "the Docker-backed test binary (tests/docker.rs) did not run"
if [ "$features" = docker-tests,real-loki ]; then
    grep -q '^test loki_real::' "$log" || die "the real-Loki tests did not run"
fi

# The short leak soak (scripts/soak.sh): container churn for 2 minutes, FD/thread slopes,
# end state against the baseline, connection reuse, every line exactly once.
step "scripts/soak.sh --minutes 2"
LOG_CAPTURER_BIN="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/log-capturer" \
    scripts/soak.sh --minutes 2 || die "the leak soak failed"
echo "$summary"
