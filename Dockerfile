# gatehouse container image: build with the same command .ci/run runs,
# run as an unprivileged user, health-checked by `gatehouse healthcheck`.
#
#   docker build -t gatehouse .
#   docker run -p 8080:8080 -v gatehouse:/var/lib/gatehouse gatehouse

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo.toml names these targets; they must exist for the manifest to load.
COPY benches ./benches
COPY tests ./tests
COPY examples ./examples
RUN cargo build --release --locked --bin gatehouse

FROM debian:bookworm-slim
# CA certificates: for a replica's https primary_url and `gatehouse token`
# against an https issuer.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/gatehouse --create-home gatehouse
COPY --from=build /src/target/release/gatehouse /usr/local/bin/gatehouse
USER gatehouse
WORKDIR /var/lib/gatehouse
# Configuration is by environment (GATEHOUSE_*); see the README.
ENV GATEHOUSE_LISTEN=0.0.0.0:8080 \
    GATEHOUSE_DATA_DIR=/var/lib/gatehouse/data \
    GATEHOUSE_KEYS_DIR=/var/lib/gatehouse/keys \
    RUST_LOG=info
EXPOSE 8080
VOLUME ["/var/lib/gatehouse"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["gatehouse", "healthcheck"]
ENTRYPOINT ["gatehouse"]
CMD ["serve"]
