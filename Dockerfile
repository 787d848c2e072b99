# offload: one image for every role (serve | api | worker | migrate).
# LibreOffice, the fonts Office documents expect and bubblewrap are installed in the runtime
# image. Every conversion runs in a bubblewrap sandbox, which needs user namespaces inside the
# container. Docker's default seccomp profile refuses them, so run workers with
#   docker run --security-opt seccomp=unconfined ...            (or a profile that allows
#   clone/unshare with CLONE_NEWUSER, as Chromium-in-Docker setups ship)
# and, on hosts whose AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+),
#   --security-opt apparmor=unconfined   (or an AppArmor profile allowing userns for bwrap).
# Without them /readyz reports the sandbox missing and exports fail with converter_unavailable
# (CONVERT_SANDBOX=off converts unsandboxed; do not, with documents from strangers).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin offload

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libreoffice-impress libreoffice-writer libreoffice-calc python3-uno bubblewrap poppler-utils mupdf-tools webp \
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
