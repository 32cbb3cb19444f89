# Shared by the benchmark scripts: waiting for a started `sluice run` to be attached.
# Ready means attached: the target's lease file exists earlier, while connects still go straight
# to the resource. gw_wait_ready LOG PID -> 0 once LOG has the "gateway ready" line; 1 when the
# gateway exited first or 10 s passed.
gw_wait_ready() {
  local log=$1 pid=$2
  for _ in $(seq 100); do
    grep -q "gateway ready" "$log" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q "gateway ready" "$log"
}

# need_bins NAME... : each must be an executable in $BIN, else say how to get it and exit.
need_bins() {
  local b
  for b in "$@"; do
    [ -x "$BIN/$b" ] || { echo "no $BIN/$b: build it or set BIN" >&2; exit 1; }
  done
}
