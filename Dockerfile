# log-capturer container image: one statically linked binary FROM scratch, run as the
# numeric non-root user 65534:65534 (nobody:nogroup).
#
#   docker build -t log-capturer:local .   # needs a registry for rust:1-bookworm
#   scripts/build-image.sh                 # no registry: builds the binary on the host,
#                                          # then the final stage below, alone
#
# Run it (docs/DEPLOY.md): the user must be in the socket's group to read it, and the
# endpoints listen on 0.0.0.0:8401 inside the container (config/container.toml).
#
#   docker run -d --name log-capturer --restart unless-stopped --stop-timeout 30 \
#     --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v /var/run/docker.sock:/var/run/docker.sock:ro \
#     -v log-capturer-data:/var/lib/log-capturer \
#     -p 127.0.0.1:8401:8401 \
#     --uts host --read-only --cap-drop ALL --security-opt no-new-privileges:true \
#     log-capturer:local
#
# (--uts host: records carry the host's name rather than the container's ID.)
# The binary handles SIGTERM as PID 1 (graceful stop, exit 0) and never follows its own
# container. x86_64 only as written: for arm64 use --target aarch64-unknown-linux-gnu.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# glibc links statically. GNU ld's warning that getaddrinfo "requires at runtime the
# shared libraries" does not apply here: glibc >= 2.34 has the "files" and "dns" NSS
# resolvers built in, so sink host names resolve from /etc/hosts and Docker's DNS with no
# .so in the image. TLS roots are compiled in (webpki-roots), so no /etc/ssl either.
# Debug info is stripped, symbols kept (readable panics, 8 MB instead of 47 MB).
RUN RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --target x86_64-unknown-linux-gnu \
 && mkdir -p /out/data \
 && strip --strip-debug -o /out/log-capturer target/x86_64-unknown-linux-gnu/release/log-capturer \
 && /out/log-capturer --version

# ---- final stage ----
# scripts/build-image.sh builds the image from this marker to the end of the file, with
# the "--from=build " removed, from a context holding /out/log-capturer (built on the host
# with the same command as above), an empty /out/data and config/container.toml.
FROM scratch
LABEL org.opencontainers.image.title="log-capturer" \
      org.opencontainers.image.description="Follows every Docker container's logs and ships them to file, stdout, Loki and Elasticsearch sinks" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
COPY --from=build /out/log-capturer /log-capturer
COPY config/container.toml /etc/log-capturer/log-capturer.toml
# Positions and the file sink. FROM scratch has no shell to mkdir: copy an empty
# directory, owned by the runtime user so it can write there.
COPY --from=build --chown=65534:65534 /out/data/ /var/lib/log-capturer/
VOLUME ["/var/lib/log-capturer"]
USER 65534:65534
EXPOSE 8401
ENTRYPOINT ["/log-capturer", "--config", "/etc/log-capturer/log-capturer.toml"]
