# feedcast: build with the Rust toolchain, run as a non-root user on a slim Debian.
#   docker build -t feedcast .
#   docker run -p 8080:8080 -v feedcast-data:/var/lib/feedcast/data feedcast serve --demo

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY src src
# A member of the workspace: cargo reads its manifest even to build the service alone.
COPY bench/feedcast-bench bench/feedcast-bench
COPY migrations migrations
COPY assets assets
COPY examples examples
COPY feeds.toml feeds.toml
RUN cargo build --release --locked --bin feedcast

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/feedcast feedcast \
    && mkdir -p /var/lib/feedcast/data /etc/feedcast \
    && chown -R feedcast:feedcast /var/lib/feedcast
COPY --from=build /src/target/release/feedcast /usr/local/bin/feedcast
COPY feeds.toml /etc/feedcast/feeds.toml
ENV FEEDCAST_CONFIG=/etc/feedcast/feeds.toml \
    FEEDCAST_LISTEN=0.0.0.0:8080 \
    FEEDCAST_DATABASE_URL=sqlite:///var/lib/feedcast/data/feedcast.db
USER feedcast
WORKDIR /var/lib/feedcast
VOLUME ["/var/lib/feedcast/data"]
EXPOSE 8080
# Ready means the store answers; `healthcheck` asks /readyz on FEEDCAST_LISTEN.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/feedcast", "healthcheck"]
# feedcast finishes in-flight requests on SIGTERM, as PID 1 too.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/feedcast"]
CMD ["serve"]
