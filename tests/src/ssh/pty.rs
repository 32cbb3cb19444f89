//! A pseudo-terminal driver for interactive sessions: send keystrokes, expect output.

use std::{
    ffi::OsStr,
    fs::File,
    io::{Read, Write},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::process::CommandExt,
    },
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

use super::log_tail;
use crate::client_command;

/// Window size every [`PtyClient`] starts with.
pub const PTY_COLS: u16 = 120;
pub const PTY_ROWS: u16 = 40;

/// Output read from the pty master by a background thread.
#[derive(Default)]
struct PtyOutput {
    data: Vec<u8>,
    /// The slave side is closed everywhere (Linux: the master reads EIO).
    closed: bool,
}

/// A program on a fresh pseudo-terminal (its controlling terminal, 120x40, `TERM=xterm`), like
/// a person at a terminal: send keystrokes, expect output. Killed on drop.
pub struct PtyClient {
    child: Child,
    master: File,
    output: Arc<(Mutex<PtyOutput>, Condvar)>,
    /// Bytes already returned by `expect`.
    consumed: usize,
    argv: Vec<String>,
    /// Logs whose tail goes into every panic (e.g. sshd's).
    logs: Vec<PathBuf>,
    status: Option<ExitStatus>,
}

impl PtyClient {
    /// Starts `argv` inside `cgroup` (through `sluice-probe --cgroup DIR run`), as an agent's
    /// terminal session.
    pub fn spawn_in(cgroup: &Path, argv: &[impl AsRef<OsStr>]) -> PtyClient {
        Self::spawn_with(Some(cgroup), &[], argv)
    }

    /// Starts `argv` outside any test cgroup: a direct baseline.
    pub fn spawn(argv: &[impl AsRef<OsStr>]) -> PtyClient {
        Self::spawn_with(None, &[], argv)
    }

    /// Starts `argv` with extra environment variables, in `cgroup` if given.
    pub fn spawn_with(
        cgroup: Option<&Path>,
        env: &[(&str, &str)],
        argv: &[impl AsRef<OsStr>],
    ) -> PtyClient {
        assert!(!argv.is_empty(), "PtyClient needs a program");
        let (master, slave) = open_pty(PTY_COLS, PTY_ROWS);
        let mut cmd = match cgroup {
            Some(dir) => client_command(dir, argv),
            None => {
                let mut c = Command::new(argv[0].as_ref());
                c.args(&argv[1..]);
                c
            }
        };
        cmd.env("TERM", "xterm")
            .envs(env.iter().copied())
            .stdin(Stdio::from(slave.try_clone().expect("dup pty slave")))
            .stdout(Stdio::from(slave.try_clone().expect("dup pty slave")))
            .stderr(Stdio::from(slave));
        // SAFETY: only async-signal-safe calls between fork and exec. A new session without a
        // terminal, then the slave (already on fd 0: std sets up stdio before pre_exec) becomes
        // its controlling terminal, so ssh reads keystrokes from it, gets SIGWINCH and
        // job-control signals, and `ssh -t` sees a tty on stdin.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?} on a pty: {e}"));
        // `cmd` held the parent's copies of the slave: dropping it lets the master see the end
        // of output (EIO) once the program and its children have exited.
        drop(cmd);

        let output = Arc::new((Mutex::new(PtyOutput::default()), Condvar::new()));
        let mut reader = master.try_clone().expect("dup pty master");
        let shared = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => 0,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    // EIO: every slave descriptor is closed.
                    Err(_) => 0,
                };
                let (lock, cv) = &*shared;
                let mut out = lock.lock().unwrap();
                if n == 0 {
                    out.closed = true;
                    cv.notify_all();
                    return;
                }
                out.data.extend_from_slice(&buf[..n]);
                cv.notify_all();
            }
        });
        PtyClient {
            child,
            master,
            output,
            consumed: 0,
            argv: argv
                .iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect(),
            logs: Vec::new(),
            status: None,
        }
    }

    /// Adds a log file (e.g. [`SshServer::log_path`]) whose tail every panic shows.
    pub fn with_log(mut self, path: impl AsRef<Path>) -> PtyClient {
        self.logs.push(path.as_ref().to_path_buf());
        self
    }

    /// The process id (of the program itself: sluice-probe execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Types `bytes` (no newline added).
    pub fn send(&mut self, bytes: &[u8]) {
        if let Err(e) = self
            .master
            .write_all(bytes)
            .and_then(|()| self.master.flush())
        {
            self.fail(&format!("writing {:?} to the pty: {e}", printable(bytes)));
        }
    }

    /// Types `line` and Enter (a carriage return, as a terminal sends it).
    pub fn send_line(&mut self, line: &str) {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\r');
        self.send(&bytes);
    }

    /// Waits for `needle` in the output not yet consumed; returns that output up to and
    /// including the match (lossy UTF-8, escape sequences left in) and consumes it. Panics with
    /// the whole output and the attached logs on timeout or if the terminal closes first.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let needle_bytes = needle.as_bytes();
        let output = self.output.clone();
        let (lock, cv) = &*output;
        let mut out = lock.lock().unwrap();
        loop {
            if let Some(pos) = find(&out.data[self.consumed..], needle_bytes) {
                let end = self.consumed + pos + needle_bytes.len();
                let text = String::from_utf8_lossy(&out.data[self.consumed..end]).into_owned();
                self.consumed = end;
                return text;
            }
            let now = Instant::now();
            let why = if out.closed {
                Some(format!("the terminal closed before {needle:?} appeared"))
            } else if now >= deadline {
                Some(format!("{needle:?} did not appear within {timeout:?}"))
            } else {
                None
            };
            if let Some(why) = why {
                drop(out);
                self.fail(&why);
            }
            out = cv.wait_timeout(out, deadline - now).unwrap().0;
        }
    }

    /// Everything the program wrote so far (consumed or not), lossy UTF-8.
    pub fn output_so_far(&self) -> String {
        String::from_utf8_lossy(&self.output.0.lock().unwrap().data).into_owned()
    }

    /// Sets the terminal size; the kernel sends SIGWINCH to the program (ssh forwards it as a
    /// `window-change` request).
    pub fn resize(&mut self, cols: u16, rows: u16) {
        let ws = winsize(cols, rows);
        // SAFETY: TIOCSWINSZ with a valid winsize on our own master descriptor.
        if unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } == -1 {
            let e = std::io::Error::last_os_error();
            self.fail(&format!("TIOCSWINSZ {cols}x{rows}: {e}"));
        }
    }

    /// Waits for the program to exit; panics (and kills it) after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    self.status = Some(s);
                    return s;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => self.fail(&format!("still running after {timeout:?}")),
                Err(e) => self.fail(&format!("waiting: {e}")),
            }
        }
    }

    /// Panics with the program's command line, its whole output and the attached logs.
    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let mut msg = format!(
            "pty client {:?}: {why}\n--- terminal output ---\n{}\n--- end of output ---",
            self.argv,
            printable(&self.output.0.lock().unwrap().data)
        );
        for log in &self.logs {
            msg.push_str(&format!(
                "\n--- {} ---\n{}",
                log.display(),
                log_tail(log, 60)
            ));
        }
        panic!("{msg}");
    }
}

impl Drop for PtyClient {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn winsize(cols: u16, rows: u16) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// A pty pair with the given window size, both ends close-on-exec (the child gets the slave
/// through dup2, which clears the flag; it must not inherit the master).
fn open_pty(cols: u16, rows: u16) -> (File, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let ws = winsize(cols, rows);
    // SAFETY: openpty writes two descriptors; name and termios may be null.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &ws,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    for fd in [master, slave] {
        // SAFETY: fcntl on descriptors openpty just returned.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: both descriptors are fresh and owned by nothing else.
    unsafe { (File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Terminal output made safe to print in a panic: control bytes (escape sequences) escaped,
/// newlines kept.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}
