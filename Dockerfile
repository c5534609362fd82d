# Build the manager (the default target) and the node agent (--target agent) images.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# Module downloads get their own layer, so source changes do not download again.
COPY go.mod go.mod
COPY go.sum go.sum
RUN go mod download

COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY dataplane/ dataplane/
COPY internal/ internal/

# Each binary builds in its own stage, so that BuildKit builds only the one the target
# needs. GOARCH is left to the builder's platform unless buildx passes TARGETARCH, so the
# binary matches the image's platform.
FROM builder AS build-manager
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -a -o manager ./cmd/manager

FROM builder AS build-agent
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -a -o agent ./cmd/agent

# The agent programs the node with iptables-restore (--mode=iptables) or nft
# (--mode=nftables), so its image needs a distribution's iptables (Debian's defaults to
# the nf_tables backend, as current nodes do) and nftables; it clears
# stale UDP flows over netlink and needs no conntrack CLI. It runs as
# root with NET_ADMIN and NET_RAW (config/agent).
FROM debian:trixie-slim AS agent
RUN apt-get update \
	&& apt-get install -y --no-install-recommends iptables nftables \
	&& rm -rf /var/lib/apt/lists/*
COPY --from=build-agent /workspace/agent /agent
ENTRYPOINT ["/agent"]

FROM builder AS build-dns
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -a -o dns ./cmd/dns

# The DNS server (--target dns, config/dns): non-root, listening on 5353.
FROM gcr.io/distroless/static:nonroot AS dns
COPY --from=build-dns /workspace/dns /dns
USER 65532:65532
ENTRYPOINT ["/dns"]

# The manager, the default target. distroless/static has no shell or package manager;
# nonroot runs as UID 65532.
FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=build-manager /workspace/manager .
USER 65532:65532

ENTRYPOINT ["/manager"]
