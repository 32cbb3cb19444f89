//! The network: addresses, routes, sockets, firewalls, captures, probes.

use super::tools::unknown_word;
use super::{
    Check::{Custom, Unless},
    Ctx, Entry, Found, Opts, Verdict, find_option, nth, verbs,
};
use crate::inspect::guardrails::shell::{walk::shown, words::Arg};

pub(super) const ENTRIES: &[Entry] = &[
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
];

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
            return unknown_word("ip", &a.text);
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
            return unknown_word(ctx.program, &a.text);
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
