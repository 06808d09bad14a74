# Images of distributed-counter. Every stage is FROM scratch, so nothing is
# pulled from a registry: the static binaries are built on the host by make
# (CGO_ENABLED=0, -trimpath, stripped) and copied in. Build with make:
#
#   make images   # --target coordinator and --target counter, from bin/
#   make dev      # --target debug, from bin/debug/ (delve + unoptimised binaries)
#
# (make bench's yardstick has a Dockerfile of its own, cmd/ceiling/Dockerfile:
# the classic builder builds every stage before the target, and a stage here
# needing bin/ceiling broke `make dev` wherever make bench had not run.)
#
# The binaries check their own health (`<binary> healthcheck` asks
# 127.0.0.1:$HTTP_PORT/health, a counter with its CLUSTER_TOKEN): a scratch
# image has no shell and no curl.

FROM scratch AS coordinator
LABEL distributed-counter.image="coordinator"
COPY bin/coordinator /coordinator
# /data holds the coordinator's state file (DATA_DIR), writable by the
# service's user. bin/data is an empty directory make creates: a scratch
# image has no mkdir.
COPY --chown=65532:65532 bin/data /data
USER 65532:65532
# 8080: the public API; 8081: the internal API, for counters only.
EXPOSE 8080 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/coordinator", "healthcheck"]
ENTRYPOINT ["/coordinator"]

FROM scratch AS counter
LABEL distributed-counter.image="counter"
COPY bin/counter /counter
# /data holds the counters' slot directories (DATA_DIR); a new named volume
# mounted there starts as a copy of it, owned by the service's user.
COPY --chown=65532:65532 bin/data /data
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/counter", "healthcheck"]
ENTRYPOINT ["/counter"]

# debug holds delve and both binaries built with -gcflags "all=-N -l"; the
# compose override docker-compose.dev.yml runs each service under
# `dlv exec --headless` and publishes the debugger. Kept last: the classic
# builder builds every stage before the target, and bin/debug/ exists only
# after `make dev`.
FROM scratch AS debug
LABEL distributed-counter.image="debug"
COPY bin/debug/dlv bin/debug/coordinator bin/debug/counter /
COPY --chown=65532:65532 bin/data /data
USER 65532:65532
EXPOSE 8080 40000
ENTRYPOINT ["/dlv"]
