# mxping container image.
#   docker build -t mxping .
#   docker run -p 8080:8080 mxping                                   # the built-in server list
#   docker run -p 8080:8080 -v "$PWD/servers.toml:/etc/mxping/servers.toml:ro" mxping
# The final image has no shell and no package manager; the health check is the binary itself.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY templates ./templates
COPY static ./static
COPY servers.toml ./
RUN cargo build --release --locked

# distroless/cc: glibc and libgcc only (TLS roots are compiled in), running as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/mxping /usr/local/bin/mxping
COPY servers.toml /etc/mxping/servers.toml
USER nonroot:nonroot
EXPOSE 8080
VOLUME ["/etc/mxping"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/mxping", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["/usr/local/bin/mxping"]
CMD ["serve", "--config", "/etc/mxping/servers.toml", "--listen", "0.0.0.0:8080"]
