# syntax=docker/dockerfile:1
# Switchyard: one image for `serve`, `worker` and `migrate`.
#
#   docker build -t switchyard .
#   docker run --rm -p 8700:8700 switchyard                       # embedded SQLite in /var/lib/switchyard
#   docker compose up --build                                      # scaled out: see docker-compose.yml

# --- build -------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
# The workspace's manifests name every member and the e2e test target, so those come too;
# the cache mounts keep the registry and compiled dependencies between builds.
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY bench/sink bench/sink
COPY migrations migrations
COPY tests/e2e tests/e2e
COPY tests/standins tests/standins
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p switchyard \
 && install -m 0755 target/release/switchyard /usr/local/bin/switchyard

# --- run ---------------------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: TLS to the APIs stories call (and amqps/postgres over TLS);
# curl: the health checks of docker-compose.yml.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/switchyard --create-home switchyard \
 && mkdir -p /etc/switchyard/stories /etc/switchyard/packs
COPY --from=build /usr/local/bin/switchyard /usr/local/bin/switchyard
COPY stories /etc/switchyard/stories
COPY packs /etc/switchyard/packs
USER switchyard
WORKDIR /var/lib/switchyard
EXPOSE 8700
ENTRYPOINT ["switchyard"]
CMD ["serve", "--listen", "0.0.0.0:8700", "--stories", "/etc/switchyard/stories", \
     "--packs", "/etc/switchyard/packs", "--data", "/var/lib/switchyard/data"]
