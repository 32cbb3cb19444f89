#!/usr/bin/env bash
# Redirection cost, same run, same client (sluice-probe), same echo servers in a network
# namespace, four setups:
#   outside           the client outside any intercepted cgroup, straight to the server;
#   ebpf-passthrough  inside sluice's cgroup, to an unlisted port: the eBPF lookup, passed through;
#   sluice            inside sluice's cgroup, to a `protocol: tcp` resource: redirected by the
#                     eBPF connect hook to sluice, which proxies to the server;
#   nft-redirect      inside another cgroup matched by an nftables rule (`socket cgroupv2`) that
#                     REDIRECTs to a minimal transparent relay (`sluice-probe relay`: reads
#                     SO_ORIGINAL_DST, connects there, copies both ways): the usual way of doing
#                     the same job without eBPF.
# Per setup: connect() latency (COUNT connects: median, p99) and short connections per second
# (RATE_COUNT connections, each connect, one line echoed, close; one client, then 8 at once);
# ROUNDS rounds of the four setups in turn, each figure the median of its rounds.
# Every connection (connect latency too, untimed after the connect) has one line echoed and
# the server closes first (`serve --async --lines 1`; the client waits for that close), so
# TIME_WAIT stays in the namespace and back-to-back runs do not exhaust the host's ephemeral
# ports. One destination port per setup: behind a single REDIRECT port, a client source port
# reused for another destination runs into the relay's TIME_WAIT socket and conntrack entry of
# the previous connection (SYNs re-sent, stalls of 10 ms to 1 s), which would measure that
# pitfall instead. sluice runs with its defaults (info logs, audit on; a tcp resource writes no
# audit record, each connection is logged).
# Bounded: COUNT and RATE_COUNT connections per setup and round, every probe under
# PROBE_TIMEOUT; loopback and a private namespace only. Writes $OUT/redirect.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-netns.sh
source scripts/lib-gw.sh
BIN=${BIN:-target/release}
COUNT=${COUNT:-5000}
RATE_COUNT=${RATE_COUNT:-5000}
# 0: skip the 8-client short-connection runs.
PARALLEL=${PARALLEL:-1}
PROBE_TIMEOUT=${PROBE_TIMEOUT:-120}
ROUNDS=${ROUNDS:-3}
OUT=${OUT:-target/bench-results}
WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
NS=slbench
HOST=169.254.201.2
NFT_TABLE=sluice_bench
CG_ROOT=$(cgroup2_root)
CG="$CG_ROOT/sluice-bench-$$"
NFT_CG="$CG_ROOT/sluice-bench-nft-$$"
cleanup() {
  nft delete table ip "$NFT_TABLE" 2>/dev/null || true
  [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
  [ -n "${RELAY_PID:-}" ] && kill "$RELAY_PID" 2>/dev/null || true
  for pid in ${SRV_PIDS:-}; do kill "$pid" 2>/dev/null || true; done
  kill_cgroup "$CG"
  kill_cgroup "$NFT_CG"
  netns_down "$NS"
  rm -rf "$WORK"
  return 0
}
trap cleanup EXIT
need_bins sluice sluice-probe
# A table left by a killed run.
nft delete table ip "$NFT_TABLE" 2>/dev/null || true

netns_up "$NS" 201
# :7000 is the resource (sluice) and the nft-matched port, :7001 is unlisted.
SRV_PIDS=
for port in 7000 7001; do
  ip netns exec "$NS" "$BIN/sluice-probe" serve "$HOST:$port" --async --lines 1 > /dev/null &
  SRV_PIDS+=" $!"
done
wait_port() { for _ in $(seq 50); do ip netns exec "$NS" ss -Hlnt "sport = :$1" | grep -q . && return; sleep 0.1; done; echo "server :$1 did not start" >&2; exit 1; }
for p in 7000 7001; do wait_port "$p"; done
mkdir "$CG" "$NFT_CG"

cat > "$WORK/policy.yaml" <<YAML
listen: 127.0.0.1:0
state_dir: $WORK/state
data_dir: $WORK/data
targets:
  - { name: bench-$$, cgroup: ${CG#"$CG_ROOT"/}, egress: allow }
resources:
  - { name: echo, protocol: tcp, match: [{ address: $HOST, port: 7000 }] }
YAML
# Ready means attached (the target's lease file exists earlier, while connects still go straight
# to the host): wait for the ready line.
"$BIN/sluice" run --config "$WORK/policy.yaml" 2> "$WORK/gw.log" &
GW_PID=$!
gw_wait_ready "$WORK/gw.log" "$GW_PID" || { echo "sluice did not become ready:" >&2; tail -20 "$WORK/gw.log" >&2; exit 1; }

# The relay, outside both cgroups (its own connects are not redirected), on an ephemeral port.
"$BIN/sluice-probe" relay 127.0.0.1:0 > "$WORK/relay.out" 2> "$WORK/relay.err" &
RELAY_PID=$!
for _ in $(seq 50); do grep -qs listening "$WORK/relay.out" && break; sleep 0.1; done
RELAY_PORT=$(grep -o '"listening":"[^"]*"' "$WORK/relay.out" | sed 's/.*://; s/"$//')
[ -n "$RELAY_PORT" ] || { echo "relay did not start" >&2; cat "$WORK/relay.err" >&2; exit 1; }

declare -A C_MED C_P99 RATE RATE8 RATE_MED RATE_P99 FAILED
json() { grep -o "\"$1\":[0-9.]*" <<<"$2" | cut -d: -f2; }
probe() { # cgroup-or-empty args... -> the probe's JSON line, or status 1 (output kept)
  local cg=$1 out; shift
  if out=$(timeout "$PROBE_TIMEOUT" "$BIN/sluice-probe" ${cg:+--cgroup "$cg"} "$@" 2>&1) \
      && grep -q '"ok":true' <<<"$out"; then
    [ "${VERBOSE:-0}" = 0 ] || echo "${cg:+(in ${cg##*/}) }$*: $out" >&2
    echo "$out"
  else
    echo "${out:-timed out after ${PROBE_TIMEOUT}s}"
    return 1
  fi
}
measure() { # setup cgroup port: appends this round's values (a failure ends the setup)
  local name=$1 cg=$2 out
  [ -z "${FAILED[$name]:-}" ] || return 0
  if ! out=$(probe "$cg" bench-connect "$HOST:$3" "$COUNT" --await-close); then
    FAILED[$name]="bench-connect: $out"; return 0
  fi
  C_MED[$name]+=" $(json median_us "$out")" C_P99[$name]+=" $(json p99_us "$out")"
  if ! out=$(probe "$cg" bench-connrate "$HOST:$3" "$RATE_COUNT" --await-close); then
    FAILED[$name]="bench-connrate: $out"; return 0
  fi
  RATE[$name]+=" $(json per_s "$out")" RATE_MED[$name]+=" $(json median_us "$out")"
  RATE_P99[$name]+=" $(json p99_us "$out")"
  if [ "$PARALLEL" != 0 ]; then
    if ! out=$(probe "$cg" bench-connrate "$HOST:$3" "$RATE_COUNT" --threads 8 --await-close); then
      FAILED[$name]="bench-connrate --threads 8: $out"; return 0
    fi
    RATE8[$name]+=" $(json per_s "$out")"
  fi
}
redirected() { grep -c "redirected connection" "$WORK/gw.log" || true; }
# Connections each setup opens: connect latency, one client, 8 clients.
expected=$((COUNT + RATE_COUNT * (PARALLEL != 0 ? 2 : 1)))

SETUPS=(outside ebpf-passthrough sluice nft-redirect)
# cgroup v2 match: nft resolves the path under /sys/fs/cgroup (so a hybrid system's path starts
# with unified/) and compares the socket's ancestor at LEVEL (depth under the v2 root).
rel=${NFT_CG#"$CG_ROOT"/}
level=$(( $(tr -cd / <<<"$rel" | wc -c) + 1 ))
command -v nft > /dev/null || FAILED[nft-redirect]="nft not installed (apt-get install nftables)"
# ROUNDS rounds of the four setups in turn; each figure is the median over the rounds, so a
# burst of load elsewhere on the machine skews one sample, not a whole setup.
for round in $(seq "$ROUNDS"); do
  [ "${VERBOSE:-0}" = 0 ] || echo "round $round" >&2
  measure outside "" 7000
  measure ebpf-passthrough "$CG" 7001
  before=$(redirected)
  measure sluice "$CG" 7000
  # Every connection of the sluice leg went through sluice (not straight to the server).
  got=$(( $(redirected) - before ))
  if [ -z "${FAILED[sluice]:-}" ] && [ "$got" -ne "$expected" ]; then
    FAILED[sluice]="sluice logged $got redirected connections, expected $expected"
  fi

  [ -z "${FAILED[nft-redirect]:-}" ] || continue
  # priority -100: dstnat (nft 1.0.6 only takes that name in prerouting).
  if ! nft -f - > "$WORK/nft.err" 2>&1 <<NFT
table ip $NFT_TABLE {
  chain output {
    type nat hook output priority -100; policy accept;
    socket cgroupv2 level $level "${NFT_CG#/sys/fs/cgroup/}" ip daddr $HOST tcp dport 7000 counter redirect to :$RELAY_PORT
  }
}
NFT
  then
    FAILED[nft-redirect]="nft: $(tr '\n' ' ' < "$WORK/nft.err")"
    continue
  fi
  measure nft-redirect "$NFT_CG" 7000
  # The nat chain sees the first packet of each connection (again for a SYN re-sent after a
  # reset): each one was redirected.
  got=$(nft list table ip "$NFT_TABLE" | grep -o 'counter packets [0-9]*' | awk '{ print $3 }')
  # Deleted at once: while a nat chain exists, conntrack tracks every connection of the host.
  nft delete table ip "$NFT_TABLE"
  if [ -z "${FAILED[nft-redirect]:-}" ] && [ "${got:-0}" -lt "$expected" ]; then
    FAILED[nft-redirect]="the nft rule matched ${got:-0} connections, expected $expected"
  elif [ "${got:-0}" -gt "$expected" ]; then
    echo "nft-redirect: $((got - expected)) connection attempts were made again (SYN re-sent after a reset)" >&2
  fi
done
if [ -s "$WORK/relay.err" ]; then
  echo "relay errors: $(sort "$WORK/relay.err" | uniq -c | sort -rn | head -3)" >&2
fi
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
for s in "${SETUPS[@]}"; do
  for var in C_MED C_P99 RATE RATE_MED RATE_P99 RATE8; do
    declare -n values=$var
    values[$s]=$(median <<<"${values[$s]:-}")
    unset -n values
  done
done

mkdir -p "$OUT"
CSV="$OUT/redirect.csv"
echo "setup,connect_median_us,connect_p99_us,conn_per_s,conn_per_s_8" > "$CSV"
ratio() { [ -n "$1" ] && [ -n "$2" ] && printf '%.2f' "$(echo "$1 / $2" | bc -l)" || echo "-"; }
num() { [ -n "$2" ] && printf "%$1" "$2" || echo "-"; }
# Not measured: an empty column.
csv() { [ -z "$2" ] || printf "%$1" "$2"; }
declare -A WHAT=(
  [outside]="client outside any cgroup, direct"
  [ebpf-passthrough]="in sluice's cgroup, unlisted port"
  [sluice]="in sluice's cgroup, tcp resource"
  [nft-redirect]="nft REDIRECT + SO_ORIGINAL_DST relay"
)
echo
echo "connect(): $COUNT connects; short connections (connect, one line echoed, close): $RATE_COUNT;"
echo "per setup and round, median of $ROUNDS rounds"
printf '%-17s %-37s %-17s | %-36s | %s\n' "" "" "connect()" "short connections, 1 client" "8 clients"
printf '%-17s %-37s %8s %8s | %9s %6s %9s %9s | %9s %6s\n' setup "" median p99 "conn/s" ratio median p99 "conn/s" ratio
status=0
for s in "${SETUPS[@]}"; do
  if [ -n "${FAILED[$s]:-}" ]; then
    status=1
    echo "$s: failed: ${FAILED[$s]}" >&2
  fi
  printf '%-17s %-37s %8s %8s | %9s %6s %9s %9s | %9s %6s\n' "$s" "${WHAT[$s]}" \
    "$(num .1f "${C_MED[$s]:-}")" "$(num .1f "${C_P99[$s]:-}")" \
    "$(num .0f "${RATE[$s]:-}")" "$(ratio "${RATE[$s]:-}" "${RATE[outside]:-}")" \
    "$(num .1f "${RATE_MED[$s]:-}")" "$(num .1f "${RATE_P99[$s]:-}")" \
    "$(num .0f "${RATE8[$s]:-}")" "$(ratio "${RATE8[$s]:-}" "${RATE8[outside]:-}")"
  printf '%s,%s,%s,%s,%s\n' "$s" "$(csv .1f "${C_MED[$s]:-}")" "$(csv .1f "${C_P99[$s]:-}")" \
    "$(csv .0f "${RATE[$s]:-}")" "$(csv .0f "${RATE8[$s]:-}")" >> "$CSV"
done
echo "(latencies in µs, per connection for short connections: connect to close; ratio = conn/s"
echo " of the setup / conn/s outside; 2 cores shared by client, proxy and server)"
echo "csv: $CSV"
exit "$status"
