# distributed-counter — see README.md for every target.
SHELL := /bin/bash
GO ?= go
BIN := bin
COUNTERS ?= 3
export CGO_ENABLED := 0

.PHONY: help build test browser-test race vet fmt local chaos fuzz ensure-token

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

build: ## build bin/coordinator and bin/counter (static binaries)
	$(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/ ./cmd/coordinator ./cmd/counter

test: ## run every Go test with the race detector (needs no Docker)
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

browser-test: ## the status page in headless Chromium against an in-process cluster (needs chromium); screenshots in artifacts/
	REQUIRE_BROWSER=1 CGO_ENABLED=1 $(GO) test -race -count=1 -run 'TestStatusPage_InARealBrowser' -v ./internal/clustertest/

vet: ## gofmt check and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

local: build ensure-token ## run a coordinator and COUNTERS counters as local processes, with .env's settings (Ctrl-C stops them)
	@# .env first, then what the command line or environment sets; the token is never echoed.
	@set -a && . ./.env && set +a && HTTP_PORT=$(D_HTTP_PORT) COUNTERS=$(D_COUNTERS) \
		CLUSTER_TOKEN="$(call setting,CLUSTER_TOKEN,)" scripts/local.sh

FUZZTIME ?= 30s
fuzz: ## run every fuzz target for FUZZTIME each (default 30s); a crasher is saved in the package's testdata/fuzz
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "== $$pkg $$f ($(FUZZTIME))"; \
			CGO_ENABLED=1 $(GO) test $$pkg -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME); \
		done; \
	done

CHAOS_DURATION ?= 5m
chaos: ## run the chaos test with random seeds for CHAOS_DURATION (default 5m); fails on any violation
	CGO_ENABLED=1 $(GO) run -race ./cmd/chaos -duration $(CHAOS_DURATION)

# --- Docker --------------------------------------------------------------------
# Every image is built FROM scratch from the static binaries above, so nothing
# is pulled. Settings the targets below need (HTTP_PORT, DEBUG_PORT, COUNTERS)
# come from the command line or the environment, else .env, else .env.dist,
# like Compose reads them.

.PHONY: images debug-images up dev log down wipe clean simulate crash-test bench docker-check

PROJECT ?= distributed-counter
IMAGE ?= distributed-counter
DLV_VERSION ?= v1.27.2
DEBUG_BIN := $(BIN)/debug
COMPOSE_FILES := -f docker-compose.yml
DEV_COMPOSE_FILES := $(COMPOSE_FILES) -f docker-compose.dev.yml
UP_TIMEOUT ?= 60

# Prefer Compose v2 (`docker compose`), fall back to v1 (`docker-compose`).
ifndef COMPOSE
COMPOSE := $(shell if docker compose version >/dev/null 2>&1; then echo "docker compose"; \
	elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; fi)
endif

# dotenv FILE,VAR: the last value of VAR in FILE, empty when absent.
dotenv = $(shell sed -n 's/^[[:space:]]*$(2)[[:space:]]*=[[:space:]]*//p' $(1) 2>/dev/null | tail -n 1)
# setting VAR,DEFAULT: the command line or environment, else .env, else .env.dist, else DEFAULT.
setting = $(if $(filter command environment,$(firstword $(origin $(1)))),$($(1)),$(or $(call dotenv,.env,$(1)),$(call dotenv,.env.dist,$(1)),$(2)))
D_HTTP_PORT = $(call setting,HTTP_PORT,8080)
D_DEBUG_PORT = $(call setting,DEBUG_PORT,40000)
D_COUNTERS = $(call setting,COUNTERS,3)
COMPOSE_ENV = HTTP_PORT=$(D_HTTP_PORT) DEBUG_PORT=$(D_DEBUG_PORT) COUNTERS=$(D_COUNTERS)

.env: | .env.dist
	cp .env.dist .env
	@chmod 600 .env
	@echo "created .env from .env.dist; edit .env to change the configuration"

# ensure-token writes a random CLUSTER_TOKEN into .env when neither .env nor
# the environment has one; it never prints the token. Every service of the
# cluster reads the same one (Compose substitutes it from .env).
ensure-token: .env
	@if [ -z "$${CLUSTER_TOKEN:-}" ] && ! grep -Eq '^[[:space:]]*CLUSTER_TOKEN[[:space:]]*=[[:space:]]*[^[:space:]]' .env; then \
		sed -i '/^[[:space:]]*CLUSTER_TOKEN[[:space:]]*=/d' .env; \
		printf 'CLUSTER_TOKEN=%s\n' "$$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')" >> .env; \
		chmod 600 .env; \
		echo "wrote a random CLUSTER_TOKEN into .env: the secret of every internal call; keep .env private"; \
	fi

docker-check:
	@test -n "$(COMPOSE)" || { echo "neither 'docker compose' nor 'docker-compose' found: install Docker Compose" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "the Docker engine is not reachable (docker info failed): start dockerd" >&2; exit 1; }

# $(BIN)/data is the empty directory the images copy to /data (DATA_DIR).
$(BIN)/data:
	mkdir -p $@

images: build $(BIN)/data docker-check ## build the coordinator and counter images (FROM scratch)
	docker build --target coordinator -t $(IMAGE)/coordinator:latest .
	docker build --target counter -t $(IMAGE)/counter:latest .

$(DEBUG_BIN)/dlv:
	GOBIN=$(abspath $(DEBUG_BIN)) $(GO) install -trimpath -ldflags "-s -w" github.com/go-delve/delve/cmd/dlv@$(DLV_VERSION)

debug-images: build $(BIN)/data $(DEBUG_BIN)/dlv docker-check ## build the debug image: delve and binaries built with -N -l
	$(GO) build -gcflags "all=-N -l" -o $(DEBUG_BIN)/ ./cmd/coordinator ./cmd/counter
	@# .dockerignore keeps the debug binaries out of every other build: send them as a tar context.
	tar -c Dockerfile $(BIN)/coordinator $(BIN)/counter $(BIN)/data $(DEBUG_BIN)/dlv $(DEBUG_BIN)/coordinator $(DEBUG_BIN)/counter \
		| docker build --target debug -t $(IMAGE)/debug:latest -

# wait-api: poll the coordinator's API until it answers, or fail with the logs.
define wait-api
	@echo "waiting up to $(UP_TIMEOUT)s for http://localhost:$(D_HTTP_PORT) ..."
	@for i in $$(seq 1 $(UP_TIMEOUT)); do \
		if curl -fs -o /dev/null --max-time 2 localhost:$(D_HTTP_PORT)/items/healthcheck/count; then exit 0; fi; \
		sleep 1; \
	done; \
	echo "the API did not answer within $(UP_TIMEOUT)s; last logs:" >&2; \
	$(COMPOSE_ENV) $(COMPOSE) -p $(PROJECT) $(1) logs --no-color --tail=30 >&2; exit 1
endef

up: ensure-token images ## build and start the coordinator and COUNTERS counters; waits until the API answers
	$(COMPOSE_ENV) $(COMPOSE) -p $(PROJECT) $(COMPOSE_FILES) up -d --remove-orphans --scale counter=$(D_COUNTERS)
	$(call wait-api,$(COMPOSE_FILES))
	@echo "distributed-counter is up: coordinator on http://localhost:$(D_HTTP_PORT), $(D_COUNTERS) counters. Try:"
	@echo "  curl -X POST localhost:$(D_HTTP_PORT)/items -d '[{\"id\":\"1\",\"tenant\":\"acme\"},{\"id\":\"2\",\"tenant\":\"acme\"}]'"
	@echo "  curl localhost:$(D_HTTP_PORT)/items/acme/count"
	@echo "  curl localhost:$(D_HTTP_PORT)/counters"
	@echo "Only this public API is published; the internal one needs CLUSTER_TOKEN (in .env)."
	@echo "make log follows the logs; make down stops everything and keeps the data (make wipe deletes it)."

dev: ensure-token debug-images ## like up, but every service runs under delve (coordinator's on DEBUG_PORT)
	$(COMPOSE_ENV) $(COMPOSE) -p $(PROJECT) $(DEV_COMPOSE_FILES) up -d --remove-orphans --scale counter=$(D_COUNTERS)
	$(call wait-api,$(DEV_COMPOSE_FILES))
	@echo "distributed-counter is up under delve: API on http://localhost:$(D_HTTP_PORT)."
	@echo "  coordinator: dlv connect 127.0.0.1:$(D_DEBUG_PORT)"
	@for i in $$(seq 1 $(D_COUNTERS)); do \
		echo "  counter $$i:   dlv connect $$($(COMPOSE_ENV) $(COMPOSE) -p $(PROJECT) $(DEV_COMPOSE_FILES) port --index=$$i counter 40000)"; \
	done
	@echo "(or an IDE's Go remote configuration on those addresses; in dlv, 'quit -c' detaches and leaves the service running)"

log: docker-check ## follow the logs of every container
	$(COMPOSE_ENV) $(COMPOSE) -p $(PROJECT) $(COMPOSE_FILES) logs -f --tail=100

down: docker-check ## stop and remove the containers and network; the data (volumes) stays for the next up
	$(COMPOSE_ENV) $(COMPOSE) -p $(PROJECT) $(DEV_COMPOSE_FILES) down --remove-orphans

wipe: down ## down, then DELETE THE DATA: the coordinator's and the counters' volumes
	$(COMPOSE_ENV) $(COMPOSE) -p $(PROJECT) $(DEV_COMPOSE_FILES) down -v --remove-orphans
	@echo "deleted the volumes of $(PROJECT): every count is gone; the next make up starts empty"

clean: wipe ## wipe (deletes the data), then remove the images and bin/
	docker image rm $(IMAGE)/coordinator:latest $(IMAGE)/counter:latest $(IMAGE)/debug:latest $(IMAGE)/ceiling:latest 2>/dev/null || true
	@# Earlier builds left untagged: every image of this Dockerfile carries the label.
	docker image prune -f --filter label=distributed-counter.image
	rm -rf $(BIN)

simulate: images ## run the failure scenario on a fresh 3-counter cluster and check every step
	$(GO) build -o $(BIN)/ ./cmd/simulate
	$(BIN)/simulate -compose "$(COMPOSE)" -file docker-compose.yml -project dcsim

BENCH_CLIENTS ?= 64
BENCH_DURATION ?= 10s
BENCH_REPEAT ?= 3
bench: up ## measure the cluster of make up against the ceiling a Compose service can reach (BENCH_CLIENTS, BENCH_DURATION, BENCH_REPEAT, BENCH_FLAGS)
	$(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/ ./cmd/bench ./cmd/ceiling
	docker build -f cmd/ceiling/Dockerfile -t $(IMAGE)/ceiling:latest .
	$(BIN)/bench -suite -url http://127.0.0.1:$(D_HTTP_PORT) -ceiling-image $(IMAGE)/ceiling:latest -c $(BENCH_CLIENTS) -d $(BENCH_DURATION) -repeat $(BENCH_REPEAT) $(BENCH_FLAGS)

crash-test: images ## kill every container of a fresh cluster at once (SIGKILL) under writes; check every acknowledged item survives, then down and up
	$(GO) build -o $(BIN)/ ./cmd/simulate
	$(BIN)/simulate -compose "$(COMPOSE)" -file docker-compose.yml -project dccrash -crash
