# syntax=docker/dockerfile:1
# check=error=true;experimental=all
#
# Storage Element container image: FROM scratch, nothing but
#   /se                                  static binary (CGO_ENABLED=0, -trimpath, version stamped)
#   /etc/ssl/certs/ca-certificates.crt   CA bundle (JWKS and peer TLS verification)
#   /etc/passwd, /etc/group              one entry, "se", uid/gid 10001 (USER below is numeric)
#   /data, /wal                          empty, owned by 10001, declared as volumes
#
# Build:  docker build --build-arg VERSION=$(git describe --tags --always) -t storage-element .
#
# Invariant relied on by tools/ci/check-docker.sh: every file of the image is produced under
# ${OUT} by the plain shell RUN steps of the "build" stage, and the final stage only copies
# ${OUT}/rootfs (root-owned) and ${OUT}/state (owned by 10001). The check replays those RUN
# steps against the same .dockerignore-filtered context into an empty directory and chroots
# into the result, so there is no hidden dependency on a base image.

# GO_VERSION selects the golang build image; keep it at the go directive of go.mod.
ARG GO_VERSION=1.26
# OUT is where the build stage assembles the image's files (rootfs/ and state/).
ARG OUT=/out

# build compiles the static binary and lays out every file of the final image under ${OUT}.
FROM golang:${GO_VERSION}-bookworm AS build
ARG OUT
ARG VERSION=dev
WORKDIR /src
# Module download first so source edits do not invalidate the dependency layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o "${OUT}/rootfs/se" .
RUN mkdir -p "${OUT}/rootfs/etc/ssl/certs" \
 && mkdir -p -m 0750 "${OUT}/state/data" "${OUT}/state/wal" \
 && cp /etc/ssl/certs/ca-certificates.crt "${OUT}/rootfs/etc/ssl/certs/ca-certificates.crt" \
 && printf 'se:x:10001:10001:storage element:/nonexistent:/sbin/nologin\n' > "${OUT}/rootfs/etc/passwd" \
 && printf 'se:x:10001:\n' > "${OUT}/rootfs/etc/group"

FROM scratch
ARG OUT
ARG VERSION=dev
LABEL org.opencontainers.image.title="storage-element" \
      org.opencontainers.image.description="Artstore Storage Element" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build ${OUT}/rootfs/ /
COPY --from=build --chown=10001:10001 ${OUT}/state/ /
USER 10001:10001
ENV SE_PORT=8010 \
    SE_DATA_DIR=/data \
    SE_WAL_DIR=/wal
EXPOSE 8010
VOLUME ["/data", "/wal"]
# No shell or wget in scratch: the binary probes its own /health/live.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["/se", "healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/se"]
CMD ["serve"]
