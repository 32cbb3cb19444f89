#!/usr/bin/env bash
# connect() latency: a client outside any intercepted cgroup vs the same client inside one
# (redirected to sluice), same run. Median and p99 of COUNT connects each; loopback and a
# private network namespace only.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-netns.sh
BIN=${BIN:-target/release}
COUNT=${COUNT:-5000}
WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
NS=slbench
CG_ROOT=$(cgroup2_root)
CG="$CG_ROOT/sluice-bench-$$"
cleanup() {
  [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
  [ -n "${SRV_PID:-}" ] && kill "$SRV_PID" 2>/dev/null || true
  [ -n "${SRV2_PID:-}" ] && kill "$SRV2_PID" 2>/dev/null || true
  rmdir "$CG" 2>/dev/null || true
  netns_down "$NS"
  rm -rf "$WORK"
}
trap cleanup EXIT

netns_up "$NS" 201
ip netns exec "$NS" "$BIN/sluice-probe" serve 169.254.201.2:7000 > /dev/null &
SRV_PID=$!
ip netns exec "$NS" "$BIN/sluice-probe" serve 169.254.201.2:7001 > /dev/null &
SRV2_PID=$!
mkdir "$CG"
cat > "$WORK/policy.yaml" <<YAML
listen: 127.0.0.1:0
state_dir: $WORK/state
data_dir: $WORK/data
targets:
  - { name: bench-$$, cgroup: ${CG#$CG_ROOT/}, egress: allow }
resources:
  - { name: echo, protocol: tcp, match: [{ address: 169.254.201.2, port: 7000 }] }
YAML
wait_port() { for _ in $(seq 50); do ip netns exec "$NS" ss -Hlnt "sport = :$1" | grep -q . && return; sleep 0.1; done; echo "server :$1 did not start" >&2; exit 1; }
wait_port 7000; wait_port 7001
RUST_LOG=warn "$BIN/sluice" run --config "$WORK/policy.yaml" 2> "$WORK/gw.log" &
GW_PID=$!
for _ in $(seq 100); do [ -f "$WORK/state/targets/bench-$$.json" ] && break; sleep 0.1; done
[ -f "$WORK/state/targets/bench-$$.json" ] || { cat "$WORK/gw.log"; exit 1; }

bench() {
  local out median p99
  out=$("$BIN/sluice-probe" "$@")
  median=$(grep -o '"median_us":[0-9.]*' <<<"$out" | cut -d: -f2)
  p99=$(grep -o '"p99_us":[0-9.]*' <<<"$out" | cut -d: -f2)
  [ -n "$median" ] || { echo "probe failed: $out" >&2; exit 1; }
  printf '%8.1f %8.1f' "$median" "$p99"
}
printf '%-62s %8s %8s\n' "connect() latency, $COUNT connects each" "median" "p99 (µs)"
printf '%-62s %s\n' "outside the cgroup, unlisted :7001 (baseline, no eBPF)" "$(bench bench-connect 169.254.201.2:7001 "$COUNT")"
printf '%-62s %s\n' "inside, unlisted :7001 (eBPF lookup, passed through)" "$(bench --cgroup "$CG" bench-connect 169.254.201.2:7001 "$COUNT")"
printf '%-62s %s\n' "outside the cgroup, resource :7000 direct" "$(bench bench-connect 169.254.201.2:7000 "$COUNT")"
printf '%-62s %s\n' "inside, resource :7000 (redirected to sluice)" "$(bench --cgroup "$CG" bench-connect 169.254.201.2:7000 "$COUNT")"
