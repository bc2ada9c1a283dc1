# One image, three roles: the App Service startup command (appCommandLine) picks the role.
#   frontend       the BFF (default CMD)
#   backend        the API
#   probe serve    the /diag + /healthz server on its own
# Every role listens on PORT, else WEBSITES_PORT, else 8080, and answers GET /healthz.
# There is no shell in the runtime image, so no HEALTHCHECK: App Service's health check
# (healthCheckPath /healthz) does that job.
#
# Build:  docker build -t lockdown .
# Run:    docker run --rm -p 8080:8080 lockdown backend
#
# The runtime stage takes everything from the stage named `build` under /out and
# /etc/ssl/certs, so it can also be fed prebuilt binaries with
#   podman build --build-context build=DIR --target runtime .
# (see infra/checks/image.sh for the folder layout).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# Static-pie binaries on the gnu target: nothing else is needed at run time, and
# a scratch image carries no libc.
ENV RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_TERM_COLOR=never
# No BuildKit cache mounts: the same file must build with ACR Tasks (az acr build),
# the classic builder and buildah.
RUN cargo build --release --locked --target x86_64-unknown-linux-gnu \
        -p frontend -p backend -p probe \
 && mkdir -p /out/bin /out/data \
 && cp target/x86_64-unknown-linux-gnu/release/frontend \
       target/x86_64-unknown-linux-gnu/release/backend \
       target/x86_64-unknown-linux-gnu/release/probe /out/bin/

FROM scratch AS runtime
# rustls needs a CA bundle to verify the back end, Key Vault and anything else over TLS.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/bin/ /usr/local/bin/
# A writable data folder for the back end's store when run outside App Service;
# on App Service DATA_DIR points at the persisted /home/data instead.
COPY --from=build --chown=10001:10001 /out/data/ /data/
ENV PATH=/usr/local/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    DATA_DIR=/data
USER 10001:10001
EXPOSE 8080
# No ENTRYPOINT on purpose: App Service passes the startup command as the container's
# command, so the command itself must name the binary (`frontend`, `backend`, `probe serve`).
# An ENTRYPOINT would turn the startup command into arguments of one fixed binary.
CMD ["frontend"]
