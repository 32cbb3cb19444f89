//! The system: processes, services and logs, the network, storage, host settings, and the
//! shell's own builtins.

use super::{
    Check::{Always, Custom, Unless},
    Ctx, Entry, Found, Opts, Verdict, find_option, nth, operands,
};
use crate::inspect::guardrails::shell::{
    editing::changes_line_editing,
    names::{Exported, env_risk},
    walk::shown,
    words::Arg,
};

pub(super) const ENTRIES: &[Entry] = &[
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
        names: &["ss"],
        check: Unless(Opts {
            short: "KD",
            long: &["kill", "diag"],
            short_arg: "AfF",
            long_arg: &["query", "socket", "family", "filter"],
            why: "kills sockets or writes a file",
        }),
    },
    Entry {
        names: &["arp"],
        check: Unless(Opts {
            short: "sdf",
            long: &["set", "delete", "file"],
            short_arg: "iHA",
            long_arg: &["device", "hw-type"],
            why: "changes the ARP table",
        }),
    },
    Entry {
        names: &["tcpdump"],
        check: Unless(Opts {
            short: "wWCGz",
            long: &[],
            short_arg: "icsrFyTEMjBmQZV",
            long_arg: &["interface", "snapshot-length", "time-stamp-type"],
            why: "writes capture files or runs a command on them",
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
    Entry {
        names: &["ip"],
        check: Custom(ip),
    },
    Entry {
        names: &[
            "iptables",
            "ip6tables",
            "iptables-legacy",
            "ip6tables-legacy",
            "iptables-nft",
            "ip6tables-nft",
        ],
        check: Custom(iptables),
    },
    Entry {
        names: &[
            "iptables-save",
            "ip6tables-save",
            "nft",
            "tc",
            "ethtool",
            "route",
            "conntrack",
            "iw",
            "nmcli",
        ],
        check: Custom(network_tool),
    },
    Entry {
        names: &["nc", "ncat", "netcat"],
        check: Custom(nc),
    },
    Entry {
        names: &[
            "fdisk", "sfdisk", "parted", "sgdisk", "gdisk", "mdadm", "smartctl", "tune2fs",
            "zpool", "zfs", "btrfs",
        ],
        check: Custom(storage),
    },
    Entry {
        names: &["date"],
        check: Custom(date),
    },
    Entry {
        names: &["hostname"],
        check: Custom(hostname),
    },
    Entry {
        names: &["sysctl"],
        check: Custom(sysctl),
    },
    Entry {
        names: &["mount", "swapon"],
        check: Custom(mount),
    },
    Entry {
        names: &["kill"],
        check: Custom(kill),
    },
    Entry {
        names: &["fc"],
        check: Custom(fc),
    },
    Entry {
        names: &["ulimit", "umask"],
        check: Custom(limits),
    },
    Entry {
        names: &["set", "shopt", "bind", "stty"],
        check: Custom(shell_settings),
    },
    Entry {
        names: &["export", "declare", "typeset", "local", "readonly"],
        check: Custom(declaration),
    },
    Entry {
        names: &["read", "mapfile", "readarray", "printf", "getopts"],
        check: Custom(variable_target),
    },
];

/// The subcommand (first operand) and the ones after it, for tools whose options may come
/// anywhere.
fn verbs<'a>(args: &'a [Arg], short_arg: &str, long_arg: &[&str]) -> Result<Vec<&'a Arg>, Verdict> {
    if let Some(a) = args
        .iter()
        .find(|a| a.exact().is_none() && a.may_be_option())
    {
        return Err(Verdict::Unknown(format!(
            "an argument only known at run time ({}) may change what it does",
            shown(&a.text)
        )));
    }
    Ok(operands(args, short_arg, long_arg))
}

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
    let ops = match verbs(
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
            "state",
            "job-mode",
            "kill-whom",
            "kill-value",
            "when",
            "what",
            "timestamp",
            "preset-mode",
            "image",
            "message",
            "drop-in",
            "legend",
            "boot-loader-entry",
            "boot-loader-menu",
            "reboot-argument",
        ],
    ) {
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

/// `ip [OPTIONS] OBJECT [COMMAND]`: iproute2 accepts any prefix of an object or command, so a
/// command word is read-only only if it abbreviates a listing command and nothing that writes.
fn ip(_: &Ctx, args: &[Arg]) -> Verdict {
    const READ: &[&str] = &["show", "list", "lst", "get", "showdump", "monitor", "help"];
    const WRITE: &[&str] = &[
        "add", "append", "change", "chg", "delete", "del", "flush", "replace", "set", "restore",
        "save", "exec", "attach", "detach", "update", "identify", "pids", "prepend", "test",
    ];
    // For these objects iproute2 tries the writing commands below before `show`, so `ip a s`
    // is `show` (but `ip link s` is `set`).
    const SHOW_FIRST: &[&str] = &[
        "address",
        "route",
        "neighbour",
        "neighbor",
        "rule",
        "maddress",
    ];
    const WRITE_BEFORE_SHOW: &[&str] = &[
        "add", "change", "chg", "replace", "delete", "flush", "prepend", "append", "test",
    ];
    // Global options; `-batch FILE` and `-force` run commands from a file.
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let Some(t) = a.exact() else {
            return Verdict::Unknown(format!(
                "ip is given {}, only known at run time",
                shown(&a.text)
            ));
        };
        if !t.starts_with('-') {
            break;
        }
        let name = t.trim_start_matches('-');
        if !name.is_empty() && ("batch".starts_with(name) || name == "force") && name.len() >= 2 {
            return Verdict::Unknown("ip -batch runs commands from a file".into());
        }
        if matches!(
            name,
            "n" | "netns" | "f" | "family" | "l" | "loops" | "rc" | "rcvbuf"
        ) {
            i += 1;
        }
        i += 1;
    }
    let Some(object) = args.get(i).and_then(|a| a.exact()) else {
        return Verdict::Read; // usage
    };
    if "monitor".starts_with(object) && object.len() >= 3 {
        return Verdict::Read;
    }
    let Some(command) = args.get(i + 1) else {
        return Verdict::Read; // the object's listing
    };
    let Some(c) = command.exact() else {
        return Verdict::Unknown(format!(
            "ip {object} {}: only known at run time",
            shown(&command.text)
        ));
    };
    let show_first = SHOW_FIRST.iter().any(|o| o.starts_with(object));
    let writing: &[&str] = if show_first { WRITE_BEFORE_SHOW } else { WRITE };
    let lists = READ.iter().any(|r| r.starts_with(c));
    let writes = writing.iter().any(|w| w.starts_with(c));
    // `ip addr dev eth0`-style: no command, straight to selectors (a listing).
    let selector = matches!(
        c,
        "dev" | "to" | "from" | "table" | "scope" | "label" | "up" | "type"
    );
    if (lists || selector) && !writes {
        Verdict::Read
    } else {
        Verdict::Write(format!("ip {object} {c} changes the network configuration"))
    }
}

fn iptables(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let mut lists = false;
    for a in args {
        let Some(t) = a.exact() else {
            return Verdict::Unknown(format!(
                "{} is given {}, only known at run time",
                ctx.program,
                shown(&a.text)
            ));
        };
        match t {
            "--list" | "--list-rules" => lists = true,
            t if t.starts_with("--") => {
                let name = &t[2..];
                if [
                    "append",
                    "delete",
                    "insert",
                    "replace",
                    "flush",
                    "zero",
                    "new-chain",
                    "delete-chain",
                    "policy",
                    "rename-chain",
                ]
                .iter()
                .any(|w| w.starts_with(name) && name.len() >= 3)
                {
                    return Verdict::Write(format!("{} {t} changes the firewall", ctx.program));
                }
            }
            t if t.starts_with('-') => {
                for c in t[1..].chars() {
                    match c {
                        'L' | 'S' => lists = true,
                        'A' | 'D' | 'I' | 'R' | 'F' | 'Z' | 'N' | 'X' | 'P' | 'E' => {
                            return Verdict::Write(format!(
                                "{} -{c} changes the firewall",
                                ctx.program
                            ));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if lists {
        Verdict::Read
    } else {
        Verdict::Unknown(format!("{} without -L or -S", ctx.program))
    }
}

fn network_tool(ctx: &Ctx, args: &[Arg]) -> Verdict {
    // Options that take a value, per tool (so the value is not read as the subcommand).
    let (short_arg, long_arg): (&str, &[&str]) = match ctx.program {
        "tc" => ("n", &["netns"]),
        "nft" => ("I", &["includepath"]),
        "nmcli" => (
            "fgemw",
            &["fields", "get-values", "escape", "mode", "wait", "colors"],
        ),
        "route" => ("A", &[]),
        "conntrack" => ("psdrqtufmcgnzo", &[]),
        _ => ("", &[]),
    };
    if ctx.program == "tc"
        && args
            .iter()
            .any(|a| matches!(a.exact(), Some("-b" | "-batch" | "-force")))
    {
        return Verdict::Unknown("tc -batch runs commands from a file".into());
    }
    let ops = match verbs(args, short_arg, long_arg) {
        Ok(o) => o,
        Err(v) => return v,
    };
    let p = ctx.program;
    let first = nth(&ops, 0);
    let read = match p {
        "iptables-save" | "ip6tables-save" => !args
            .iter()
            .any(|a| matches!(a.exact(), Some("-f" | "--file"))),
        "nft" => {
            first == Some("list")
                && !args
                    .iter()
                    .any(|a| matches!(a.exact(), Some("-f" | "--file")))
        }
        "tc" => nth(&ops, 1).is_none_or(|c| ["show", "list", "ls"].contains(&c)),
        "ethtool" => args.iter().all(|a| {
            a.exact().is_some_and(|t| {
                !t.starts_with('-')
                    || matches!(
                        t,
                        "-i" | "-k"
                            | "-S"
                            | "-g"
                            | "-a"
                            | "-c"
                            | "-l"
                            | "-T"
                            | "-m"
                            | "-P"
                            | "-d"
                            | "-e"
                            | "--driver"
                            | "--show-features"
                            | "--statistics"
                            | "--show-ring"
                            | "--show-pause"
                            | "--show-coalesce"
                            | "--show-channels"
                            | "--show-time-stamping"
                            | "--module-info"
                            | "--show-permaddr"
                            | "--register-dump"
                            | "--eeprom-dump"
                    )
            })
        }),
        "route" => ops.is_empty(),
        "conntrack" => {
            args.iter().any(|a| {
                matches!(
                    a.exact(),
                    Some(
                        "-L" | "--dump"
                            | "-G"
                            | "--get"
                            | "-C"
                            | "--count"
                            | "-S"
                            | "--stats"
                            | "-E"
                            | "--event"
                    )
                )
            }) && !args.iter().any(|a| {
                matches!(
                    a.exact(),
                    Some(
                        "-D" | "--delete"
                            | "-F"
                            | "--flush"
                            | "-U"
                            | "--update"
                            | "-I"
                            | "--create"
                    )
                )
            })
        }
        "iw" => !ops.iter().any(|o| {
            matches!(
                o.exact(),
                Some(
                    "set"
                        | "connect"
                        | "disconnect"
                        | "del"
                        | "add"
                        | "join"
                        | "leave"
                        | "interface"
                        | "ibss"
                        | "mesh"
                        | "switch"
                        | "wowlan"
                        | "coalesce"
                )
            )
        }),
        "nmcli" => {
            let object = first.unwrap_or("general");
            let action = nth(&ops, 1);
            match object {
                o if "general".starts_with(o)
                    || "device".starts_with(o)
                    || "connection".starts_with(o)
                    || "radio".starts_with(o) =>
                {
                    action.is_none_or(|a| {
                        [
                            "status",
                            "show",
                            "list",
                            "hostname",
                            "permissions",
                            "logging",
                        ]
                        .iter()
                        .any(|r| r.starts_with(a))
                    }) && ops.len() <= 2
                }
                o if "networking".starts_with(o) => {
                    action.is_none_or(|a| "connectivity".starts_with(a))
                }
                _ => false,
            }
        }
        _ => false,
    };
    if read {
        Verdict::Read
    } else {
        Verdict::Write(format!(
            "{p} in this form changes the network configuration"
        ))
    }
}

/// `nc -z` only probes ports; every other use sends data or listens.
fn nc(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let opts = Opts {
        short: "eclk",
        long: &["exec", "sh-exec", "lua-exec", "listen", "keep-open"],
        short_arg: "iwpsqxX",
        long_arg: &[],
        why: "runs commands or listens",
    };
    if let Found::Option(o) | Found::Unknown(o) = find_option(args, &opts) {
        return Verdict::Unknown(format!("{} {o} {}", ctx.program, opts.why));
    }
    let probes = args.iter().any(|a| {
        a.exact()
            .is_some_and(|t| t.starts_with('-') && !t.starts_with("--") && t.contains('z'))
    });
    if probes {
        Verdict::Read
    } else {
        Verdict::Unknown(format!(
            "{} sends whatever it reads to the network",
            ctx.program
        ))
    }
}

fn storage(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let has = |opts: &[&str]| {
        args.iter()
            .any(|a| a.exact().is_some_and(|t| opts.contains(&t)))
    };
    let short_has = |letters: &str| {
        args.iter().any(|a| {
            a.exact().is_some_and(|t| {
                t.starts_with('-')
                    && !t.starts_with("--")
                    && t[1..].chars().any(|c| letters.contains(c))
            })
        })
    };
    let ops: Vec<&Arg> = operands(args, "", &[]);
    let p = ctx.program;
    let read = match p {
        "fdisk" | "gdisk" => has(&["-l", "--list", "-x", "--list-details"]),
        "sfdisk" => {
            short_has("ldJsgVF")
                || has(&[
                    "--list",
                    "--dump",
                    "--json",
                    "--show-size",
                    "--show-geometry",
                    "--verify",
                    "--list-free",
                    "--list-types",
                ])
        }
        "parted" => {
            has(&["-l", "--list"])
                || ops
                    .get(1)
                    .is_some_and(|a| matches!(a.exact(), Some("print" | "p")))
                    && ops.len() == 2
        }
        "sgdisk" => args.iter().all(|a| {
            a.exact().is_some_and(|t| {
                !t.starts_with('-')
                    || matches!(
                        t,
                        "-p" | "--print"
                            | "-i"
                            | "--info"
                            | "-v"
                            | "--verify"
                            | "-O"
                            | "--print-mbr"
                            | "-L"
                            | "--list-types"
                    )
            }) || a
                .exact()
                .is_some_and(|t| t.starts_with("--info=") || t.starts_with("-i"))
        }),
        "mdadm" => {
            has(&[
                "--detail",
                "-D",
                "--examine",
                "-E",
                "--query",
                "-Q",
                "--detail-platform",
                "--misc",
            ]) && !has(&[
                "--stop",
                "-S",
                "--fail",
                "-f",
                "--remove",
                "-r",
                "--add",
                "-a",
                "--zero-superblock",
            ])
        }
        "smartctl" => {
            !short_has("tsoSXC")
                && !has(&[
                    "--test",
                    "--smart",
                    "--offlineauto",
                    "--saveauto",
                    "--abort",
                    "--set",
                ])
        }
        "tune2fs" => args
            .iter()
            .all(|a| a.exact().is_some_and(|t| !t.starts_with('-') || t == "-l")),
        "zpool" => nth(&ops, 0)
            .is_none_or(|v| ["status", "list", "iostat", "history", "get", "events"].contains(&v)),
        "zfs" => nth(&ops, 0).is_some_and(|v| {
            ["list", "get", "holds", "userspace", "groupspace", "diff"].contains(&v)
        }),
        "btrfs" => {
            let (group, cmd) = (nth(&ops, 0).unwrap_or(""), nth(&ops, 1).unwrap_or(""));
            let g = |name: &str| !group.is_empty() && name.starts_with(group);
            (g("filesystem")
                && ["show", "df", "usage", "du"]
                    .iter()
                    .any(|c| c.starts_with(cmd) && !cmd.is_empty()))
                || (g("subvolume")
                    && ["list", "show"]
                        .iter()
                        .any(|c| c.starts_with(cmd) && !cmd.is_empty()))
                || ((g("scrub") || g("balance") || g("replace"))
                    && "status".starts_with(cmd)
                    && !cmd.is_empty())
                || (g("device")
                    && ["stats", "usage"]
                        .iter()
                        .any(|c| c.starts_with(cmd) && !cmd.is_empty())
                    && !has(&["-z", "--reset"]))
                || (g("qgroup") && "show".starts_with(cmd) && !cmd.is_empty())
                || group == "version"
        }
        _ => false,
    };
    if read {
        Verdict::Read
    } else {
        Verdict::Write(format!("{p} in this form changes disks or filesystems"))
    }
}

/// `date` prints; `date -s`, and an operand not starting with `+` (MMDDhhmm...), set the clock.
fn date(_: &Ctx, args: &[Arg]) -> Verdict {
    let opts = Opts {
        short: "s",
        long: &["set"],
        short_arg: "dfrI",
        long_arg: &["date", "file", "reference"],
        why: "sets the clock",
    };
    match find_option(args, &opts) {
        Found::Option(o) => return Verdict::Write(format!("date {o} sets the clock")),
        Found::Unknown(a) => {
            return Verdict::Unknown(format!(
                "date is given {}, only known at run time",
                shown(&a)
            ));
        }
        Found::None => {}
    }
    match operands(args, opts.short_arg, opts.long_arg)
        .into_iter()
        .find(|a| !a.text.starts_with('+'))
    {
        Some(a) => Verdict::Write(format!("date {} sets the clock", shown(&a.text))),
        None => Verdict::Read,
    }
}

fn hostname(_: &Ctx, args: &[Arg]) -> Verdict {
    if args
        .iter()
        .any(|a| matches!(a.exact(), Some("-F" | "--file" | "-b" | "--boot")))
    {
        return Verdict::Write("hostname sets the host name".into());
    }
    match operands(args, "", &[]).first() {
        Some(a) => Verdict::Write(format!("hostname {} sets the host name", shown(&a.text))),
        None => Verdict::Read,
    }
}

fn sysctl(_: &Ctx, args: &[Arg]) -> Verdict {
    let opts = Opts {
        short: "wpf",
        long: &["write", "load", "system"],
        short_arg: "",
        long_arg: &["pattern"],
        why: "changes kernel settings",
    };
    match find_option(args, &opts) {
        Found::Option(o) => return Verdict::Write(format!("sysctl {o} changes kernel settings")),
        Found::Unknown(a) => {
            return Verdict::Unknown(format!(
                "sysctl is given {}, only known at run time",
                shown(&a)
            ));
        }
        Found::None => {}
    }
    match operands(args, "", &["pattern"])
        .into_iter()
        .find(|a| a.text.contains('=') || !a.literal)
    {
        Some(a) => Verdict::Write(format!(
            "sysctl {} changes a kernel setting",
            shown(&a.text)
        )),
        None => Verdict::Read,
    }
}

/// `mount` and `swapon` list with no operands (`mount -l`, `mount -t ext4`, `swapon --show`).
fn mount(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let listing = match ctx.program {
        "swapon" => {
            args.iter().all(|a| {
                a.exact().is_some_and(|t| {
                    matches!(
                        t,
                        "-s" | "--summary" | "--show" | "--noheadings" | "--raw" | "--bytes"
                    ) || t.starts_with("--show=")
                })
            }) && !args.is_empty()
        }
        _ => {
            let mut ok = true;
            let mut i = 0;
            while let Some(a) = args.get(i) {
                match a.exact() {
                    Some("-l" | "--show-labels") => {}
                    Some("-t" | "--types") => i += 1,
                    _ => ok = false,
                }
                i += 1;
            }
            ok
        }
    };
    if listing {
        Verdict::Read
    } else {
        Verdict::Write(format!(
            "{} in this form changes what is mounted",
            ctx.program
        ))
    }
}

/// `fc -l` lists the history; without `-l` it runs (or edits) history entries.
fn fc(_: &Ctx, args: &[Arg]) -> Verdict {
    let lists = args.iter().any(|a| {
        a.exact()
            .is_some_and(|t| t.starts_with('-') && t.contains('l'))
    });
    if lists {
        Verdict::Read
    } else {
        Verdict::Unknown("fc runs or edits commands from the history".into())
    }
}

/// `kill -l` lists signals and `kill -0` only checks that a process exists.
fn kill(_: &Ctx, args: &[Arg]) -> Verdict {
    match args.first().and_then(|a| a.exact()) {
        Some("-l" | "-L" | "--list" | "--table" | "-0") => Verdict::Read,
        Some("-s" | "-n") if args.get(1).and_then(|a| a.exact()) == Some("0") => Verdict::Read,
        _ if args.is_empty() => Verdict::Read,
        _ => Verdict::Write("kill signals processes".into()),
    }
}

fn limits(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let sets = match ctx.program {
        "umask" => !operands(args, "", &[]).is_empty(),
        _ => !operands(args, "", &[]).is_empty() && !args.iter().any(|a| a.exact() == Some("-a")),
    };
    if sets {
        Verdict::Unknown(format!(
            "{} with a value changes the limits of what runs later",
            ctx.program
        ))
    } else {
        Verdict::Read
    }
}

/// `set`, `shopt`, `bind`, `stty`: reports are reads; what changes how lines are read is
/// unknown (and the session stops following its terminal). `set -a` exports every later
/// assignment.
fn shell_settings(ctx: &Ctx, args: &[Arg]) -> Verdict {
    if let Some(why) = changes_line_editing(ctx.program, args, true) {
        return Verdict::Unknown(why);
    }
    if ctx.program == "set"
        && args.iter().any(|a| {
            a.exact()
                .is_some_and(|t| t.starts_with('-') && !t.starts_with("--") && t.contains('a'))
                || a.exact() == Some("allexport")
        })
    {
        return Verdict::Unknown(
            "set -a exports every later assignment to the programs that run".into(),
        );
    }
    Verdict::Read
}

/// `export NAME` (no value) exports a variable whose value sluice does not know; `-f` exports
/// functions; `-n` makes a name refer to another variable. Assignments are judged as such.
fn declaration(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let mut exported = ctx.program == "export";
    for a in args {
        let Some(t) = a.exact() else {
            return Verdict::Unknown(format!(
                "{} is given {}, only known at run time",
                ctx.program,
                shown(&a.text)
            ));
        };
        if let Some(flags) = t.strip_prefix('-') {
            if flags.contains('n') && ctx.program != "export" {
                return Verdict::Unknown(format!(
                    "{} -n makes a name refer to another variable",
                    ctx.program
                ));
            }
            if flags.contains('f') && (ctx.program == "export" || flags.contains('x')) {
                return Verdict::Unknown(format!(
                    "{} exports functions to the programs that run",
                    ctx.program
                ));
            }
            exported |= flags.contains('x');
            continue;
        }
        if t.contains('=') {
            continue; // an assignment, judged where it is made
        }
        if exported && let Some(why) = env_risk(t, &Arg::default(), Exported::Yes) {
            return Verdict::Unknown(why);
        }
    }
    Verdict::Read
}

/// Builtins that set a variable named by an argument (`read PATH`, `printf -v HOME ...`).
fn variable_target(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let names: Vec<&Arg> = match ctx.program {
        "printf" => {
            let mut v = Vec::new();
            let mut i = 0;
            while let Some(a) = args.get(i) {
                if a.exact() == Some("-v") {
                    v.extend(args.get(i + 1));
                    break;
                }
                if !a.is_option() {
                    break;
                }
                i += 1;
            }
            v
        }
        "getopts" => args.get(1).into_iter().collect(),
        "mapfile" | "readarray"
            if args
                .iter()
                .any(|a| a.exact().is_some_and(|t| t.starts_with("-C"))) =>
        {
            return Verdict::Unknown(format!("{} -C runs a callback", ctx.program));
        }
        _ => operands(args, "dnNptuCcOsi", &[]),
    };
    for n in names {
        let Some(name) = n.exact() else {
            return Verdict::Unknown(format!("{} sets a variable named at run time", ctx.program));
        };
        let name = name.split('[').next().unwrap_or(name);
        if let Some(why) = env_risk(name, &Arg::default(), Exported::No) {
            return Verdict::Unknown(why);
        }
    }
    Verdict::Read
}
