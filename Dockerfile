# mxping container image.
#   docker build -t mxping .
#   docker run -p 8080:8080 -v mxping-data:/var/lib/mxping mxping            # the built-in list
#   docker run -p 8080:8080 -v mxping-data:/var/lib/mxping \
#       -v "$PWD/servers.toml:/etc/mxping/servers.toml:ro" mxping           # your list
# The final image has no shell and no package manager; the health check is the binary itself.
# History lives in /var/lib/mxping, a volume owned by the image's user, so the config can be
# mounted read-only. scripts/container-check (run by .ci/run) builds from exactly what the
# COPY lines copy and runs the image's command as its user, without a container engine.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs servers.toml ./
COPY src ./src
COPY templates ./templates
COPY static ./static
COPY locales ./locales
# A workspace member: cargo reads its manifest even when building mxping alone.
COPY bench/harness ./bench/harness
RUN cargo build --release --locked
# An empty directory for the history volume (the final image has no shell to make one).
WORKDIR /state/mxping

# distroless/cc: glibc and libgcc only (TLS roots are compiled in), running as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/mxping /usr/local/bin/mxping
COPY servers.toml /etc/mxping/servers.toml
COPY --from=build --chown=65532:65532 /state/mxping /var/lib/mxping
USER 65532:65532
# One malloc arena: glibc's default per-thread arenas each keep their own freed memory (at
# 10,000 servers, 275 MiB RSS by default, about 200 MiB with one; src/main.rs). `serve`
# would set it for itself by restarting once; set here, the image starts it directly.
ENV MALLOC_ARENA_MAX=1
EXPOSE 8080
VOLUME ["/var/lib/mxping"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/mxping", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/mxping"]
CMD ["serve", "--config", "/etc/mxping/servers.toml", "--listen", "0.0.0.0:8080", "--data-dir", "/var/lib/mxping"]
