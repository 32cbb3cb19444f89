#!/usr/bin/env bash
# Installs everything sluice needs to build, test and demo on Debian 12, as root.
# Idempotent: every step checks first, so re-running costs seconds.
set -euo pipefail

log() { printf '[setup] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: must run as root (it installs packages, mounts bpffs and loads eBPF)" >&2
  exit 1
fi

# Debian packages: build deps, test peers (PostgreSQL, OpenSSH, rsyslog), network tooling for
# the namespace-based tests.
APT_PACKAGES=(
  pkg-config iproute2 procps psmisc curl ca-certificates openssl bc
  libhyperscan-dev libsqlite3-dev
  postgresql postgresql-contrib postgresql-client pgbouncer
  # SSH tests and bench-ssh.sh run their own sshd in a namespace; asciinema plays the
  # gateway's session recordings back; sshpass drives password logins non-interactively.
  openssh-server openssh-client asciinema sshpass
  # The audit syslog sink's live test runs its own rsyslogd (tests/tests/audit_syslog.rs).
  rsyslog
  # bench-redirect.sh compares sluice with an nftables REDIRECT to a transparent relay.
  nftables
  # The approvals web page's browser test: Debian's Chromium (playwright-core brings no browser
  # and cannot download one here) and a font so screenshots are legible.
  chromium fonts-dejavu-core
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's postgresql/openssh postinst scripts start their services through invoke-rc.d (or
  # deb-systemd-invoke): without systemd that would run the init script and leave a host sshd
  # on :22, with systemd it would start ssh.service. Tests start their own instances, so deny
  # every start for the duration of the install (exit 101 = "action forbidden"). A policy-rc.d
  # that was already there (container images ship one) is kept as it is.
  own_policy_rc=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    own_policy_rc=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  # A freshly installed sshd must not start at the next boot either: Debian's unit and init
  # script skip it while this file exists (an sshd the machine already had stays untouched).
  if [[ " ${missing[*]} " == *" openssh-server "* ]]; then
    mkdir -p /etc/ssh && touch /etc/ssh/sshd_not_to_be_run
    log "the host's ssh service stays off (/etc/ssh/sshd_not_to_be_run; delete it to enable)"
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [ -n "$own_policy_rc" ]; then rm -f /usr/sbin/policy-rc.d; trap - EXIT; fi
else
  log "apt packages present"
fi
# The SSH tests' sshd runs in a namespace and never needs the host's :22; say so if something
# else holds it (someone's real sshd: not ours to stop).
if ss -Hltn 'sport = :22' 2>/dev/null | grep -q .; then
  log "note: something listens on the host's port 22; the SSH tests do not use it"
fi

# Rust: the eBPF crate builds with nightly + rust-src; bpf-linker must be linked against
# that nightly's own libLLVM (Debian's LLVM cannot read its bitcode).
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup +nightly component list --installed | grep -q '^rust-src' || rustup +nightly component add rust-src

LLVM_MAJOR="$(rustc +nightly -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
LIBDIR="$(rustc +nightly --print sysroot)/lib"
LLVMLIB="$(basename "$(ls "$LIBDIR"/libLLVM-"$LLVM_MAJOR"-rust-*.so | head -n1)" .so)"
LLVMLIB="${LLVMLIB#lib}"
if bpf-linker --version >/dev/null 2>&1; then
  log "bpf-linker present: $(bpf-linker --version)"
else
  log "building bpf-linker 0.13.0 against $LLVMLIB"
  RUSTFLAGS="-L native=$LIBDIR -l dylib=$LLVMLIB -C link-arg=-Wl,-rpath,$LIBDIR" \
    cargo +stable install bpf-linker --version 0.13.0 --locked --force \
      --no-default-features --features "llvm-$LLVM_MAJOR,no-llvm-linking"
fi

# Node.js runs the real OpenID Connect provider (tests/oidc) and drives Chromium in the browser
# test (tests/browser). The machine's node and npm are used (playwright-core needs Node >= 20);
# Debian's are a fallback when there are none.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  log "apt-get install nodejs npm"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
fi
ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for project in oidc browser; do
  dir="$ROOT_DIR/tests/$project"
  # `npm ci` wipes node_modules: only when it is missing or older than the lock file.
  if [ ! -f "$dir/node_modules/.package-lock.json" ] \
    || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "npm ci in tests/$project"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  else
    log "tests/$project node_modules up to date"
  fi
done

# `sluice exec` refuses to run an agent as root: tests and the demo run theirs as this user.
if ! id -u sluice-agent >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin sluice-agent
  log "created user sluice-agent"
fi

mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
log "bpffs mounted"

# An unprivileged account for tests that run a process as another user than the gateway's
# (an agent, an impostor squatting the approval socket). No home, no login shell.
if ! id -u sluice-agent >/dev/null 2>&1; then
  useradd --system --no-create-home --shell /usr/sbin/nologin sluice-agent
  log "created user sluice-agent"
fi

# cgroup v2 must be reachable (pure v2 at /sys/fs/cgroup or hybrid at /sys/fs/cgroup/unified).
if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ] && ! mountpoint -q /sys/fs/cgroup/unified; then
  echo "setup: no cgroup v2 hierarchy found (need /sys/fs/cgroup or /sys/fs/cgroup/unified)" >&2
  exit 1
fi
log "done"
