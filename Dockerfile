# Conventional multi-stage build of the single `pds` binary.
# NOTE: this Dockerfile is not built or run by CI: the project's machines have no Docker engine.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p pds && strip target/release/pds

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /pds --shell /usr/sbin/nologin pds \
    && mkdir -p /pds && chown pds:pds /pds
COPY --from=build /src/target/release/pds /usr/local/bin/pds
USER pds
WORKDIR /pds
ENV PDS_DATA_DIRECTORY=/pds
VOLUME ["/pds"]
EXPOSE 2583
ENTRYPOINT ["/usr/local/bin/pds"]
CMD ["serve"]
