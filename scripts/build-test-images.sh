#!/usr/bin/env bash
# Build the Docker images the integration tests use, without any registry:
#   log-capturer-test/busybox:latest  FROM scratch + static busybox (sh, echo,
#                                     printf, seq, sleep, head, yes, cat, ...)
# The build is skipped when the image exists and its content-hash label
# (sha256 of the Dockerfile + busybox binary) matches. Either way the image is
# smoke-tested with a real container (docker run --network none).
#
# Needs a running engine: run scripts/docker-up.sh first.
# Environment:
#   LOG_CAPTURER_TEST_IMAGE  image name (default log-capturer-test/busybox:latest)
#   BUSYBOX                  static busybox to copy (default: command -v busybox)
#   FORCE_REBUILD=1          build even if the label matches
set -euo pipefail

cd "$(dirname "$0")/.."

IMAGE="${LOG_CAPTURER_TEST_IMAGE:-log-capturer-test/busybox:latest}"
DOCKERFILE=tests/images/busybox/Dockerfile
LABEL_KEY=org.log-capturer.test-image.content-sha256
APPLETS=(sh echo printf seq sleep head yes cat wget timeout)

say() { printf 'build-test-images: %s\n' "$*" >&2; }
die() { printf 'build-test-images: ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

command -v docker >/dev/null 2>&1 || die "no docker CLI on PATH (run scripts/docker-up.sh)"
[ -f "$DOCKERFILE" ] || die "$DOCKERFILE not found"

# Locate a statically linked busybox: Debian's busybox-static installs /bin/busybox,
# which on merged-/usr systems is also /usr/bin/busybox.
bb=""
for cand in "${BUSYBOX:-}" "$(command -v busybox 2>/dev/null || true)" /bin/busybox /usr/bin/busybox; do
    [ -n "$cand" ] || continue
    if is_static "$cand"; then bb="$(readlink -f "$cand")"; break; fi
done
[ -n "$bb" ] || die "no statically linked busybox found (install busybox-static, or run scripts/docker-up.sh); a dynamically linked one cannot run FROM scratch"

docker version >/dev/null 2>&1 \
    || die "the Docker Engine does not answer (run scripts/docker-up.sh): $(docker version 2>&1 | tail -n 3)"

hash="$(cat "$DOCKERFILE" "$bb" | sha256sum | cut -d' ' -f1)"
current="$(docker image inspect --format "{{ index .Config.Labels \"$LABEL_KEY\" }}" "$IMAGE" 2>/dev/null || true)"

if [ "$current" = "$hash" ] && [ "${FORCE_REBUILD:-0}" != 1 ]; then
    say "$IMAGE is up to date (${hash:0:12})"
else
    ctx="$(mktemp -d "${TMPDIR:-/tmp}/log-capturer-image.XXXXXX")"
    trap 'rm -rf "$ctx"' EXIT
    cp "$DOCKERFILE" "$ctx/Dockerfile"
    cp "$bb" "$ctx/busybox"
    chmod 0755 "$ctx/busybox"
    say "building $IMAGE from $DOCKERFILE with $bb (${hash:0:12})"
    DOCKER_BUILDKIT=0 docker build --network none --label "$LABEL_KEY=$hash" -t "$IMAGE" "$ctx" >&2 \
        || die "docker build of $IMAGE failed"
    # Drop the untagged image a rebuild leaves behind; ignore failures.
    docker image prune -f --filter "label=$LABEL_KEY" >/dev/null 2>&1 || true
fi

# Smoke test: stdout and stderr both come back, and the applets the tests use exist.
errf="$(mktemp)"
out="$(docker run --rm --network none "$IMAGE" sh -c 'echo hi; echo err >&2' 2>"$errf")" || {
    cat "$errf" >&2; rm -f "$errf"; die "docker run of $IMAGE failed"
}
err="$(cat "$errf")"; rm -f "$errf"
[ "$out" = "hi" ] || die "expected stdout 'hi' from $IMAGE, got: '$out'"
[ "$err" = "err" ] || die "expected stderr 'err' from $IMAGE, got: '$err'"
docker run --rm --network none "$IMAGE" sh -c \
    'for a in "$@"; do [ -x "/bin/$a" ] || { echo "missing /bin/$a" >&2; exit 1; }; done' \
    sh "${APPLETS[@]}" || die "$IMAGE lacks one of: ${APPLETS[*]}"
echo "build-test-images: $IMAGE ok (stdout+stderr verified; applets: ${APPLETS[*]})"
