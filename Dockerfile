# syntax=docker/dockerfile:1
# The tidegate container image: `tidegate serve` as a static binary on `scratch`, run as
# user 65532, listening on 0.0.0.0:8080 (HTTP) and, with an [envoy] section, 0.0.0.0:8081
# (Envoy's gRPC rate limit service).
#
#   docker build -t tidegate .      # or: podman build --format docker -t tidegate .
#   docker run --rm -p 8080:8080 tidegate
#
# docs/DEPLOYMENT.md describes the image; compose.yaml runs a cluster of three.

ARG RUST_VERSION=1.95

# Stage `build`: the static binary at /out/tidegate, an empty /out/data, and the root
# certificates of /etc/ssl/certs/ca-certificates.crt. The tests supply this stage from
# a directory of the same layout (`podman build --build-context build=DIR`), so the
# runtime stage below is the one they check.
FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(rustc -vV | sed -n 's/^host: //p')" \
    && RUSTFLAGS='-C target-feature=+crt-static' \
       cargo build --release --locked -p tidegate-cli --target "$target" \
    && mkdir -p /out \
    && cp "target/$target/release/tidegate" /out/tidegate \
    && if readelf -d /out/tidegate | grep -q NEEDED; then echo "/out/tidegate links shared libraries" >&2; exit 1; fi \
    && mkdir -p /out/data

# The runtime stage: nothing but the binary, its user and its defaults.
FROM scratch AS runtime
COPY deploy/container/passwd /etc/passwd
COPY deploy/container/group /etc/group
COPY --from=build /out/tidegate /usr/local/bin/tidegate
# Root certificates, for rediss:// and https:// webhooks signed by a public CA (a private
# CA: mount it and set store.tls_ca_file or the sink's ca_file).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# The working directory, writable by the user: relative paths of the configuration (a
# JSON-lines sink, a log file) land here; mount a volume on it to keep them.
COPY --from=build --chown=65532:65532 /out/data /data
# Listen on every interface (the configuration's default, 127.0.0.1, is unreachable from
# outside a container). An explicit `listen` in a mounted config file is overridden by
# this variable too: change the port here (`-e TIDEGATE_LISTEN=0.0.0.0:9000`).
ENV TIDEGATE_LISTEN=0.0.0.0:8080
USER 65532:65532
WORKDIR /data
EXPOSE 8080 8081
# `tidegate probe /healthz` GETs /healthz at TIDEGATE_LISTEN's port on loopback.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/tidegate", "probe", "--timeout", "2s", "/healthz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/tidegate"]
CMD ["serve"]
