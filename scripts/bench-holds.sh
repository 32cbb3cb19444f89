#!/usr/bin/env bash
# How much a held statement costs the gateway: N agent sessions (tokio-postgres, in an
# intercepted cgroup) connect through sluice; sluice's RSS is sampled with all of them idle,
# then with a held UPDATE pending on every one; then a reviewer approves them all through the
# HTTP API and the time until every agent has its answer is measured.
# Bounded: N sessions (default 1000), loopback and a private namespace only.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-netns.sh
source scripts/lib-pg.sh
BIN=${BIN:-target/release}
N=${N:-1000}
WORK=$(mktemp -d /tmp/sluice-bench-holds.XXXXXX); chmod 755 "$WORK"
NS=slbenchhold
DB=169.254.203.2
CG_ROOT=$(cgroup2_root)
CG="$CG_ROOT/sluice-benchhold-$$"
TOKEN=$(openssl rand -hex 24)
cleanup() {
  [ -n "${PROBE_PID:-}" ] && kill "$PROBE_PID" 2>/dev/null || true
  [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
  rmdir "$CG" 2>/dev/null || true
  pg_down "$WORK/pg"
  netns_down "$NS"
  rm -rf "$WORK"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

netns_up "$NS" 203
PG_OPTS="-c max_connections=$((N + 50))" pg_up "$WORK/pg" "$NS" "$DB"
pg_sql "$WORK/pg" "CREATE ROLE bench LOGIN PASSWORD 'bench-secret'"
pg_sql "$WORK/pg" "CREATE TABLE accounts (id int PRIMARY KEY, balance int); INSERT INTO accounts VALUES (1, 0); ALTER TABLE accounts OWNER TO bench"
mkdir "$CG"
cat > "$WORK/policy.yaml" <<YAML
listen: 127.0.0.1:0
state_dir: $WORK/state
data_dir: $WORK/data
max_connections: $((N + 100))
targets:
  - { name: benchhold-$$, cgroup: ${CG#$CG_ROOT/}, egress: allow }
resources:
  - name: db
    protocol: postgres
    match: [{ address: $DB, port: 5432 }]
    credentials: { mode: inject, user: bench, password: { value: bench-secret } }
    postgres: { max_sessions: $((N + 50)) }   # sluice's default (20) is below what this opens
rules:
  - name: writes
    statements: [update]
    action: hold
    # No preview: this measures the hold itself (a preview is one short extra connection).
    approval: { groups: [dba], timeout: 10m, preview: { explain: false } }
approvals: { listen: 127.0.0.1:0, max_pending: $((N + 100)) }
identity:
  static_tokens: [ { subject: bench, groups: [dba], token: { value: "$TOKEN" } } ]
YAML
"$BIN/sluice" --log-format json run --config "$WORK/policy.yaml" 2> "$WORK/gw.log" &
GW_PID=$!
for _ in $(seq 100); do grep -q '"approvals_api"' "$WORK/gw.log" 2>/dev/null && break; sleep 0.1; done
API="http://$(grep -o '"event":"approvals_api","listen":"[^"]*"' "$WORK/gw.log" | sed 's/.*"listen":"//; s/"$//')"
rss() { awk '/VmRSS/ { print $2 }' "/proc/$GW_PID/status"; }
pending() { curl -sf -H "authorization: Bearer $TOKEN" "$API/api/v1/approvals?state=pending" | grep -o '"id":' | wc -l; }

base=$(rss)
mkfifo "$WORK/go"
"$BIN/sluice-probe" --cgroup "$CG" pg "host=$DB port=5432 user=bench password=x dbname=postgres" \
  hold-many "$N" "UPDATE accounts SET balance = balance + 1 WHERE id = 1" < "$WORK/go" > "$WORK/probe.out" &
PROBE_PID=$!
exec 3> "$WORK/go"
for _ in $(seq 600); do grep -q connected "$WORK/probe.out" && break; sleep 0.1; done
sleep 1
idle=$(rss)
echo go >&3
for _ in $(seq 600); do [ "$(pending)" -ge "$N" ] && break; sleep 0.2; done
sleep 1
held=$(rss)
count=$(pending)
start=$(date +%s.%N)
curl -sf -H "authorization: Bearer $TOKEN" "$API/api/v1/approvals?state=pending" \
  | grep -o '"id":"[0-9a-f]*"' | cut -d'"' -f4 \
  | xargs -P 8 -I{} curl -sf -o /dev/null -X POST -H "authorization: Bearer $TOKEN" "$API/api/v1/approvals/{}/approve"
wait "$PROBE_PID"; PROBE_PID=
end=$(date +%s.%N)
balance=$(runuser -u postgres -- psql -X -A -t -h "$WORK/pg" -U postgres -c "select balance from accounts")
printf 'sessions %d, held at once %d\n' "$N" "$count"
printf 'sluice RSS: %d KiB at start, %d KiB with %d idle sessions, %d KiB with every session holding a statement\n' "$base" "$idle" "$N" "$held"
printf 'per idle session: %.1f KiB; added per hold: %.1f KiB\n' "$(echo "($idle - $base) / $N" | bc -l)" "$(echo "($held - $idle) / $N" | bc -l)"
printf 'approving all %d through the API (8 at a time) until every agent had its answer: %.2f s\n' "$count" "$(echo "$end - $start" | bc -l)"
printf 'rows changed: %s (expected %d)\n' "$balance" "$N"
cat "$WORK/probe.out" | tail -1
