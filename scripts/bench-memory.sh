#!/usr/bin/env bash
# sluice's memory with idle agent connections: its RSS (VmRSS) right after start, then with
# COUNTS idle connections open at once through it (cumulative: 1,000, then 9,000 more for
# 10,000), each from a client in the intercepted cgroup (`sluice-probe hold`: connect, one line
# echoed so the upstream leg is up too, then idle) to a `protocol: tcp` resource (an echo
# server in a namespace). Then the same with PG_N idle PostgreSQL sessions (tokio-postgres,
# logged in through sluice with an injected password) on a fresh gateway, with the audit log on
# (the default: every session is recorded) and off, to see what the audit store adds.
# Each connection through sluice takes two file descriptors (agent side, upstream side): the
# script raises the open-file limit to NOFILE for sluice, the client and the servers.
# Bounded: COUNTS and PG_N connections, every wait under WAIT_TIMEOUT; loopback and a private
# namespace only. Writes $OUT/memory.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-netns.sh
source scripts/lib-gw.sh
source scripts/lib-pg.sh
BIN=${BIN:-target/release}
COUNTS=${COUNTS:-"1000 10000"}
# 0: no PostgreSQL round. Each session is a PostgreSQL backend (a few MiB each).
PG_N=${PG_N:-1000}
# "true false": the PostgreSQL round with the audit log on, then off.
PG_AUDIT=${PG_AUDIT:-"true false"}
NOFILE=${NOFILE:-65536}
WAIT_TIMEOUT=${WAIT_TIMEOUT:-120}
# Seconds to let sluice settle before each RSS sample.
SETTLE=${SETTLE:-1}
OUT=${OUT:-target/bench-results}
WORK=$(mktemp -d /tmp/sluice-bench-mem.XXXXXX); chmod 755 "$WORK"
NS=slbenchmem
HOST=169.254.204.2
CG_ROOT=$(cgroup2_root)
CG="$CG_ROOT/sluice-benchmem-$$"
MAX_N=0
for n in $COUNTS; do [ "$n" -gt "$MAX_N" ] && MAX_N=$n; done
[ "$PG_N" -gt "$MAX_N" ] && MAX_N=$PG_N
stop_gw() {
  [ -z "${GW_PID:-}" ] || { kill "$GW_PID" 2>/dev/null; wait "$GW_PID" 2>/dev/null || true; GW_PID=; }
  return 0
}
cleanup() {
  # The clients (all in the cgroup) first, so sluice does not wait for their sessions.
  kill_cgroup "$CG"
  stop_gw
  [ -n "${SRV_PID:-}" ] && kill "$SRV_PID" 2>/dev/null || true
  [ -d "$WORK/pg" ] && pg_down "$WORK/pg"
  netns_down "$NS"
  rm -rf "$WORK"
  return 0
}
trap cleanup EXIT
need_bins sluice sluice-probe
# sluice raises its soft limit only up to the hard one: 10,000 connections need 20,000
# descriptors and more. Raising the hard limit needs CAP_SYS_RESOURCE; without it, up to the
# hard limit, and the counts are capped to what fits.
if ! ulimit -n "$NOFILE" 2>/dev/null; then
  ulimit -n "$(ulimit -Hn)"
  echo "note: cannot raise the open-file limit to $NOFILE (hard limit $(ulimit -Hn), no CAP_SYS_RESOURCE?)"
fi

netns_up "$NS" 204
ip netns exec "$NS" "$BIN/sluice-probe" serve "$HOST:7000" --async > /dev/null &
SRV_PID=$!
if [ "$PG_N" -gt 0 ]; then
  PG_OPTS="-c max_connections=$((PG_N + 50)) -c shared_buffers=32MB" pg_up "$WORK/pg" "$NS" "$HOST"
  pg_sql "$WORK/pg" "CREATE ROLE bench LOGIN PASSWORD 'bench-secret'" > /dev/null
fi
for _ in $(seq 50); do ip netns exec "$NS" ss -Hlnt "sport = :7000" | grep -q . && break; sleep 0.1; done
mkdir "$CG"

GW_PID=
start_gw() { # audit: true|false
  rm -rf "$WORK/state" "$WORK/data"
  cat > "$WORK/policy.yaml" <<YAML
listen: 127.0.0.1:0
state_dir: $WORK/state
data_dir: $WORK/data
max_connections: $((MAX_N + 100))
targets:
  - { name: benchmem-$$, cgroup: ${CG#"$CG_ROOT"/}, egress: allow }
resources:
  - { name: echo, protocol: tcp, match: [{ address: $HOST, port: 7000 }] }
  - name: db
    protocol: postgres
    match: [{ address: $HOST, port: 5432 }]
    credentials: { mode: inject, user: bench, password: { value: bench-secret } }
    postgres: { max_sessions: $((MAX_N + 100)) }   # sluice's default (20) is below what this opens
rules:  # what pgbench runs (statement kinds no rule names are denied)
  - { name: bench, statements: [select, insert, update, delete, transaction, set], action: allow }
audit: { enabled: $1 }
YAML
  # Ready means attached; sluice's own logs at their default level (info).
  "$BIN/sluice" run --config "$WORK/policy.yaml" 2> "$WORK/gw.log" &
  GW_PID=$!
  gw_wait_ready "$WORK/gw.log" "$GW_PID" || { echo "sluice did not become ready:" >&2; tail -20 "$WORK/gw.log" >&2; exit 1; }
  sleep "$SETTLE"
}
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$GW_PID/status"; }
fds() { ls "/proc/$GW_PID/fd" | wc -l; }
redirected() { grep -c "redirected connection" "$WORK/gw.log" || true; }
wait_for() { # file pattern pid -> 0 once the pattern is in the file, 1 if pid ended or timeout
  for _ in $(seq $((WAIT_TIMEOUT * 10))); do
    grep -qs "$2" "$1" && return 0
    kill -0 "$3" 2>/dev/null || { grep -qs "$2" "$1"; return; }
    sleep 0.1
  done
  return 1
}
# sluice's warnings and errors, most frequent first (colours and timestamps removed).
gw_problems() {
  grep -E "WARN|ERROR" "$WORK/gw.log" | sed -E 's/\x1b\[[0-9;]*m//g; s/^[0-9TZ:.-]+ +//' | cut -c1-200 \
    | sort | uniq -c | sort -rn | head -3
}

declare -a ROWS
row() { # protocol connections rss base
  local per=
  [ "$2" -gt 0 ] && per=$(printf '%.1f' "$(echo "($3 - $4) / $2" | bc -l)")
  ROWS+=("$1,$2,$3,$per")
  printf '%-20s %12s %10s %10s %12s\n' "$1" "$2" "$3" "${per:--}" "$(fds)"
}
status=0
echo "sluice RSS (VmRSS) with idle agent connections; open-file limit $(ulimit -n)"
printf '%-20s %12s %10s %10s %12s\n' protocol connections "RSS KiB" "KiB/conn" "sluice fds"

# tcp: one gateway; the clients add up to each count in turn and stay open.
start_gw true
base=$(rss)
row tcp 0 "$base" "$base"
# Two descriptors per connection, and some headroom.
fit=$(( ($(ulimit -n) - $(fds) - 64) / 2 ))
opened=0 i=0
for n in $COUNTS; do
  if [ "$n" -gt "$fit" ]; then
    echo "  $n connections need $((2 * n)) descriptors in sluice, over its limit of $(ulimit -n): $fit instead"
    n=$fit
  fi
  [ "$n" -gt "$opened" ] || continue
  i=$((i + 1))
  mkfifo "$WORK/hold$i"
  "$BIN/sluice-probe" --cgroup "$CG" hold "$HOST:7000" $((n - opened)) --echo < "$WORK/hold$i" > "$WORK/hold$i.out" &
  pid=$!
  # Keeps the probe's stdin open (it holds its connections until stdin closes).
  eval "exec $((i + 9))> \"\$WORK/hold$i\""
  if ! wait_for "$WORK/hold$i.out" '"open"' "$pid" || ! grep -q '"ok":true' "$WORK/hold$i.out"; then
    echo "tcp: opening $((n - opened)) more connections (after $opened) failed: $(cat "$WORK/hold$i.out")" >&2
    echo "sluice: $(fds) open descriptors; its warnings:" >&2; gw_problems >&2
    status=1
    break
  fi
  opened=$n
  sleep "$SETTLE"
  got=$(redirected)
  [ "$got" -eq "$n" ] || { echo "tcp: sluice logged $got redirected connections, expected $n" >&2; status=1; }
  row tcp "$n" "$(rss)" "$base"
done
for j in $(seq "$i"); do eval "exec $((j + 9))>&-"; done
for _ in $(seq 50); do [ "$(fds)" -lt 100 ] && break; sleep 0.1; done
sleep "$SETTLE"
echo "  after all closed: $(rss) KiB"
stop_gw

# postgres: a fresh gateway per audit setting, PG_N sessions logged in, then idle.
if [ "$PG_N" -gt 0 ]; then
  for audit in $PG_AUDIT; do
    name=postgres
    [ "$audit" = true ] || name=postgres-audit-off
    start_gw "$audit"
    base=$(rss)
    row "$name" 0 "$base" "$base"
    rm -f "$WORK/go"; mkfifo "$WORK/go"
    "$BIN/sluice-probe" --cgroup "$CG" pg "host=$HOST port=5432 user=bench password=x dbname=postgres" \
      hold-many "$PG_N" "SELECT 1" < "$WORK/go" > "$WORK/pg.out" &
    pid=$!
    exec 9> "$WORK/go"
    pending=
    if wait_for "$WORK/pg.out" connected "$pid"; then
      pending=1
      sleep "$SETTLE"
      row "$name" "$PG_N" "$(rss)" "$base"
      # Every session runs one statement, then the client ends them all.
      echo go >&9
    else
      echo "$name: $PG_N sessions did not all connect: $(tail -c 400 "$WORK/pg.out")" >&2
      gw_problems >&2
      status=1
    fi
    exec 9>&-
    for _ in $(seq $((WAIT_TIMEOUT * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ -n "${pending:-}" ] && ! grep -Eq "\"succeeded\":$PG_N[,}]" "$WORK/pg.out"; then
      echo "$name: not every session answered SELECT 1: $(tail -c 400 "$WORK/pg.out")" >&2
      status=1
    fi
    if [ "$audit" = true ]; then
      echo "  audit store: $(du -sk "$WORK/data" | cut -f1) KiB on disk after $PG_N sessions"
    fi
    stop_gw
  done
fi

mkdir -p "$OUT"
CSV="$OUT/memory.csv"
{ echo "protocol,connections,rss_kib,kib_per_connection"; printf '%s\n' "${ROWS[@]}"; } > "$CSV"
echo "(KiB/conn = (RSS - RSS at 0) / connections, same gateway)"
echo "csv: $CSV"
exit "$status"
