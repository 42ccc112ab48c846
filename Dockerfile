# The orderflow image: one static binary, every subcommand (gateway,
# processor, sim, topics, dlq, orders). Build from the repository root:
#
#   docker build -t orderflow .
#   docker run --rm orderflow help
#
# Multi-platform: docker buildx build --platform linux/amd64,linux/arm64 .
# (the builder cross-compiles; no emulation is needed).
#
# It needs BuildKit (Docker 20.10 or newer; DOCKER_BUILDKIT=1 with a 20.10
# client) for RUN --mount=type=cache and $BUILDPLATFORM, and no frontend
# image: there is deliberately no "# syntax=" line, so the Dockerfile
# frontend built into the engine is used and nothing is pulled for it.
#
# The bases are build arguments, so that a machine without a registry can
# substitute local images (the test infrastructure does: a Go toolchain and
# a nonroot runtime on a debootstrapped Debian):
#   GO_IMAGE       the builder, with Go 1.26+   (default golang:1.26)
#   RUNTIME_IMAGE  the default image's base      (default distroless/static nonroot)
#   DEBUG_IMAGE    the debug target's base, with busybox under /busybox
#   GOPROXY        passed to go mod download    (default the Go default)
ARG GO_IMAGE=golang:1.26
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot
ARG DEBUG_IMAGE=gcr.io/distroless/static-debian12:debug-nonroot

FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
WORKDIR /src
ARG GOPROXY

# Dependencies first, so a code change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags="-s -w" -o /out/orderflow ./cmd/orderflow \
 && mkdir -p /out/data/labels /out/data/sim

# debug: the same binary on distroless's busybox variant, for the compose
# stack, whose health checks need wget (docker build --target debug).
FROM ${DEBUG_IMAGE} AS debug
COPY --from=build /out/orderflow /orderflow
COPY --from=build --chown=65532:65532 /out/data /var/lib/orderflow
WORKDIR /var/lib/orderflow
USER 65532:65532
EXPOSE 8080 9090 8090
ENTRYPOINT ["/orderflow"]
CMD ["help"]

# The default image. distroless/static: CA certificates, tzdata and an
# /etc/passwd with the nonroot user (65532); no shell, no package manager.
# The working directory /var/lib/orderflow is writable by that user: the
# processor's default --label-dir (labels) and the simulator's outbox go
# there; mount a volume on it to keep them.
FROM ${RUNTIME_IMAGE}
COPY --from=build /out/orderflow /orderflow
COPY --from=build --chown=65532:65532 /out/data /var/lib/orderflow
WORKDIR /var/lib/orderflow
USER 65532:65532
# 8080: the gateway's webhooks, /healthz and /readyz · 9090: /metrics (the
# gateway's default; the deployment files give the processor
# --metrics-addr=:9090 too, where it also serves /healthz) · 8090: the
# provider simulator.
EXPOSE 8080 9090 8090
ENTRYPOINT ["/orderflow"]
CMD ["help"]
