# syntax=docker/dockerfile:1.7
#
# ltv-tagger container image.
#
#   docker build -t ltv-tagger:0.1.0 --build-arg VERSION=0.1.0 .
#   docker run -d --name ltv-tagger -p 127.0.0.1:8080:8080 --read-only --tmpfs /tmp --stop-timeout 30 \
#     -e LTV_TAGGER__ORDERS__URL_FILE=/run/secrets/orders_url \
#     -e LTV_TAGGER__ZENDESK__SUBDOMAIN=acme -e LTV_TAGGER__ZENDESK__EMAIL=agent@acme.com \
#     -e LTV_TAGGER__ZENDESK__API_TOKEN_FILE=/run/secrets/zendesk_api_token \
#     -e LTV_TAGGER__ZENDESK__WEBHOOK_SECRET_FILE=/run/secrets/zendesk_webhook_secret \
#     -v "$PWD/secrets:/run/secrets:ro" -v ltv-tagger-data:/data ltv-tagger:0.1.0
#
# ./secrets holds one file per secret: orders_url (the order DB URL, password included),
# zendesk_api_token, zendesk_webhook_secret; readable by uid 65532.
# --stop-timeout 30: Docker's default (10 s) is shorter than server.drain_delay + server.shutdown_grace
# (0 s + 20 s by default).
#
# The image starts with environment variables alone: the defaults are compiled into the binary and
# the default command is plain `serve`. To use a config file, mount it and pass it explicitly, e.g.
#   -v ./ltv-tagger.toml:/etc/ltv-tagger/config.toml:ro ltv-tagger:0.1.0 serve --config /etc/ltv-tagger/config.toml
# /etc/ltv-tagger/default.toml in the image is the documented reference of every key (not read at run time).
#
# State: the built-in default `state.url = "sqlite://data/ltv-tagger.db"` is relative to the working
# directory, which is `/`, so the SQLite file lands in the /data volume (owned by the runtime user).
# We deliberately do NOT set LTV_TAGGER__STATE__URL here: environment variables beat the --config file,
# so an image-level value would silently override a `state.url` written in a mounted config file.
# For several replicas use PostgreSQL: a file holding postgres://… named by LTV_TAGGER__STATE__URL_FILE
# (database URLs carry passwords: keep them out of the environment, like the other secrets).

ARG RUST_VERSION=1

############################ builder ############################
FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /build

# rust:*-slim already has gcc and libc6-dev (SQLite is compiled from the bundled source);
# TLS is rustls, so no OpenSSL headers are needed.
ENV CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0 \
    SQLX_OFFLINE=true

# Dependency caching: the crate registry, git checkouts and target/ live in BuildKit cache mounts, so a
# rebuild after a source change downloads nothing and recompiles only this crate (no dummy-src trick,
# which breaks whenever a new target is added to Cargo.toml).
#
# Everything the build reads: sources, embedded migrations and the compiled-in default config, and
# the manifests of the workspace (cargo loads the dev-only member tests/fake-helpdesk to resolve
# Cargo.lock, but `--bin ltv-tagger` never compiles it).
# (.dockerignore keeps target/, .git, deploy/ and local databases out of the context.)
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/build/target,sharing=locked \
    cargo build --release --locked --bin ltv-tagger \
 && install -D -m 0755 target/release/ltv-tagger /out/usr/local/bin/ltv-tagger \
 && install -D -m 0644 config/default.toml /out/etc/ltv-tagger/default.toml \
 && mkdir -p /out/data

############################ runtime ############################
# distroless/cc: glibc, libgcc, CA certificates, tzdata, /etc/passwd with nonroot = 65532; no shell.
FROM gcr.io/distroless/cc-debian12:nonroot

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="ltv-tagger" \
      org.opencontainers.image.description="Tags Zendesk and Gorgias tickets with VIP and dispute tags from the shop's own order database" \
      org.opencontainers.image.source="https://github.com/ltv-tagger/ltv-tagger" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}"

COPY --from=builder /out/usr/local/bin/ltv-tagger /usr/local/bin/ltv-tagger
COPY --from=builder /out/etc/ltv-tagger/default.toml /etc/ltv-tagger/default.toml
# distroless has no shell to mkdir/chown: the empty directory comes from the builder, owned by 65532.
COPY --from=builder --chown=65532:65532 /out/data /data

# log_format "auto" (the default) already means JSON when stdout is not a terminal.
WORKDIR /
USER 65532:65532
VOLUME ["/data"]
EXPOSE 8080

# `ltv-tagger healthcheck` GETs /livez on the configured server.bind port (2 s timeout) and exits 0 on 2xx, else 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/usr/local/bin/ltv-tagger", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/ltv-tagger"]
CMD ["serve"]
