#!/usr/bin/env python3
"""Keystroke echo latency of an interactive session (used by bench-ssh.sh). Stdlib only.

usage: pty-echo-rtt.py ROUNDS WARMUP -- ssh -tt ... user@host

Runs the command on a fresh pseudo-terminal (120x40), waits for a shell prompt ("$ "), then
types one character at a time and times until the remote shell's echo of it comes back.
WARMUP round trips are not counted. Prints one line: "ok MEAN_US P50_US P99_US MAX_US N", or
"failed REASON" (exit status 1) with the tail of the terminal output.
"""

import fcntl
import math
import os
import pty
import select
import signal
import struct
import sys
import termios
import time

PROMPT_TIMEOUT = 20.0
ECHO_TIMEOUT = 5.0
# Keystrokes per line before the line is cleared (Ctrl-U): stays on one 120-column row, so
# readline never redraws a wrapped line and every echo is just the typed character.
PER_LINE = 80


def fail(reason, seen=b""):
    tail = seen[-400:].decode("utf-8", "replace")
    print(f"failed {reason}; terminal output ends with: {tail!r}")
    sys.exit(1)


def read_until(fd, needle, timeout, seen):
    """Reads until `needle` is in the bytes read by this call; returns them (or None)."""
    deadline = time.monotonic() + timeout
    got = b""
    while needle not in got:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            return None
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the session ended
            chunk = b""
        if not chunk:
            fail(f"session closed while waiting for {needle!r}", seen + got)
        got += chunk
    return got


def drain(fd, quiet):
    """Reads until nothing arrives for `quiet` seconds."""
    out = b""
    while select.select([fd], [], [], quiet)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


def main():
    args = sys.argv[1:]
    if len(args) < 4 or args[2] != "--":
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    rounds, warmup, argv = int(args[0]), int(args[1]), args[3:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    seen = read_until(fd, b"$ ", PROMPT_TIMEOUT, b"")
    if seen is None:
        fail("no prompt within %.0fs" % PROMPT_TIMEOUT, drain(fd, 0.2))
    # The prompt may come with terminal-mode sequences after it (bracketed paste).
    seen += drain(fd, 0.3)

    samples = []
    typed = 0
    for i in range(warmup + rounds):
        if typed == PER_LINE:
            os.write(fd, b"\x15")
            seen += drain(fd, 0.1)
            typed = 0
        start = time.perf_counter_ns()
        os.write(fd, b"x")
        got = read_until(fd, b"x", ECHO_TIMEOUT, seen)
        elapsed = time.perf_counter_ns() - start
        if got is None:
            fail(f"no echo within {ECHO_TIMEOUT}s (round trip {i})", seen)
        seen = (seen + got)[-4096:]
        typed += 1
        if i >= warmup:
            samples.append(elapsed / 1000.0)

    os.write(fd, b"\x15exit\r")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        drain(fd, 0.05)
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)

    samples.sort()
    n = len(samples)
    # Nearest-rank percentiles.
    pct = lambda p: samples[max(0, math.ceil(p * n) - 1)]
    print("ok %.1f %.1f %.1f %.1f %d" % (sum(samples) / n, pct(0.5), pct(0.99), samples[-1], n))


if __name__ == "__main__":
    main()
