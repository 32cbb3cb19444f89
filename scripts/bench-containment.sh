#!/usr/bin/env bash
# What containment costs the agent: the same client (sluice-probe) outside any cgroup and inside
# an intercepted one, same run, to destinations the policy allows (so the hooks decide and let
# through; nothing is proxied):
#   connect()   COUNT TCP connects to an allowed `egress.allow` port: connect4 (LPM lookup),
#               sock_create, sock_ops, and the ingress program on the SYN-ACK;
#   udp sendto  UDP_COUNT unconnected datagrams to an allowed UDP destination: sendmsg4 per
#               datagram (LPM lookup).
# ROUNDS rounds, outside and inside alternating; each figure is the median of its rounds.
# Bounded: COUNT connects and UDP_COUNT datagrams per setup and round, every probe under
# PROBE_TIMEOUT; loopback and a private namespace only. Writes $OUT/containment.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-netns.sh
source scripts/lib-gw.sh
BIN=${BIN:-target/release}
COUNT=${COUNT:-5000}
UDP_COUNT=${UDP_COUNT:-200000}
ROUNDS=${ROUNDS:-3}
PROBE_TIMEOUT=${PROBE_TIMEOUT:-120}
OUT=${OUT:-target/bench-results}
WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
NS=slbenchc
HOST=169.254.252.2
CG_ROOT=$(cgroup2_root)
CG="$CG_ROOT/sluice-bench-cont-$$"
cleanup() {
  [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
  for pid in ${SRV_PIDS:-}; do kill "$pid" 2>/dev/null || true; done
  kill_cgroup "$CG"
  [ -f "$WORK/policy.yaml" ] && "$BIN/sluice" cleanup --detach --force --config "$WORK/policy.yaml" > /dev/null 2>&1 || true
  netns_down "$NS"
  rm -rf "$WORK"
  return 0
}
trap cleanup EXIT
need_bins sluice sluice-probe

netns_up "$NS" 252
ip netns exec "$NS" "$BIN/sluice-probe" serve "$HOST:7100" --async --lines 1 > /dev/null &
SRV_PIDS="$!"
ip netns exec "$NS" "$BIN/sluice-probe" udp-serve "$HOST:7200" > /dev/null &
SRV_PIDS+=" $!"
for _ in $(seq 50); do ip netns exec "$NS" ss -Hlnt "sport = :7100" | grep -q . && break; sleep 0.1; done
mkdir "$CG"
cat > "$WORK/policy.yaml" <<YAML
listen: 127.0.0.1:0
state_dir: $WORK/state
data_dir: $WORK/data
targets:
  - { name: bench-cont-$$, cgroup: ${CG#"$CG_ROOT"/}, egress: deny }
egress:
  allow:
    - { address: $HOST, port: 7100 }
    - { address: $HOST, port: 7200, protocol: udp }
YAML
"$BIN/sluice" run --config "$WORK/policy.yaml" 2> "$WORK/gw.log" &
GW_PID=$!
gw_wait_ready "$WORK/gw.log" "$GW_PID" || { echo "sluice did not become ready:" >&2; tail -20 "$WORK/gw.log" >&2; exit 1; }

json() { grep -o "\"$1\":[0-9.]*" <<<"$2" | cut -d: -f2; }
probe() { # cgroup-or-empty args... -> the probe's JSON line; exits on failure
  local cg=$1 out; shift
  if out=$(timeout "$PROBE_TIMEOUT" "$BIN/sluice-probe" ${cg:+--cgroup "$cg"} "$@" 2>&1) \
      && grep -q '"ok":true' <<<"$out"; then
    echo "$out"
  else
    echo "probe ${cg:+(in cgroup) }$* failed: $out" >&2; exit 1
  fi
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A C_MED C_P99 U_MED U_P99 U_RATE
for round in $(seq "$ROUNDS"); do
  for setup in outside inside; do
    cg=; [ "$setup" = inside ] && cg=$CG
    out=$(probe "$cg" bench-connect "$HOST:7100" "$COUNT" --await-close)
    C_MED[$setup]+="$(json median_us "$out") "; C_P99[$setup]+="$(json p99_us "$out") "
    out=$(probe "$cg" bench-udp "$HOST:7200" "$UDP_COUNT")
    U_MED[$setup]+="$(json median_ns "$out") "; U_P99[$setup]+="$(json p99_ns "$out") "
    U_RATE[$setup]+="$(json per_s "$out") "
  done
done
# Nothing may have been refused: the hooks decided, and let everything through.
if grep -q '"event":"\(egress_denied\|udp_denied\)"\|event=\(egress_denied\|udp_denied\)' "$WORK/gw.log"; then
  echo "containment refused benchmark traffic:" >&2; grep denied "$WORK/gw.log" | head -3 >&2; exit 1
fi

mkdir -p "$OUT"
CSV="$OUT/containment.csv"
echo "setup,connect_median_us,connect_p99_us,udp_sendto_median_ns,udp_sendto_p99_ns,udp_per_s" > "$CSV"
m() { tr ' ' '\n' <<<"$1" | grep . | median; }
printf '%-8s %14s %12s %16s %14s %12s\n' setup "connect med µs" "p99 µs" "sendto med ns" "p99 ns" "datagrams/s"
for s in outside inside; do
  row=("$(m "${C_MED[$s]}")" "$(m "${C_P99[$s]}")" "$(m "${U_MED[$s]}")" "$(m "${U_P99[$s]}")" "$(m "${U_RATE[$s]}")")
  printf '%-8s %14s %12s %16s %14s %12.0f\n' "$s" "${row[@]}"
  echo "$s,${row[0]},${row[1]},${row[2]},${row[3]},${row[4]}" >> "$CSV"
done
echo "(median of $ROUNDS rounds; $COUNT connects and $UDP_COUNT datagrams per setup and round;"
echo " 2 cores shared by the client, sluice and the namespace's servers)"
echo "csv: $CSV"
