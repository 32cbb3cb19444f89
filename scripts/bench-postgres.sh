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
# One gateway at a time: with the audit log (the default: every statement durably recorded
# before it is forwarded) and without it, so the cost of auditing is measured in the same run.
start_gw() {
  rm -rf "$WORK/state"
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
audit: { enabled: $1 }
YAML
  RUST_LOG=warn "$BIN/sluice" run --config "$WORK/policy.yaml" 2>> "$WORK/gw.log" &
  GW_PID=$!
  for _ in $(seq 100); do [ -f "$WORK/state/targets/benchpg-$$.json" ] && break; sleep 0.1; done
}
stop_gw() { kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true; GW_PID=; }

CONN="host=$DB port=5432 user=bench password=bench-secret dbname=postgres"
tps() { grep -oE 'tps = [0-9.]+' | head -1 | cut -d' ' -f3; }
lat() { grep -oE 'latency average = [0-9.]+' | cut -d' ' -f4; }
bench() { # where mode clients
  local j=$(( $3 < 2 ? $3 : 2 ))
  if [ "$1" = direct ]; then
    pgbench -n -S -M "$2" -c "$3" -j "$j" -T "$DURATION" "$CONN" 2>&1
  else
    "$BIN/sluice-probe" --cgroup "$CG" run -- pgbench -n -S -M "$2" -c "$3" -j "$j" -T "$DURATION" "$CONN" 2>&1
  fi
}
declare -A TPS LAT
for mode in $MODES; do for c in $CLIENTS; do
  out=$(bench direct "$mode" "$c"); TPS[direct,$mode,$c]=$(tps <<<"$out"); LAT[direct,$mode,$c]=$(lat <<<"$out")
done; done
for audit in false true; do
  start_gw "$audit"
  for mode in $MODES; do for c in $CLIENTS; do
    out=$(bench sluice "$mode" "$c"); TPS[$audit,$mode,$c]=$(tps <<<"$out"); LAT[$audit,$mode,$c]=$(lat <<<"$out")
  done; done
  stop_gw
done
printf '%-9s %-7s %10s %10s %10s %8s %8s %9s %9s %9s %11s\n' mode clients "direct" "no-audit" "audited" "ratio" "ratio" "direct" "no-audit" "audited" "audit adds"
printf '%-9s %-7s %10s %10s %10s %8s %8s %9s %9s %9s %11s\n' "" "" "tps" "tps" "tps" "no-aud" "audited" "ms" "ms" "ms" "ms/stmt"
for mode in $MODES; do for c in $CLIENTS; do
  d=${TPS[direct,$mode,$c]}; n=${TPS[false,$mode,$c]}; a=${TPS[true,$mode,$c]}
  printf '%-9s %-7s %10.0f %10.0f %10.0f %8.2f %8.2f %9s %9s %9s %11.3f\n' "$mode" "$c" "$d" "$n" "$a" \
    "$(echo "$n / $d" | bc -l)" "$(echo "$a / $d" | bc -l)" \
    "${LAT[direct,$mode,$c]}" "${LAT[false,$mode,$c]}" "${LAT[true,$mode,$c]}" \
    "$(echo "${LAT[true,$mode,$c]} - ${LAT[false,$mode,$c]}" | bc -l)"
done; done
echo "audit records written: $("$BIN/sluice" audit --config "$WORK/policy.yaml" verify | head -1)"
