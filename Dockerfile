# syntax=docker/dockerfile:1
#
# The orderflow image: one static binary, every subcommand (gateway,
# processor, sim, topics, dlq, orders). Build from the repository root:
#
#   docker build -t orderflow .
#   docker run --rm orderflow help
#
# Multi-platform: docker buildx build --platform linux/amd64,linux/arm64 .
# (the builder cross-compiles; no emulation is needed).

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src

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
FROM gcr.io/distroless/static-debian12:debug-nonroot AS debug
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
FROM gcr.io/distroless/static-debian12:nonroot
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
