#!/usr/bin/env bash
# The sluice demo: an "agent" (curl) wrapped with `sluice exec` is transparently redirected
# through sluice, which prints where it was going and which process made the connection; a
# destination the policy does not list is refused in the kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-netns.sh
BIN=target/debug
WORK=$(mktemp -d /tmp/sluice-demo.XXXXXX)
NS=sldemo
cleanup() {
  [ -n "${SERVER_PID:-}" ] && kill "$SERVER_PID" 2>/dev/null || true
  [ -n "${OTHER_PID:-}" ] && kill "$OTHER_PID" 2>/dev/null || true
  netns_down "$NS"
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "A 'remote' internal API at 169.254.200.2:8080 (a network namespace), and another host service at :9999"
netns_up "$NS" 200
ip netns exec "$NS" "$BIN/sluice-probe" serve 169.254.200.2:8080 --http > "$WORK/api.log" &
SERVER_PID=$!
ip netns exec "$NS" "$BIN/sluice-probe" serve 169.254.200.2:9999 --http > "$WORK/other.log" &
OTHER_PID=$!
sleep 0.5

cat > "$WORK/policy.yaml" <<YAML
listen: 127.0.0.1:15001
state_dir: $WORK/state
targets:
  - name: demo-agent      # a cgroup sluice manages; \`sluice exec\` puts commands in it
    egress: deny          # anything not listed below is refused
resources:
  - name: internal-api
    protocol: tcp
    match:
      - { address: 169.254.200.2, port: 8080 }
YAML
step "Policy"
cat "$WORK/policy.yaml"

step "Without sluice, curl reaches both services directly"
curl -sS http://169.254.200.2:8080/
curl -sS http://169.254.200.2:9999/

step "The same curl commands, wrapped: sluice exec --config policy.yaml -- sh -c 'curl ...; curl ...'"
echo "(nothing in the commands changes; the kernel redirects connect() to sluice)"
"$BIN/sluice" exec --config "$WORK/policy.yaml" -- sh -c '
  echo "--- curl http://169.254.200.2:8080/  (listed resource)"
  curl -sS http://169.254.200.2:8080/
  echo "--- curl http://169.254.200.2:9999/  (not listed; egress: deny)"
  curl -sS -m 3 http://169.254.200.2:9999/ || echo "curl failed: refused by sluice (EPERM)"
' 2> "$WORK/sluice.log"

step "What sluice logged"
grep -E 'redirected connection|egress refused|closed' "$WORK/sluice.log" | sed 's/\x1b\[[0-9;]*m//g'
echo
echo "The API saw its client as the gateway (169.254.200.1), and the refused service saw nothing:"
echo "  api accepted:   $(grep -c accepted "$WORK/api.log") connection(s) ($(grep -o '"accepted":"[^"]*"' "$WORK/api.log" | tail -1))"
echo "  :9999 accepted: $(grep -c accepted "$WORK/other.log") connection(s) (the one made without sluice)"
