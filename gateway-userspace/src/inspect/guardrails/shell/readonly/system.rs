//! The system: processes, services and logs (storage and host settings are in `host`).

use super::{
    Check::{Always, Custom, Unless},
    Ctx, Entry, Opts, Verdict, verbs,
};
use crate::inspect::guardrails::shell::{
    shutdown::{SYSTEMCTL_LONG_VALUE, SYSTEMCTL_SHORT_VALUE},
    walk::shown,
    words::Arg,
};

pub(super) const ENTRIES: &[Entry] = &[
    Entry {
        names: &["sar"],
        check: Unless(Opts {
            short: "o",
            long: &[],
            short_arg: "fsePnqIuwbBdFHmrRSvWy",
            long_arg: &["dev", "iface", "fs"],
            why: "writes a data file",
        }),
    },
    Entry {
        names: &[
            // processes and the machine
            "ps",
            "pgrep",
            "pidof",
            "pstree",
            "pmap",
            "pwdx",
            "top",
            "free",
            "vmstat",
            "mpstat",
            "iostat",
            "pidstat",
            "uptime",
            "w",
            "who",
            "users",
            "last",
            "lastb",
            "lastlog",
            "id",
            "whoami",
            "groups",
            "logname",
            "uname",
            "arch",
            "nproc",
            "getconf",
            "lscpu",
            "lsmem",
            "lspci",
            "lsusb",
            "lsmod",
            "lsblk",
            "lsns",
            "lslocks",
            "lsipc",
            "lsof",
            "blkid",
            "findmnt",
            "dmidecode",
            "sensors",
            "hostid",
            "tty",
            "locale",
            "printenv",
            "cal",
            "watch",
            "systemd-cgls",
            "systemd-cgtop",
            "systemd-detect-virt",
            "atq",
            "getenforce",
            "sestatus",
            "aa-status",
            "apparmor_status",
            "pvs",
            "vgs",
            "lvs",
            "pvdisplay",
            "vgdisplay",
            "lvdisplay",
            "xfs_info",
            "dumpe2fs",
            "named-checkconf",
            "named-checkzone",
            // the network
            "netstat",
            "ping",
            "ping6",
            "traceroute",
            "traceroute6",
            "tracepath",
            "mtr",
            "dig",
            "host",
            "nslookup",
            "drill",
            "whois",
            "getent",
            // shell builtins that change nothing outside the shell
            "echo",
            "true",
            "false",
            ":",
            "test",
            "[",
            "pwd",
            "cd",
            "pushd",
            "popd",
            "dirs",
            "alias",
            "unalias",
            "unset",
            "hash",
            "type",
            "trap",
            "eval",
            "let",
            "shift",
            "return",
            "break",
            "continue",
            "exit",
            "logout",
            "times",
            "jobs",
            "wait",
            "help",
            "caller",
            "compgen",
            "clear",
            "tput",
            "sleep",
            "yes",
            "seq",
            "expr",
            "factor",
        ],
        check: Always,
    },
    Entry {
        names: &["journalctl"],
        check: Unless(Opts {
            short: "",
            long: &[
                "vacuum-size",
                "vacuum-time",
                "vacuum-files",
                "rotate",
                "flush",
                "sync",
                "relinquish-var",
                "smart-relinquish-var",
                "setup-keys",
                "update-catalog",
                "cursor-file",
            ],
            short_arg: "uptnSUDMocFgT",
            long_arg: &[
                "unit",
                "user-unit",
                "priority",
                "identifier",
                "lines",
                "since",
                "until",
                "directory",
                "file",
                "machine",
                "output",
                "cursor",
                "after-cursor",
                "field",
                "grep",
                "root",
                "image",
                "namespace",
            ],
            why: "deletes, rotates or writes journal files",
        }),
    },
    Entry {
        names: &["dmesg"],
        check: Unless(Opts {
            short: "cCDEn",
            long: &[
                "clear",
                "read-clear",
                "console-off",
                "console-on",
                "console-level",
            ],
            short_arg: "fFls",
            long_arg: &["facility", "file", "level", "buffer-size", "time-format"],
            why: "clears the kernel log or changes the console",
        }),
    },
    Entry {
        names: &["fuser"],
        check: Unless(Opts {
            short: "k",
            long: &["kill"],
            short_arg: "n",
            long_arg: &["namespace"],
            why: "kills processes",
        }),
    },
    Entry {
        names: &["history"],
        check: Unless(Opts {
            short: "wa",
            long: &[],
            short_arg: "d",
            long_arg: &[],
            why: "writes the history file",
        }),
    },
    Entry {
        names: &["systemctl"],
        check: Custom(systemctl),
    },
    Entry {
        names: &[
            "hostnamectl",
            "timedatectl",
            "localectl",
            "loginctl",
            "networkctl",
            "resolvectl",
            "busctl",
            "systemd-analyze",
            "coredumpctl",
            "machinectl",
        ],
        check: Custom(systemd_tool),
    },
];

fn systemctl(_: &Ctx, args: &[Arg]) -> Verdict {
    const READ: &[&str] = &[
        "status",
        "show",
        "cat",
        "help",
        "list-units",
        "list-unit-files",
        "list-sockets",
        "list-timers",
        "list-jobs",
        "list-dependencies",
        "list-machines",
        "list-automounts",
        "list-paths",
        "is-active",
        "is-enabled",
        "is-failed",
        "is-system-running",
        "get-default",
        "show-environment",
    ];
    let ops = match verbs(args, SYSTEMCTL_SHORT_VALUE, SYSTEMCTL_LONG_VALUE) {
        Ok(o) => o,
        Err(v) => return v,
    };
    match ops.first() {
        None => Verdict::Read, // list-units
        Some(v) => match v.exact() {
            Some(verb) if READ.contains(&verb) => Verdict::Read,
            Some(verb) => {
                Verdict::Write(format!("systemctl {verb} changes services or the system"))
            }
            None => Verdict::Unknown(format!(
                "systemctl {}: the verb is only known at run time",
                shown(&v.text)
            )),
        },
    }
}

/// The systemd tools: read-only verbs per tool; no verb means the tool's status listing.
fn systemd_tool(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let (read, with_value): (&[&str], &[&str]) = match ctx.program {
        "hostnamectl" => (
            &["status"],
            &["hostname", "icon-name", "chassis", "deployment", "location"],
        ),
        "timedatectl" => (
            &[
                "status",
                "show",
                "show-timesync",
                "timesync-status",
                "list-timezones",
            ],
            &[],
        ),
        "localectl" => (
            &[
                "status",
                "list-locales",
                "list-keymaps",
                "list-x11-keymap-models",
                "list-x11-keymap-layouts",
                "list-x11-keymap-variants",
                "list-x11-keymap-options",
            ],
            &[],
        ),
        "loginctl" => (
            &[
                "list-sessions",
                "session-status",
                "show-session",
                "list-users",
                "user-status",
                "show-user",
                "list-seats",
                "seat-status",
                "show-seat",
            ],
            &[],
        ),
        "networkctl" => (&["list", "status", "lldp", "label", "cat"], &[]),
        "resolvectl" => (
            &[
                "status",
                "query",
                "statistics",
                "show-cache",
                "show-server-state",
                "service",
            ],
            &[
                "log-level",
                "dns",
                "domain",
                "llmnr",
                "mdns",
                "dnssec",
                "dnsovertls",
                "default-route",
            ],
        ),
        "busctl" => (
            &[
                "list",
                "status",
                "tree",
                "introspect",
                "get-property",
                "monitor",
                "capture",
            ],
            &[],
        ),
        "systemd-analyze" => (
            &[
                "time",
                "blame",
                "critical-chain",
                "plot",
                "dot",
                "dump",
                "cat-config",
                "unit-files",
                "unit-paths",
                "security",
                "verify",
                "calendar",
                "timestamp",
                "timespan",
                "condition",
                "syscall-filter",
                "filesystems",
                "capability",
                "exit-status",
                "architectures",
                "inspect-elf",
                "fdstore",
                "image-policy",
                "pcrs",
                "srk",
                "has-tpm2",
                "smbios11",
            ],
            &["log-level", "log-target", "service-watchdogs"],
        ),
        "coredumpctl" => (&["list", "info"], &[]),
        "machinectl" => (
            &[
                "list",
                "status",
                "show",
                "list-images",
                "image-status",
                "show-image",
            ],
            &[],
        ),
        _ => (&[], &[]),
    };
    let ops = match verbs(
        args,
        "HMpPno",
        &[
            "host", "machine", "property", "lines", "output", "type", "json", "value",
        ],
    ) {
        Ok(o) => o,
        Err(v) => return v,
    };
    let Some(first) = ops.first() else {
        return Verdict::Read;
    };
    match first.exact() {
        Some(v) if read.contains(&v) => Verdict::Read,
        // `hostnamectl hostname` prints it, `hostnamectl hostname NAME` sets it; `resolvectl dns
        // IFACE` lists, with servers after it sets.
        Some(v) if with_value.contains(&v) => {
            let limit = if ctx.program == "resolvectl" && v != "log-level" {
                2
            } else {
                1
            };
            if ops.len() <= limit {
                Verdict::Read
            } else {
                Verdict::Write(format!(
                    "{} {v} with a value changes a setting",
                    ctx.program
                ))
            }
        }
        Some(v) => Verdict::Write(format!("{} {v} changes the system", ctx.program)),
        None => Verdict::Unknown(format!(
            "{} with a verb only known at run time",
            ctx.program
        )),
    }
}
