#!/usr/bin/env bash
# pgbench through sluice vs direct, same run, same network path (PostgreSQL in a network
# namespace behind a veth pair; the direct client and sluice both cross it).
# Bounded: DURATION seconds per run (default 10), loopback and the private namespace only.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-netns.sh
source scripts/lib-pg.sh
BIN=${BIN:-target/release}
DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-"1 8"}
MODES=${MODES:-"simple prepared"}
WORK=$(mktemp -d /tmp/sluice-bench-pg.XXXXXX); chmod 755 "$WORK"
NS=slbenchpg
DB=169.254.202.2
CG_ROOT=$(cgroup2_root)
CG="$CG_ROOT/sluice-benchpg-$$"
cleanup() {
  [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
  rmdir "$CG" 2>/dev/null || true
  pg_down "$WORK/pg"
  netns_down "$NS"
  rm -rf "$WORK"
}
trap cleanup EXIT

netns_up "$NS" 202
pg_up "$WORK/pg" "$NS" "$DB"
pg_sql "$WORK/pg" "CREATE ROLE bench LOGIN PASSWORD 'bench-secret'"
pg_sql "$WORK/pg" "ALTER DATABASE postgres OWNER TO bench"
runuser -u postgres -- pgbench -i -q -s 10 -h "$WORK/pg" postgres >/dev/null 2>&1
pg_sql "$WORK/pg" "GRANT ALL ON ALL TABLES IN SCHEMA public TO bench"
mkdir "$CG"
cat > "$WORK/policy.yaml" <<YAML
listen: 127.0.0.1:0
state_dir: $WORK/state
data_dir: $WORK/data
targets:
  - { name: benchpg-$$, cgroup: ${CG#$CG_ROOT/}, egress: allow }
resources:
  - name: db
    protocol: postgres
    match: [{ address: $DB, port: 5432 }]
    credentials: { mode: inject, user: bench, password: { value: bench-secret } }
YAML
RUST_LOG=warn "$BIN/sluice" run --config "$WORK/policy.yaml" 2> "$WORK/gw.log" &
GW_PID=$!
for _ in $(seq 100); do [ -f "$WORK/state/targets/benchpg-$$.json" ] && break; sleep 0.1; done

CONN="host=$DB port=5432 user=bench password=bench-secret dbname=postgres"
tps() { grep -oE 'tps = [0-9.]+' | head -1 | cut -d' ' -f3; }
lat() { grep -oE 'latency average = [0-9.]+' | cut -d' ' -f4; }
printf '%-10s %-8s %12s %12s %8s %10s %10s\n' mode clients "direct tps" "sluice tps" ratio "direct ms" "sluice ms"
for mode in $MODES; do
  for c in $CLIENTS; do
    d=$(pgbench -n -S -M "$mode" -c "$c" -j "$((c < 2 ? c : 2))" -T "$DURATION" "$CONN" 2>&1)
    s=$("$BIN/sluice-probe" --cgroup "$CG" run -- pgbench -n -S -M "$mode" -c "$c" -j "$((c < 2 ? c : 2))" -T "$DURATION" "$CONN" 2>&1)
    dt=$(tps <<<"$d"); st=$(tps <<<"$s")
    printf '%-10s %-8s %12.0f %12.0f %8.2f %10s %10s\n' "$mode" "$c" "$dt" "$st" "$(echo "$st / $dt" | bc -l)" "$(lat <<<"$d")" "$(lat <<<"$s")"
  done
done
