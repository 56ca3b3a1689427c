# syntax=docker/dockerfile:1
#
# The cert-manager CSI driver image: one statically linked binary on a distroless base (no shell,
# no package manager, no libc needed).
#
#   docker build -t REGISTRY/cert-manager-csi-driver:TAG .
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/cert-manager-csi-driver:TAG --push .
#
# Multi-arch: the builder stage runs once per target platform (emulated by buildx where it is not
# the build machine's), so every build is a native one and needs no cross toolchain. The build
# itself is deploy/build-static-binary.sh, which CI runs and checks without Docker.
#
# Build arguments (none secret): RUST_VERSION, DEBIAN_RELEASE; TARGETARCH comes from buildx.

ARG RUST_VERSION=1.95
# Debian of the builder. glibc >= 2.34 carries its DNS resolver inside libc, so a static binary
# resolves names without NSS modules.
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
ARG TARGETARCH
WORKDIR /src
COPY . .
# The registry cache only holds downloaded crate sources, the same for every platform.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    TARGETARCH="${TARGETARCH}" deploy/build-static-binary.sh --out /out

FROM gcr.io/distroless/static-debian12
LABEL org.opencontainers.image.title="cert-manager-csi-driver" \
      org.opencontainers.image.description="cert-manager CSI driver: per-pod TLS certificates as CSI ephemeral inline volumes" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/cert-manager-csi-driver /cert-manager-csi-driver
# Root: the driver mounts a tmpfs per volume (the DaemonSet runs it privileged).
USER 0:0
ENTRYPOINT ["/cert-manager-csi-driver"]
