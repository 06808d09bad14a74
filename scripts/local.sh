#!/usr/bin/env bash
# Runs a coordinator and $COUNTERS counters as local processes on loopback
# ports, in the foreground, each log line prefixed by its process.
# Ctrl-C (or SIGTERM) stops them all. Used by `make local`.
set -euo pipefail

counters=${COUNTERS:-3}
port=${HTTP_PORT:-8080}
bin=${BIN:-bin}
export HEALTH_INTERVAL=${HEALTH_INTERVAL:-2s}
export RECOVERY_GRACE=${RECOVERY_GRACE:-1s}
export LOG_LEVEL=${LOG_LEVEL:-info}

pids=()
stop() {
	trap - INT TERM EXIT
	kill -TERM "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap stop INT TERM EXIT

# run NAME CMD...: start CMD with its output prefixed by NAME.
run() {
	local name=$1
	shift
	"$@" > >(sed -u "s/^/[$name] /") 2>&1 &
	pids+=($!)
}

HTTP_PORT=$port run coordinator "$bin/coordinator"
for i in $(seq 1 "$counters"); do
	p=$((port + i))
	HTTP_PORT=$p COORDINATOR_URL=http://127.0.0.1:$port ADVERTISE_URL=http://127.0.0.1:$p \
		run "counter-$i" "$bin/counter"
done

echo "[local] coordinator on http://127.0.0.1:$port, $counters counters on ports $((port + 1))-$((port + counters)); Ctrl-C stops all" >&2
wait
