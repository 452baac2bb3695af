# syntax=docker/dockerfile:1
# One image for every RNS service: rns-gateway, rns-dispatcher, rns-carriers,
# rns-analytics and rns-carrier-simulator. Choose the service with the command, e.g.
#   docker build -t rns:latest .
#   docker run --rm -e RNS_NATS__URL=nats://nats-1:4222 rns:latest rns-dispatcher
# Configuration comes from RNS_* environment variables (see rns.toml); the image
# carries rns.toml's defaults as /etc/rns/rns.toml.

# --- the web console (console/, embedded in rns-gateway) ----------------------
FROM node:20-bookworm AS console
WORKDIR /console
COPY console/package.json console/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY console/ ./
RUN npm run build

# --- build -------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
COPY --from=console /console/dist console/dist
# Cache mounts keep the registry and build directory between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
      --bin rns-gateway --bin rns-dispatcher --bin rns-carriers --bin rns-analytics \
      --bin rns-carrier-simulator \
 && mkdir -p /out \
 && cp target/release/rns-gateway target/release/rns-dispatcher target/release/rns-carriers \
       target/release/rns-analytics target/release/rns-carrier-simulator /out/

# --- run ---------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin rns
COPY --from=build /out/ /usr/local/bin/
COPY rns.toml /etc/rns/rns.toml
ENV RNS_CONFIG=/etc/rns/rns.toml \
    RNS_LOG__FORMAT=json
USER 10001:10001
# gateway API and health; dispatcher, carriers and analytics health and metrics
EXPOSE 8080 8081 8082 8083
CMD ["rns-gateway"]
