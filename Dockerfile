# syntax=docker/dockerfile:1
# The two images of Veche, from one build:
#   veche           every service by subcommand (`veche serve users`, ..., `veche up`)
#   veche-operator  the Kubernetes operator
#
#   docker build --target veche -t REGISTRY/veche:VERSION \
#     --build-arg VECHE_GIT_COMMIT=$(git rev-parse --short=12 HEAD) .
#   docker build --target veche-operator -t REGISTRY/veche-operator:VERSION ... .
#
# With no Docker daemon at hand, scripts/images builds the same two images (the same
# binaries, files, user, entrypoint and labels; e2e/tests/images.rs checks they agree
# with this file) from Debian's umoci.
#
# The binaries are static (musl): the final stages are `scratch` with the binary, the
# CA bundle for outbound TLS and an empty data directory owned by the service user. No
# shell, no package manager; they run as 65532 with a read-only root filesystem, as the
# operator renders them (restricted Pod Security Standard).

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
ARG VECHE_GIT_COMMIT=unknown
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    VECHE_GIT_COMMIT=${VECHE_GIT_COMMIT} \
    cargo build --release --locked --target x86_64-unknown-linux-musl -p veche -p veche-operator \
 && mkdir -p /out/bin /out/data \
 && cp target/x86_64-unknown-linux-musl/release/veche target/x86_64-unknown-linux-musl/release/veche-operator /out/bin/

FROM scratch AS veche
ARG VERSION=0.1.0
ARG VECHE_GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="veche" \
      org.opencontainers.image.description="Veche: the backend of an events platform (every service by subcommand)" \
      org.opencontainers.image.source="https://github.com/veche-dev/veche" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VECHE_GIT_COMMIT}"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build --chown=65532:65532 /out/data /var/lib/veche
COPY --from=build /out/bin/veche /usr/local/bin/veche
ENV VECHE_LISTEN=0.0.0.0:8080 VECHE_DATA_DIR=/var/lib/veche VECHE_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/veche"]
CMD ["up"]

FROM scratch AS veche-operator
ARG VERSION=0.1.0
ARG VECHE_GIT_COMMIT=unknown
LABEL org.opencontainers.image.title="veche-operator" \
      org.opencontainers.image.description="The Kubernetes operator of Veche: Platform and ServiceDeployment, reconciled into a running backend" \
      org.opencontainers.image.source="https://github.com/veche-dev/veche" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VECHE_GIT_COMMIT}"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/bin/veche-operator /usr/local/bin/veche-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/veche-operator"]
CMD ["run"]
