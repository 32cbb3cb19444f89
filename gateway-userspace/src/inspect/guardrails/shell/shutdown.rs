//! `shutdown`: stopping or restarting the host (and signalling init or every process).

use super::{
    ShellRuleId as R,
    walk::{Walker, shown},
    words::Arg,
    wrappers::scan_options,
};

// ---------------------------------------------------------------------------------------------
// shutdown

pub(super) const STOP_TARGETS: &[&str] = &[
    "reboot",
    "poweroff",
    "halt",
    "kexec",
    "emergency",
    "rescue",
    "shutdown",
    "soft-reboot",
    "ctrl-alt-del",
    "suspend",
    "hibernate",
    "hybrid-sleep",
    "suspend-then-hibernate",
];

/// systemctl's options that take a value (`-t service`, `--job-mode fail`): the word after one
/// is its value, not the verb. The read-only list reads systemctl's arguments with the same list.
pub(super) const SYSTEMCTL_SHORT_VALUE: &str = "tpsnoHM";
pub(super) const SYSTEMCTL_LONG_VALUE: &[&str] = &[
    "type",
    "property",
    "signal",
    "lines",
    "output",
    "host",
    "machine",
    "root",
    "job-mode",
    "kill-whom",
    "kill-value",
    "boot-loader-entry",
    "boot-loader-menu",
    "reboot-argument",
    "when",
    "what",
    "state",
    "message",
    "image",
    "timestamp",
    "preset-mode",
    "drop-in",
    "legend",
];

pub(super) fn shutdown(w: &mut Walker, program: &str, args: &[Arg]) {
    let text = || {
        let words: Vec<&str> = args.iter().map(|a| a.text.as_str()).collect();
        shown(format!("{program} {}", words.join(" ")).trim_end())
    };
    match program {
        "shutdown" | "reboot" | "halt" | "poweroff" => {
            let harmless = !args.is_empty()
                && args
                    .iter()
                    .all(|a| matches!(a.exact(), Some("-c" | "--help" | "--version")));
            if !harmless {
                w.find(R::Shutdown, format!("{} stops the host", text()));
            }
        }
        "init" | "telinit" => {
            let level = args.iter().find(|a| !a.is_option());
            if let Some(level) = level
                && !matches!(
                    level.exact(),
                    Some("q" | "Q" | "u" | "U" | "2" | "3" | "4" | "5")
                )
            {
                w.find(R::Shutdown, format!("{} changes the runlevel", text()));
            }
        }
        "systemctl" => {
            let s = scan_options(args, SYSTEMCTL_SHORT_VALUE, SYSTEMCTL_LONG_VALUE);
            let Some(verb) = args.get(s.operand) else {
                return;
            };
            let units = || args[s.operand + 1..].iter();
            let stops = match verb.exact() {
                None => true,
                Some(v) if STOP_TARGETS.contains(&v) => true,
                Some("isolate" | "start" | "restart" | "reload-or-restart" | "try-restart") => {
                    units().any(|u| {
                        u.exact().is_none_or(|u| {
                            STOP_TARGETS.contains(&u.strip_suffix(".target").unwrap_or(u))
                                && (u.ends_with(".target") || verb.exact() == Some("isolate"))
                        })
                    })
                }
                Some(_) => false,
            };
            if stops {
                w.find(
                    R::Shutdown,
                    format!("{} stops or restarts the host", text()),
                );
            }
        }
        "kill" => {
            // `kill [-s SIG | -n NUM | -SIG] [--] PID...`: once the signal is read, every word
            // is a PID, `-1` included (every process). bash and procps read numbers leniently
            // (`01`, `' 1'`, `+1`, `-01`): compared as numbers.
            let mut signal_zero = false;
            let mut i = 0;
            if let Some(first) = args.first().and_then(|a| a.exact()) {
                match first {
                    "-l" | "-L" | "--list" | "--table" => return,
                    "-s" | "-n" | "--signal" => {
                        signal_zero =
                            args.get(1).and_then(|a| a.exact()).and_then(number) == Some(0);
                        i = 2;
                    }
                    "--" => i = 1,
                    f if f.starts_with('-') && f.len() > 1 => {
                        signal_zero = number(&f[1..]) == Some(0);
                        i = 1;
                    }
                    _ => {}
                }
            }
            if args.get(i).and_then(|a| a.exact()) == Some("--") {
                i += 1;
            }
            let init = args[i.min(args.len())..]
                .iter()
                .find_map(|a| a.exact().and_then(number).filter(|n| *n == 1 || *n == -1));
            if let Some(pid) = init
                && !signal_zero
            {
                let whom = if pid == 1 {
                    "init (PID 1), which stops the host"
                } else {
                    "every process (PID -1)"
                };
                w.find(R::Shutdown, format!("{} signals {whom}", text()));
            }
        }
        "killall5" if !args.iter().any(|a| a.exact() == Some("-0")) => {
            w.find(R::Shutdown, format!("{} signals every process", text()));
        }
        "pkill" | "killall" => {
            let s = scan_options(
                args,
                "uUgGPstFnrZ",
                &[
                    "signal",
                    "euid",
                    "uid",
                    "pgroup",
                    "group",
                    "parent",
                    "session",
                    "terminal",
                    "pidfile",
                    "ns",
                    "nslist",
                    "older-than",
                    "younger-than",
                    "user",
                    "context",
                ],
            );
            let by_owner = [
                "u", "U", "g", "G", "s", "t", "euid", "uid", "user", "group", "session", "terminal",
            ]
            .iter()
            .any(|k| s.value(k, k).is_some());
            let patterns: Vec<&Arg> = args[s.operand..].iter().collect();
            let everything = patterns.iter().any(|p| {
                p.exact().is_some_and(|t| {
                    let t = t.trim_matches(['^', '$']);
                    matches!(t, "" | "." | ".*" | ".+" | "init" | "systemd")
                })
            });
            if everything || (patterns.is_empty() && by_owner) {
                w.find(
                    R::Shutdown,
                    format!("{} signals init or every process it matches", text()),
                );
            }
        }
        "loginctl" => {
            let verb = args.iter().find(|a| !a.is_option()).and_then(|a| a.exact());
            if let Some(v) = verb
                && STOP_TARGETS.contains(&v)
            {
                w.find(
                    R::Shutdown,
                    format!("{} stops or restarts the host", text()),
                );
            }
        }
        "kexec"
            if args.iter().any(|a| {
                matches!(a.exact(), Some("-e" | "--exec" | "-f" | "--force"))
                    || a.exact().is_some_and(|t| {
                        t.starts_with('-') && !t.starts_with("--") && t.contains(['e', 'f'])
                    })
            }) =>
        {
            w.find(R::Shutdown, format!("{} boots another kernel now", text()));
        }
        // D-Bus calls to logind's or systemd's power methods.
        "dbus-send" | "busctl" | "gdbus" | "qdbus" => {
            const METHODS: &[&str] = &[
                "PowerOff",
                "Reboot",
                "Halt",
                "KExec",
                "PowerOffWithFlags",
                "RebootWithFlags",
                "HaltWithFlags",
                "KExecWithFlags",
                "SoftReboot",
            ];
            let calls = args.iter().filter_map(|a| a.exact()).any(|t| {
                let method = t.rsplit('.').next().unwrap_or(t);
                METHODS.contains(&method)
            });
            if calls {
                w.find(
                    R::Shutdown,
                    format!("{} asks the system to stop or restart", text()),
                );
            }
        }
        _ => {}
    }
}

/// A number as `kill` reads it: blanks around it, a sign, decimal digits (`' 01'` is 1).
fn number(t: &str) -> Option<i64> {
    let t = t.trim_matches([' ', '\t', '\n']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    let n: i64 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    Some(if neg { -n } else { n })
}
