#!/usr/bin/env bash
# ssh through sluice vs direct, same run, same network path (OpenSSH's sshd in a network
# namespace behind a veth pair; the direct client and sluice both cross it):
#  - throughput: `ssh host 'cat FILE' | wc -c` of a SIZE_MB MiB file, REPEAT runs, median;
#  - keystroke echo latency in an interactive shell (ssh -tt on a pty): ROUNDS round trips of
#    one character after the prompt is ready (WARMUP more, not counted), mean and p99.
# The sluice legs run the client inside the intercepted cgroup, once without and once with the
# audit log (AUDIT_MODES). A sluice leg that fails prints "sluice leg failed: ..." and the
# direct numbers are still reported.
# Bounded: every ssh run has a RUN_TIMEOUT, a leg stops at its first failure; loopback and a
# private namespace only. Writes $OUT/ssh.csv (cargo xtask bench sets OUT).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib-netns.sh
source scripts/lib-gw.sh
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${BIN:-$TARGET/release}
SIZE_MB=${SIZE_MB:-1024}
REPEAT=${REPEAT:-3}
ROUNDS=${ROUNDS:-200}
WARMUP=${WARMUP:-10}
RUN_TIMEOUT=${RUN_TIMEOUT:-30}
AUDIT_MODES=${AUDIT_MODES:-"false true"}
# zeros: a sparse file (no disk, no masking work); text: web-log lines (what an agent cats).
DATA=${DATA:-text}
OUT=${OUT:-$TARGET/bench-results}
SSH_USER=sluicetest
# The integration tests' user and password (tests/src/ssh/mod.rs), set up the same way.
SSH_PASSWORD=sluice-test-password
NS=slbenchssh
HOST=169.254.204.2
WORK=$(mktemp -d /tmp/sluice-bench-ssh.XXXXXX); chmod 755 "$WORK"
CG_ROOT=$(cgroup2_root)
CG="$CG_ROOT/sluice-benchssh-$$"
SSHD_CG="$CG_ROOT/sluice-benchssh-sshd-$$"
cleanup() {
  [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
  kill_cgroup "$CG"
  # sshd's per-connection children outlive the listener: kill the whole cgroup.
  kill_cgroup "$SSHD_CG"
  netns_down "$NS"
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ "${BUILD:-1}" = 1 ]; then
  cargo build --release -p gateway-userspace --bin sluice
fi
need_bins sluice

# The test account, as the integration tests create it (same lock: they may run right now).
flock /tmp/sluice-tests-ssh-user.lock sh -c "
  id -u $SSH_USER >/dev/null 2>&1 || useradd -m -s /bin/bash $SSH_USER
  echo '$SSH_USER:$SSH_PASSWORD' | chpasswd"

netns_up "$NS" 204
# Privilege separation directory: sshd refuses to start without it.
mkdir -p /run/sshd
for k in ssh_host_ed25519_key gateway_key direct_key; do
  ssh-keygen -q -t ed25519 -N '' -C "bench-$k" -f "$WORK/$k"
done
cat "$WORK/gateway_key.pub" "$WORK/direct_key.pub" > "$WORK/authorized_keys"
cat > "$WORK/sshd_config" <<CFG
ListenAddress $HOST:22
HostKey $WORK/ssh_host_ed25519_key
PidFile $WORK/sshd.pid
UsePAM no
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication yes
KbdInteractiveAuthentication no
AuthorizedKeysFile $WORK/authorized_keys
PermitRootLogin no
Subsystem sftp internal-sftp
AllowTcpForwarding yes
PermitTTY yes
PrintMotd no
PrintLastLog no
MaxStartups 100:30:200
LogLevel VERBOSE
CFG
/usr/sbin/sshd -t -f "$WORK/sshd_config"
mkdir "$SSHD_CG" "$CG"
# sshd re-executes itself per connection: absolute path.
( echo "$BASHPID" > "$SSHD_CG/cgroup.procs"
  exec ip netns exec "$NS" /usr/sbin/sshd -D -e -f "$WORK/sshd_config" < /dev/null > /dev/null 2> "$WORK/sshd.log" ) &
# Not a job of ours to report: cleanup kills it on purpose.
disown
for _ in $(seq 100); do grep -q 'Server listening' "$WORK/sshd.log" 2>/dev/null && break; sleep 0.1; done
grep -q 'Server listening' "$WORK/sshd.log" || { echo "sshd did not start:" >&2; cat "$WORK/sshd.log" >&2; exit 1; }
HOST_KEY=$(cut -d' ' -f1,2 "$WORK/ssh_host_ed25519_key.pub")
echo "$HOST $HOST_KEY" > "$WORK/known_hosts.direct"

BLOB="$WORK/blob"
BYTES=$((SIZE_MB * 1024 * 1024))
if [ "$DATA" = zeros ]; then
  truncate -s "$BYTES" "$BLOB"
else
  # `yes` ends on SIGPIPE when head has enough: not a failure.
  { yes '203.0.113.7 - - [23/Nov/2026:12:00:00 +0000] "GET /api/v1/items?page=2 HTTP/1.1" 200 1532 "-" "Mozilla/5.0 (X11; Linux x86_64)" 0.004' || true; } \
    | head -c "$BYTES" > "$BLOB"
fi
chmod 644 "$BLOB"

# Runs a command inside the intercepted cgroup ($1 = cgroup dir, or "" for none).
in_cg() {
  local cg=$1; shift
  ( [ -z "$cg" ] || echo "$BASHPID" > "$cg/cgroup.procs"; exec "$@" )
}
ssh_cmd() { # known_hosts -> the ssh command line (without destination)
  echo ssh -F /dev/null -o BatchMode=yes -o "UserKnownHostsFile=$1" -o GlobalKnownHostsFile=/dev/null \
    -o StrictHostKeyChecking=yes -o UpdateHostKeys=no -o CheckHostIP=no -o ConnectTimeout=5 \
    -o ServerAliveInterval=5 -o ServerAliveCountMax=3 -o IdentityAgent=none -o IdentitiesOnly=yes \
    -o ControlMaster=no -o ControlPath=none -i "$WORK/direct_key" ${CIPHER:+-c $CIPHER}
}
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

declare -A MBS ECHO_MEAN ECHO_P99 FAILED
# One leg: REPEAT transfers, then the echo latency. Sets MBS[leg] etc., or FAILED[leg].
leg() { # name cgroup known_hosts
  local name=$1 cg=$2 kh=$3 rates=() start end got out
  local -a cmd; read -r -a cmd <<< "$(ssh_cmd "$kh")"
  for _ in $(seq "$REPEAT"); do
    start=$(date +%s.%N)
    if ! got=$(in_cg "$cg" timeout "$RUN_TIMEOUT" "${cmd[@]}" "$SSH_USER@$HOST" "cat $BLOB" 2> "$WORK/ssh.err" | wc -c); then
      FAILED[$name]="transfer: $(tail -3 "$WORK/ssh.err" | tr '\n' ' ')(exit status or timeout ${RUN_TIMEOUT}s)"
      return 0
    fi
    end=$(date +%s.%N)
    if [ "$got" -ne "$BYTES" ]; then
      FAILED[$name]="transfer: got $got of $BYTES bytes: $(tail -3 "$WORK/ssh.err" | tr '\n' ' ')"
      return 0
    fi
    rates+=("$(echo "$BYTES / 1000000 / ($end - $start)" | bc -l)")
  done
  MBS[$name]=$(printf '%s\n' "${rates[@]}" | median)
  if ! out=$(in_cg "$cg" timeout "$RUN_TIMEOUT" python3 scripts/pty-echo-rtt.py "$ROUNDS" "$WARMUP" -- \
      "${cmd[@]}" -tt "$SSH_USER@$HOST" 2>&1); then
    FAILED[$name]="echo latency: $(tail -c 600 <<< "$out")"
    return 0
  fi
  read -r _ ECHO_MEAN[$name] _ ECHO_P99[$name] _ _ <<< "$out"
}

LEGS=(direct)
leg direct "" "$WORK/known_hosts.direct"
[ -z "${FAILED[direct]:-}" ] || { echo "direct leg failed: ${FAILED[direct]}" >&2; tail -20 "$WORK/sshd.log" >&2; exit 1; }

GW_PID=
start_gw() { # audit: true|false -> 0 when sluice is ready, else FAILED[$2] set
  rm -rf "$WORK/state" "$WORK/data"
  cat > "$WORK/policy.yaml" <<YAML
listen: 127.0.0.1:0
state_dir: $WORK/state
data_dir: $WORK/data
targets:
  - { name: benchssh-$$, cgroup: ${CG#$CG_ROOT/}, egress: allow }
resources:
  - name: bench-ssh
    protocol: ssh
    match:
      - { address: "$HOST", port: 22 }
    credentials:
      mode: inject
      user: $SSH_USER
      key: { file: $WORK/gateway_key }
    ssh:
      host_keys: ["$HOST_KEY"]
audit: { enabled: $1 }
YAML
  : > "$WORK/gw.log"
  # Ready means attached: the target's lease file exists earlier, while connects still go
  # straight to the host.
  RUST_LOG=info "$BIN/sluice" run --config "$WORK/policy.yaml" 2>> "$WORK/gw.log" &
  GW_PID=$!
  if ! gw_wait_ready "$WORK/gw.log" "$GW_PID"; then
    FAILED[$2]="sluice run did not become ready: $(tail -5 "$WORK/gw.log" | tr '\n' ' ')"
    stop_gw; return 1
  fi
  # The agent trusts the gateway's host key, as printed for its known_hosts.
  if ! "$BIN/sluice" ssh known-hosts --config "$WORK/policy.yaml" > "$WORK/known_hosts.sluice" 2> "$WORK/kh.err" \
      || ! grep -q "^$HOST " "$WORK/known_hosts.sluice"; then
    FAILED[$2]="sluice ssh known-hosts gave no line for $HOST: $(head -3 "$WORK/kh.err" "$WORK/known_hosts.sluice" | tr '\n' ' ')"
    stop_gw; return 1
  fi
}
stop_gw() { [ -z "$GW_PID" ] || { kill "$GW_PID" 2>/dev/null; wait "$GW_PID" 2>/dev/null || true; GW_PID=; }; return 0; }

for audit in $AUDIT_MODES; do
  name="sluice-audit-$audit"
  LEGS+=("$name")
  if start_gw "$audit" "$name"; then
    leg "$name" "$CG" "$WORK/known_hosts.sluice"
    stop_gw
  fi
  [ -z "${FAILED[$name]:-}" ] || echo "sluice leg failed: $name: ${FAILED[$name]}"
done

mkdir -p "$OUT"
CSV="$OUT/ssh.csv"
echo "setup,metric,value,unit,ratio_vs_direct,status,size_mib,repeat,rounds,data" > "$CSV"
ratio() { echo "$1 / $2" | bc -l; }
echo
echo "ssh, $SIZE_MB MiB of $DATA (median of $REPEAT) and $ROUNDS keystroke echoes (after $WARMUP warm-up)"
printf '%-22s %12s %7s %13s %7s %13s %7s\n' setup "cat MB/s" ratio "echo mean µs" ratio "echo p99 µs" ratio
for name in "${LEGS[@]}"; do
  if [ -n "${FAILED[$name]:-}" ]; then
    printf '%-22s %12s\n' "$name" "failed"
    for m in throughput echo_mean echo_p99; do
      echo "$name,$m,,,,failed,$SIZE_MB,$REPEAT,$ROUNDS,$DATA" >> "$CSV"
    done
    continue
  fi
  t=${MBS[$name]} e=${ECHO_MEAN[$name]} p=${ECHO_P99[$name]}
  rt=$(ratio "$t" "${MBS[direct]}") re=$(ratio "$e" "${ECHO_MEAN[direct]}") rp=$(ratio "$p" "${ECHO_P99[direct]}")
  printf '%-22s %12.1f %7.2f %13.1f %7.2f %13.1f %7.2f\n' "$name" "$t" "$rt" "$e" "$re" "$p" "$rp"
  printf '%s,throughput,%.1f,MB/s,%.3f,ok,%s,%s,%s,%s\n' "$name" "$t" "$rt" "$SIZE_MB" "$REPEAT" "$ROUNDS" "$DATA" >> "$CSV"
  printf '%s,echo_mean,%.1f,us,%.3f,ok,%s,%s,%s,%s\n' "$name" "$e" "$re" "$SIZE_MB" "$REPEAT" "$ROUNDS" "$DATA" >> "$CSV"
  printf '%s,echo_p99,%.1f,us,%.3f,ok,%s,%s,%s,%s\n' "$name" "$p" "$rp" "$SIZE_MB" "$REPEAT" "$ROUNDS" "$DATA" >> "$CSV"
done
echo "(MB = 10^6 bytes; ratio = setup / direct: below 1 is slower for MB/s, above 1 is slower for µs)"
echo "csv: $CSV"
