#!/usr/bin/env bash
# PostgreSQL through sluice vs direct vs pgbouncer, same run, same network path: PostgreSQL 15
# in a network namespace behind a veth pair (169.254.202.2:5432); the direct client, pgbouncer
# and sluice all cross it.
#
# Setups (SETUPS):
#  - direct          pgbench connects to 169.254.202.2:5432 itself.
#  - pgbouncer       pgbouncer in session mode on the host side (169.254.202.1:6432), SCRAM both
#                    ways, one server connection per client.
#  - sluice          pgbench runs in an intercepted cgroup and connects to 169.254.202.2:5432
#                    unchanged; sluice injects the credentials. Guardrails and masking are on
#                    (sluice's defaults for a `postgres` resource, one rule allowing what pgbench
#                    runs), the audit log off.
#  - sluice-audited  the same with sluice's default audit log on (every statement durably
#                    recorded before it is forwarded: an fsync per statement, shared between
#                    concurrent sessions). To bound the run time it only runs AUDITED_MODES
#                    (simple) at AUDITED_CLIENTS (1 8), for both workloads, and not the bulk read.
#  - sluice-off, sluice-ro, sluice-again, sluice-base (for measuring sluice against itself, not
#                    in the default SETUPS): sluice with `postgres.read_only: off` (no enforcement
#                    in the server); with read-only enforcement but no blast-radius measurement;
#                    the same as `sluice` (the noise between two gateways of one binary); and
#                    $BASE_BIN/sluice, an older build, with the same policy minus the `postgres:`
#                    block it may not know.
#  Each sluice setup has its own gateway and cgroup; both gateways run for the whole benchmark
#  (the idle one costs nothing), so the setups can be interleaved run by run: drift and other
#  load on the machine hit them alike.
#
# Workloads:
#  - pgbench -S (select-only) and pgbench's default TPC-B-like script (UPDATE ... WHERE, SELECT,
#    INSERT in BEGIN ... END), -M simple|prepared, CLIENTS clients (-j min(clients, 2)),
#    DURATION seconds each, on a pgbench database of scale SCALE. Before each TPC-B run
#    pgbench_history is truncated and branches/tellers vacuumed (what pgbench does without -n).
#    tps is pgbench's (without connection time); mean and p99 latency come from pgbench's
#    per-transaction log (-l, every thread's file). Any failed transaction, aborted client or
#    non-zero exit fails the run: the table and CSV show it as failed and the script exits 1.
#  - Bulk read: bench_customers, BULK_ROWS (1,000,000) generated customer rows (id, name,
#    email on every row, city, signup time, balance, a free-text note with an order number),
#    read in full with `psql -A -t -c 'SELECT * FROM bench_customers'` and with
#    `COPY (SELECT * FROM bench_customers) TO STDOUT`, median of BULK_REPEAT (3) runs.
#    MB/s = bytes PostgreSQL's answer makes on a direct run (measured once, in an untimed warm-up
#    run) / wall seconds; through sluice every email is masked, so its output is shorter (shown).
#
# PostgreSQL commits with synchronous_commit=off (PG_SYNC_COMMIT): with a WAL fsync per TPC-B
# transaction the disk's fsync latency, not the path to the database, sets the tps (seen here:
# 240 to 4,000 tps at 1 client from run to run). PG_SYNC_COMMIT=on measures durable commits;
# PG_OPTS adds other server options. The audit log's own fsyncs are sluice's and stay.
# The gateways log at GW_LOG, by default sluice's own default (info: a line per connection, per
# refused or held statement; allowed statements are logged at debug).
#
# Knobs: DURATION (8 s), CLIENTS ("1 8 32"), MODES ("simple prepared"), WORKLOADS ("select-only
# tpcb"), SETUPS ("direct pgbouncer sluice sluice-audited"), SCALE (10), AUDITED_MODES,
# AUDITED_CLIENTS, BULK_ROWS, BULK_REPEAT, PG_SYNC_COMMIT, PG_OPTS, GW_LOG,
# OUT (target/bench-results), BIN (target/release), BASE_BIN (for sluice-base).
# Bounded: about 6 minutes with the defaults (40 pgbench runs of 8 s, setup, bulk reads); every
# client run has a timeout. Loopback and a private namespace only.
# Writes ${OUT}/postgres.csv (workload,protocol,clients,setup,tps,mean_ms,p99_ms,failed; a failed
# run has empty figures and failed = its failed transactions or aborted clients, at least 1) and
# ${OUT}/postgres-bulk.csv (what,setup,bytes,seconds,mb_per_s), both overwritten each run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-netns.sh
source scripts/lib-pg.sh
source scripts/lib-gw.sh
BIN=${BIN:-target/release}
DURATION=${DURATION:-8}
CLIENTS=${CLIENTS:-"1 8 32"}
MODES=${MODES:-"simple prepared"}
WORKLOADS=${WORKLOADS:-"select-only tpcb"}
SETUPS=${SETUPS:-"direct pgbouncer sluice sluice-audited"}
SCALE=${SCALE:-10}
AUDITED_MODES=${AUDITED_MODES:-simple}
AUDITED_CLIENTS=${AUDITED_CLIENTS:-"1 8"}
BULK_ROWS=${BULK_ROWS:-1000000}   # 0: no bulk read
BULK_REPEAT=${BULK_REPEAT:-3}
OUT=${OUT:-target/bench-results}
PG_SYNC_COMMIT=${PG_SYNC_COMMIT:-off}
# The gateway's log filter: the "gateway ready" line (sluice::server, info) is needed; sluice's
# own default (info) also writes a line per statement (sluice::proto::command), left out here.
GW_LOG=${GW_LOG:-info}
NS=slbenchpg
DB=169.254.202.2
PGB_ADDR=169.254.202.1
PGB_PORT=6432
for s in $SETUPS; do
  case $s in direct|pgbouncer|sluice|sluice-audited|sluice-off|sluice-ro|sluice-again|sluice-base) ;;
    *) echo "unknown setup $s" >&2; exit 2 ;; esac
done
for w in $WORKLOADS; do
  case $w in select-only|tpcb) ;; *) echo "unknown workload $w" >&2; exit 2 ;; esac
done
[ -x "$BIN/sluice" ] && [ -x "$BIN/sluice-probe" ] || { echo "no $BIN/sluice or $BIN/sluice-probe: build them or set BIN" >&2; exit 1; }
has_setup() { [[ " $SETUPS " == *" $1 "* ]]; }
MAX_CLIENTS=$(printf '%s\n' $CLIENTS | sort -n | tail -1)

WORK=$(mktemp -d /tmp/sluice-bench-pg.XXXXXX); chmod 755 "$WORK"
CG_ROOT=$(cgroup2_root)
declare -A CG GW_PID
CG[sluice]="$CG_ROOT/sluice-benchpg-$$"
CG[sluice-audited]="$CG_ROOT/sluice-benchpg-audited-$$"
for v in off ro again base; do CG[sluice-$v]="$CG_ROOT/sluice-benchpg-$v-$$"; done
[[ " $SETUPS " != *" sluice-base "* ]] || [ -x "${BASE_BIN:-}/sluice" ] || { echo "sluice-base needs BASE_BIN" >&2; exit 1; }
PGB_PID=
stop_gw() {
  local pid=${GW_PID[$1]:-}
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  GW_PID[$1]=
  return 0
}
cleanup() {
  for s in sluice sluice-audited sluice-off sluice-ro sluice-again sluice-base; do
    stop_gw "$s"; kill_cgroup "${CG[$s]}"
  done
  if [ -n "$PGB_PID" ]; then kill "$PGB_PID" 2>/dev/null || true; wait "$PGB_PID" 2>/dev/null || true; fi
  pg_down "$WORK/pg"
  netns_down "$NS"
  rm -rf "$WORK"
  return 0
}
trap cleanup EXIT
# Without these a SIGTERM or SIGINT ends bash without running the EXIT trap.
trap 'exit 143' TERM
trap 'exit 130' INT

# --- PostgreSQL: pgbouncer's pool and the sluice legs each hold up to MAX_CLIENTS connections.
netns_up "$NS" 202
MAX_CONN=$(( 2 * MAX_CLIENTS + 20 > 100 ? 2 * MAX_CLIENTS + 20 : 100 ))
PG_OPTS="-c max_connections=$MAX_CONN -c synchronous_commit=$PG_SYNC_COMMIT ${PG_OPTS:-}" pg_up "$WORK/pg" "$NS" "$DB"
pg_sql "$WORK/pg" "CREATE ROLE bench LOGIN PASSWORD 'bench-secret'"
pg_sql "$WORK/pg" "ALTER DATABASE postgres OWNER TO bench"
echo "pgbench -i -s $SCALE ..."
runuser -u postgres -- pgbench -i -q -s "$SCALE" -h "$WORK/pg" postgres >/dev/null 2>&1
pg_sql "$WORK/pg" "GRANT ALL ON ALL TABLES IN SCHEMA public TO bench"
if [ "$BULK_ROWS" -gt 0 ]; then
  echo "bench_customers: $BULK_ROWS rows ..."
  pg_sql "$WORK/pg" "
    CREATE TABLE bench_customers AS
    SELECT i AS id,
           (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Frances','Ken'])[1 + i % 8]
             || ' ' || (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Allen','Thompson'])[1 + (i / 8) % 8]
             AS name,
           'customer' || i || '@example.com' AS email,
           (ARRAY['Berlin','Lisbon','Toronto','Osaka','Nairobi','Lima','Oslo','Perth'])[1 + (i / 64) % 8] AS city,
           timestamptz '2024-01-01 00:00:00+00' + i * interval '37 seconds' AS signed_up,
           round((i % 100000) / 7.0, 2) AS balance,
           'Order A-' || (100000 + i % 900000) || ' shipped; prefers contact by email, plan '
             || (ARRAY['free','team','business','enterprise'])[1 + i % 4] AS note
    FROM generate_series(1, $BULK_ROWS) AS i;
    ALTER TABLE bench_customers OWNER TO bench"
  pg_sql "$WORK/pg" "VACUUM ANALYZE bench_customers"
fi

# --- pgbouncer, session mode, SCRAM to the client and to PostgreSQL (plain secret in auth_file).
if has_setup pgbouncer; then
  mkdir "$WORK/pgb"
  echo '"bench" "bench-secret"' > "$WORK/pgb/userlist.txt"
  cat > "$WORK/pgb/pgbouncer.ini" <<INI
[databases]
postgres = host=$DB port=5432 dbname=postgres
[pgbouncer]
listen_addr = $PGB_ADDR
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $WORK/pgb/userlist.txt
pool_mode = session
max_client_conn = $(( MAX_CLIENTS + 20 ))
default_pool_size = $MAX_CLIENTS
logfile = $WORK/pgb/pgbouncer.log
pidfile = $WORK/pgb/pgbouncer.pid
INI
  chown -R postgres:postgres "$WORK/pgb"; chmod 600 "$WORK/pgb/userlist.txt"
  # pgbouncer refuses to run as root; setpriv execs it, so $! is pgbouncer itself.
  setpriv --reuid=postgres --regid=postgres --init-groups /usr/sbin/pgbouncer "$WORK/pgb/pgbouncer.ini" \
    < /dev/null > /dev/null 2>> "$WORK/pgb/stderr" &
  PGB_PID=$!
  for _ in $(seq 100); do
    pg_isready -q -h "$PGB_ADDR" -p "$PGB_PORT" && break
    kill -0 "$PGB_PID" 2>/dev/null || break
    sleep 0.1
  done
  pg_isready -q -h "$PGB_ADDR" -p "$PGB_PORT" || {
    echo "pgbouncer did not start:" >&2; cat "$WORK/pgb/stderr" "$WORK/pgb/pgbouncer.log" >&2; exit 1; }
fi

# --- the sluice gateways: one per sluice setup, each serving its own cgroup.
start_gw() { # setup audit(true|false) [postgres settings, or "none"] [bin dir]
  local name=$1 dir="$WORK/$1" pg=${3:-} bin=${4:-$BIN}
  [ "$pg" = none ] && pg="" || pg="    postgres: { max_sessions: $MAX_CONN${pg:+, $pg} }"
  mkdir -p "${CG[$name]}" "$dir"
  cat > "$dir/policy.yaml" <<YAML
listen: 127.0.0.1:0
state_dir: $dir/state
data_dir: $dir/data
targets:
  - { name: benchpg-$name-$$, cgroup: ${CG[$name]#$CG_ROOT/}, egress: allow }
resources:
  - name: db
    protocol: postgres
    match: [{ address: $DB, port: 5432 }]
    credentials: { mode: inject, user: bench, password: { value: bench-secret } }
$pg
rules:  # what pgbench runs (statement kinds no rule names are denied)
  - { name: bench, statements: [select, insert, update, delete, transaction, set], action: allow }
YAML
  [ "$2" = true ] || echo "audit: { enabled: false }" >> "$dir/policy.yaml"
  # Ready means attached: the target's lease file exists earlier, while connects still go
  # straight to the database.
  # (postgres.max_sessions: sluice's default, 20, is below what this opens.)
  RUST_LOG=$GW_LOG "$bin/sluice" run --config "$dir/policy.yaml" 2>> "$dir/gw.log" &
  GW_PID[$name]=$!
  gw_wait_ready "$dir/gw.log" "${GW_PID[$name]}" || {
    echo "$name: sluice run did not become ready:" >&2; tail -20 "$dir/gw.log" >&2; exit 1; }
}
has_setup sluice && start_gw sluice false
has_setup sluice-audited && start_gw sluice-audited true
has_setup sluice-off && start_gw sluice-off false "read_only: off"
has_setup sluice-ro && start_gw sluice-ro false "blast_radius: { enabled: false }"
has_setup sluice-again && start_gw sluice-again false
has_setup sluice-base && start_gw sluice-base false none "$BASE_BIN"

conn() { # setup -> libpq connection string (sluice: the real address, its password ignored)
  case $1 in
    pgbouncer) echo "host=$PGB_ADDR port=$PGB_PORT user=bench password=bench-secret dbname=postgres" ;;
    *) echo "host=$DB port=5432 user=bench password=bench-secret dbname=postgres" ;;
  esac
}
client() { # setup cmd... : runs a client, inside the setup's intercepted cgroup for sluice
  local setup=$1; shift
  case $setup in
    sluice*) "$BIN/sluice-probe" --cgroup "${CG[$setup]}" run -- "$@" ;;
    *) "$@" ;;
  esac
}
# Connections the setup's gateway accepted so far (its "connection" log lines); for a sluice
# setup, a run that adds fewer than its clients went around sluice.
gw_conns() { case $1 in sluice*) grep -c '"connection"' "$WORK/$1/gw.log" || true ;; *) echo 0 ;; esac; }
gw_log_tail() { case $1 in sluice*) echo "--- $1 gateway log:"; tail -5 "$WORK/$1/gw.log" ;; esac; }
runs_for() { # setup mode clients -> 0 when this setup runs this combination
  has_setup "$1" || return 1
  [ "$1" != sluice-audited ] && return 0
  [[ " $AUDITED_MODES " == *" $2 "* && " $AUDITED_CLIENTS " == *" $3 "* ]]
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# --- pgbench runs
mkdir -p "$OUT"
CSV="$OUT/postgres.csv"
echo "workload,protocol,clients,setup,tps,mean_ms,p99_ms,failed" > "$CSV"
declare -A TPS MEAN P99 FAILED
ERRORS=0
RUN=0
bench() { # workload mode clients setup
  local w=$1 mode=$2 c=$3 setup=$4 key="$1,$2,$3,$4" j=$(( $3 < 2 ? $3 : 2 )) out rc=0 failed aborted
  local prefix="$WORK/log/$((RUN += 1))" stats n tps
  local -a script=(); [ "$w" = select-only ] && script=(-S)
  local conns
  mkdir -p "$WORK/log"
  if [ "$w" = tpcb ]; then
    runuser -u postgres -- psql -X -q -h "$WORK/pg" -d postgres \
      -c "TRUNCATE pgbench_history" -c "VACUUM pgbench_branches, pgbench_tellers" > /dev/null
  fi
  conns=$(gw_conns "$setup")
  out=$(client "$setup" timeout $((DURATION + 60)) pgbench -n "${script[@]}" -M "$mode" -c "$c" -j "$j" \
        -T "$DURATION" -l --log-prefix="$prefix" "$(conn "$setup")" 2>&1) || rc=$?
  failed=$(grep -oE 'number of failed transactions: [0-9]+' <<< "$out" | grep -oE '[0-9]+$' || echo 0)
  aborted=$(grep -cE 'client [0-9]+ .*aborted' <<< "$out" || true)
  tps=$(grep -oE '^tps = [0-9.]+' <<< "$out" | head -1 | cut -d' ' -f3 || true)
  if [[ $setup == sluice* ]] && [ $(( $(gw_conns "$setup") - conns )) -lt "$c" ]; then
    out+=$'\n'"only $(( $(gw_conns "$setup") - conns )) of $c clients went through sluice"; rc=99
  fi
  # Every thread's log: prefix.PID, prefix.PID.1, ...; column 3 is the latency in µs ("failed"
  # for a failed transaction).
  stats=$(cat "$prefix".* 2>/dev/null | awk '$3 ~ /^[0-9]+$/ { print $3 }' | sort -n \
    | awk '{ v[NR] = $1; s += $1 } END { if (NR) { k = int(NR * 0.99); if (k < NR * 0.99) k++;
             printf "%d %.3f %.3f\n", NR, s / NR / 1000, v[k] / 1000 } else print 0 }')
  rm -f "$prefix".*
  read -r n MEAN[$key] P99[$key] <<< "$stats"
  if [ "$rc" -ne 0 ] || [ "$failed" -gt 0 ] || [ "$aborted" -gt 0 ] || [ -z "$tps" ] || [ "$n" -eq 0 ]; then
    FAILED[$key]=$(( failed > 0 ? failed : (aborted > 0 ? aborted : 1) ))
    ERRORS=$((ERRORS + 1))
    { echo "FAILED: $key (exit $rc, $failed failed transactions, $aborted aborted clients):"
      tail -15 <<< "$out"; gw_log_tail "$setup"; } >&2
    echo "$w,$mode,$c,$setup,,,,${FAILED[$key]}" >> "$CSV"
    return 0
  fi
  TPS[$key]=$tps
  echo "$w,$mode,$c,$setup,$tps,${MEAN[$key]},${P99[$key]},0" >> "$CSV"
  printf '  %-11s %-8s %3s clients  %-14s %10.0f tps %8.3f ms mean %8.3f ms p99\n' \
    "$w" "$mode" "$c" "$setup" "$tps" "${MEAN[$key]}" "${P99[$key]}"
}
echo "pgbench: $DURATION s per run"
for w in $WORKLOADS; do for mode in $MODES; do for c in $CLIENTS; do
  for setup in $SETUPS; do
    runs_for "$setup" "$mode" "$c" && bench "$w" "$mode" "$c" "$setup"
  done
done; done; done

# --- bulk reads
BULK_SETUPS=()
for s in direct pgbouncer sluice; do has_setup "$s" && BULK_SETUPS+=("$s"); done
declare -A BYTES OUTBYTES MBS SECS
BULK_CSV="$OUT/postgres-bulk.csv"
echo "what,setup,bytes,seconds,mb_per_s" > "$BULK_CSV"
bulk_once() { # what setup -> "bytes seconds"; the output is counted, not kept
  local start end got conns
  local -a q
  case $1 in
    select) q=(-A -t -c "SELECT * FROM bench_customers") ;;
    copy) q=(-c "COPY (SELECT * FROM bench_customers) TO STDOUT") ;;
  esac
  conns=$(gw_conns "$2")
  start=$(date +%s.%N)
  got=$(client "$2" timeout 300 psql -X -q -v ON_ERROR_STOP=1 "$(conn "$2")" "${q[@]}" 2> "$WORK/psql.err" | wc -c) \
    || { echo "FAILED: bulk $1 through $2: $(cat "$WORK/psql.err")" >&2; gw_log_tail "$2" >&2; return 1; }
  end=$(date +%s.%N)
  [ -s "$WORK/psql.err" ] && { echo "FAILED: bulk $1 through $2: $(cat "$WORK/psql.err")" >&2; return 1; }
  if [[ $2 == sluice* ]] && [ "$(gw_conns "$2")" -le "$conns" ]; then
    echo "FAILED: bulk $1 through $2: psql did not go through sluice" >&2; return 1
  fi
  echo "$got $(echo "$end - $start" | bc -l)"
}
if [ "$BULK_ROWS" -gt 0 ] && [ "${#BULK_SETUPS[@]}" -gt 0 ]; then
  echo "bulk read: $BULK_ROWS rows, median of $BULK_REPEAT"
  for what in select copy; do
    # Untimed warm-up, direct: the table in the page cache, and the size of the answer.
    r=$(bulk_once "$what" direct) || exit 1
    read -r BYTES[$what] _ <<< "$r"
    declare -A secs=()
    for _ in $(seq "$BULK_REPEAT"); do
      for setup in "${BULK_SETUPS[@]}"; do
        if ! r=$(bulk_once "$what" "$setup"); then ERRORS=$((ERRORS + 1)); continue; fi
        read -r got s <<< "$r"
        OUTBYTES[$what,$setup]=$got
        secs[$setup]+="$s "
      done
    done
    for setup in "${BULK_SETUPS[@]}"; do
      # A failed setup: a row without figures.
      [ -n "${secs[$setup]:-}" ] || { echo "$what,$setup,${BYTES[$what]},," >> "$BULK_CSV"; continue; }
      got=${OUTBYTES[$what,$setup]}
      # Unmasked, a setup must return exactly what PostgreSQL sent; sluice must have masked.
      if [ "$setup" = sluice ] && [ "$got" -ge "${BYTES[$what]}" ]; then
        echo "FAILED: bulk $what through sluice: $got bytes, not fewer than direct's ${BYTES[$what]} (no masking?)" >&2
        echo "$what,$setup,${BYTES[$what]},," >> "$BULK_CSV"; ERRORS=$((ERRORS + 1)); continue
      elif [ "$setup" != sluice ] && [ "$got" -ne "${BYTES[$what]}" ]; then
        echo "FAILED: bulk $what through $setup: $got bytes, direct gave ${BYTES[$what]}" >&2
        echo "$what,$setup,${BYTES[$what]},," >> "$BULK_CSV"; ERRORS=$((ERRORS + 1)); continue
      fi
      SECS[$what,$setup]=$(printf '%s\n' ${secs[$setup]} | median)
      MBS[$what,$setup]=$(echo "${BYTES[$what]} / 1000000 / ${SECS[$what,$setup]}" | bc -l)
      printf '%s,%s,%s,%.3f,%.1f\n' "$what" "$setup" "${BYTES[$what]}" "${SECS[$what,$setup]}" "${MBS[$what,$setup]}" >> "$BULK_CSV"
    done
    unset secs
  done
fi
for s in sluice sluice-audited sluice-off sluice-ro sluice-again sluice-base; do stop_gw "$s"; done

# --- report
ratio() { # a b -> a/b, or "-" when either is missing
  if [ -n "${1:-}" ] && [ -n "${2:-}" ]; then printf '%.2f' "$(echo "$1 / $2" | bc -l)"; else echo -; fi
}
echo
echo "pgbench, $DURATION s per run, scale $SCALE, synchronous_commit=$PG_SYNC_COMMIT: tps, mean and p99 latency (ms)"
printf '%-11s %-8s %3s' workload protocol cl
for s in $SETUPS; do printf ' | %-26s' "$s"; done
printf ' | %8s %8s\n' "sluice/" "sluice/"
printf '%-11s %-8s %3s' "" "" ""
for s in $SETUPS; do printf ' | %8s %8s %8s' tps mean p99; done
printf ' | %8s %8s\n' direct pgbouncr
for w in $WORKLOADS; do for mode in $MODES; do for c in $CLIENTS; do
  printf '%-11s %-8s %3s' "$w" "$mode" "$c"
  for s in $SETUPS; do
    k="$w,$mode,$c,$s"
    if [ -n "${FAILED[$k]:-}" ]; then printf ' | %-26s' FAILED
    elif [ -n "${TPS[$k]:-}" ]; then printf ' | %8.0f %8.3f %8.3f' "${TPS[$k]}" "${MEAN[$k]}" "${P99[$k]}"
    else printf ' | %-26s' "   (not run)"; fi
  done
  printf ' | %8s %8s\n' "$(ratio "${TPS[$w,$mode,$c,sluice]:-}" "${TPS[$w,$mode,$c,direct]:-}")" \
    "$(ratio "${TPS[$w,$mode,$c,sluice]:-}" "${TPS[$w,$mode,$c,pgbouncer]:-}")"
done; done; done
echo "(ratios: tps; sluice = guardrails + masking, audit off; sluice-audited = sluice's defaults, audit on)"
if [ "$BULK_ROWS" -gt 0 ] && [ "${#BULK_SETUPS[@]}" -gt 0 ]; then
  echo
  echo "bulk read of bench_customers ($BULK_ROWS rows, median of $BULK_REPEAT): MB/s (10^6 bytes of direct's answer per second)"
  printf '%-7s %12s' what bytes
  for s in "${BULK_SETUPS[@]}"; do printf ' %10s' "$s"; done
  printf ' %14s %14s %18s\n' sluice/direct sluice/pgbouncr "sluice out bytes"
  for what in select copy; do
    printf '%-7s %12s' "$what" "${BYTES[$what]:-?}"
    for s in "${BULK_SETUPS[@]}"; do
      if [ -n "${MBS[$what,$s]:-}" ]; then printf ' %10.1f' "${MBS[$what,$s]}"; else printf ' %10s' FAILED; fi
    done
    printf ' %14s %14s %18s\n' "$(ratio "${MBS[$what,sluice]:-}" "${MBS[$what,direct]:-}")" \
      "$(ratio "${MBS[$what,sluice]:-}" "${MBS[$what,pgbouncer]:-}")" "${OUTBYTES[$what,sluice]:--}"
  done
fi
if has_setup sluice-audited; then
  echo
  if verify=$("$BIN/sluice" audit --config "$WORK/sluice-audited/policy.yaml" verify 2>&1); then
    echo "audit log of sluice-audited: $(head -1 <<< "$verify")"
  else
    echo "FAILED: audit verify of sluice-audited: $verify" >&2; ERRORS=$((ERRORS + 1))
  fi
fi
echo
echo "csv: $CSV $BULK_CSV"
echo "elapsed: $((SECONDS / 60)) min $((SECONDS % 60)) s"
if [ "$ERRORS" -gt 0 ]; then echo "$ERRORS run(s) FAILED: see the messages above" >&2; exit 1; fi
