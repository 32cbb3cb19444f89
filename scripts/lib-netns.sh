# Shared by the demo and benchmark scripts: a network namespace joined to the host by a veth
# pair, standing in for a remote host. Link-local addresses: never routed anywhere.
# usage: netns_up NAME N  -> host 169.254.N.1, peer 169.254.N.2 ; netns_down NAME
netns_up() {
  local ns=$1 n=$2
  netns_down "$ns"
  ip netns add "$ns"
  ip link add "${ns}h" type veth peer name "${ns}p"
  ip link set "${ns}p" netns "$ns"
  ip addr add "169.254.$n.1/30" dev "${ns}h"
  ip link set "${ns}h" up
  ip -n "$ns" addr add "169.254.$n.2/30" dev "${ns}p"
  ip -n "$ns" link set "${ns}p" up
  ip -n "$ns" link set lo up
}
netns_down() {
  ip link del "${1}h" 2>/dev/null || true
  ip netns del "$1" 2>/dev/null || true
}

# The cgroup v2 mount: pure v2 at /sys/fs/cgroup, or hybrid at /sys/fs/cgroup/unified.
cgroup2_root() {
  awk '$3=="cgroup2"{print $2}' /proc/self/mounts | grep -E '^/sys/fs/cgroup(/unified)?$' | head -1
}

# Kills whatever is left in a cgroup and removes it. Explicit `return 0`s: a bare `return` in an
# EXIT trap returns the status of the command that failed before the trap, and errexit would then
# end the cleanup halfway.
kill_cgroup() {
  [ -d "$1" ] || return 0
  echo 1 > "$1/cgroup.kill" 2>/dev/null || true
  for _ in $(seq 50); do rmdir "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 0
}
