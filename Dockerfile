# offload: one image for every role (serve | api | worker | migrate).
# LibreOffice and the fonts Office documents expect are installed in the runtime image.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin offload

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libreoffice-impress-nogui libreoffice-writer-nogui libreoffice-calc-nogui python3-uno \
      fonts-crosextra-carlito fonts-crosextra-caladea fonts-liberation2 \
      ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/offload offload
COPY --from=build /src/target/release/offload /usr/local/bin/offload
USER offload
WORKDIR /var/lib/offload
# Inside a container the service must listen on all interfaces; set API_KEYS in production.
ENV BIND_ADDR=0.0.0.0:8080 BOARD_ADDR=0.0.0.0:8081
EXPOSE 8080 8081
ENTRYPOINT ["offload"]
CMD ["serve"]
