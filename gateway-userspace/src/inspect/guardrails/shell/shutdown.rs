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
            let s = scan_options(
                args,
                "tpsnoHM",
                &[
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
                ],
            );
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
            // is a PID, `-1` included (every process).
            let mut signal_zero = false;
            let mut i = 0;
            if let Some(first) = args.first().and_then(|a| a.exact()) {
                match first {
                    "-l" | "-L" | "--list" | "--table" => return,
                    "-s" | "-n" => {
                        signal_zero = args.get(1).and_then(|a| a.exact()) == Some("0");
                        i = 2;
                    }
                    "--" => i = 1,
                    f if f.starts_with('-') && f.len() > 1 => {
                        signal_zero = f == "-0";
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
                .find(|a| matches!(a.exact(), Some("1" | "-1")));
            if let Some(pid) = init
                && !signal_zero
            {
                let whom = if pid.text == "1" {
                    "init (PID 1), which stops the host"
                } else {
                    "every process (PID -1)"
                };
                w.find(R::Shutdown, format!("{} signals {whom}", text()));
            }
        }
        _ => {}
    }
}
