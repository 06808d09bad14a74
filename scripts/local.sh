#!/usr/bin/env bash
# Runs a coordinator and $COUNTERS counters as local processes on loopback
# ports, in the foreground, each log line prefixed by its process: the
# coordinator's public API on $HTTP_PORT, its internal API on HTTP_PORT+1,
# counters from HTTP_PORT+2. Every process gets the environment (make local
# loads .env into it) with its own ports and URLs; HEALTH_INTERVAL and
# RECOVERY_GRACE default to 2s and 1s here when nothing sets them. The data
# stays in $LOCAL_DATA (default data/local) from one run to the next.
# Ctrl-C (or SIGTERM) stops them all.
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

if [ -z "${CLUSTER_TOKEN:-}" ] && [ "${CLUSTER_INSECURE:-false}" != true ]; then
	echo "[local] CLUSTER_TOKEN is not set: run it through make local, which writes one into .env" >&2
	exit 2
fi
export CLUSTER_TOKEN
internal=$((port + 1))

# Every counter claims its own slot under one directory (DATA_DIR/counter-<k>,
# locked while it runs); the coordinator's state file sits beside them.
data=${LOCAL_DATA:-data/local}
mkdir -p "$data/coordinator"
HTTP_PORT=$port INTERNAL_PORT=$internal DATA_DIR="$data/coordinator" run coordinator "$bin/coordinator"
for i in $(seq 1 "$counters"); do
	p=$((internal + i))
	HTTP_PORT=$p COORDINATOR_URL=http://127.0.0.1:$internal ADVERTISE_URL=http://127.0.0.1:$p DATA_DIR="$data" \
		run "counter-$i" "$bin/counter"
done

echo "[local] coordinator on http://127.0.0.1:$port (internal API on $internal), $counters counters on ports $((internal + 1))-$((internal + counters)); Ctrl-C stops all" >&2
wait
