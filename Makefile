# distributed-counter — see README.md for every target.
SHELL := /bin/bash
GO ?= go
BIN := bin
COUNTERS ?= 3
export CGO_ENABLED := 0

.PHONY: help build test race vet fmt local

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

build: ## build bin/coordinator and bin/counter (static binaries)
	$(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/ ./cmd/coordinator ./cmd/counter

test: ## run every Go test with the race detector (needs no Docker)
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

vet: ## gofmt check and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

local: build ## run a coordinator and COUNTERS counters as local processes (Ctrl-C stops them)
	COUNTERS=$(COUNTERS) scripts/local.sh
