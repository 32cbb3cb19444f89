//! crontab, the configuration checks and status reports of common servers, redis-cli.

use super::{Check::Custom, Ctx, Entry, Verdict, nth, operands};
use crate::inspect::guardrails::shell::words::Arg;

pub(super) const ENTRIES: &[Entry] = &[
    Entry {
        names: &["chronyc", "ntpq"],
        check: Custom(time_sync),
    },
    Entry {
        names: &["crontab"],
        check: Custom(crontab),
    },
    Entry {
        names: &[
            "nginx",
            "apachectl",
            "apache2ctl",
            "haproxy",
            "sshd",
            "visudo",
            "ufw",
            "firewall-cmd",
            "fail2ban-client",
            "certbot",
            "sudo",
        ],
        check: Custom(servers),
    },
    Entry {
        names: &["redis-cli"],
        check: Custom(redis_cli),
    },
];

fn crontab(_: &Ctx, args: &[Arg]) -> Verdict {
    let mut lists = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.exact() {
            Some("-l") => lists = true,
            Some("-u") => i += 1,
            _ => {
                return Verdict::Write(
                    "crontab in this form replaces, edits or removes a crontab".into(),
                );
            }
        }
        i += 1;
    }
    if lists {
        Verdict::Read
    } else {
        Verdict::Write("crontab replaces the crontab with its input".into())
    }
}

/// Servers' configuration checks and status reports.
fn servers(ctx: &Ctx, args: &[Arg]) -> Verdict {
    let words: Vec<&str> = args.iter().filter_map(|a| a.exact()).collect();
    if words.len() != args.len() {
        return Verdict::Unknown(format!(
            "{} with arguments only known at run time",
            ctx.program
        ));
    }
    let only = |allowed: &[&str]| {
        !words.is_empty()
            && words
                .iter()
                .all(|w| allowed.contains(w) || !w.starts_with('-') && allowed.contains(&"FILE"))
    };
    let read = match ctx.program {
        "nginx" => {
            only(&["-t", "-T", "-v", "-V", "-q", "-c", "-p", "FILE"])
                && words
                    .iter()
                    .any(|w| matches!(*w, "-t" | "-T" | "-v" | "-V"))
        }
        "apachectl" | "apache2ctl" => matches!(
            words.as_slice(),
            ["-t"]
                | ["-S"]
                | ["-M"]
                | ["-v"]
                | ["-V"]
                | ["configtest"]
                | ["-t", "-D", "DUMP_VHOSTS"]
                | ["-D", "DUMP_MODULES"]
                | ["status"]
        ),
        "haproxy" => words.contains(&"-c") && only(&["-c", "-f", "-q", "-V", "FILE"]),
        "sshd" => {
            only(&["-T", "-t", "-f", "-C", "FILE"])
                && words.iter().any(|w| matches!(*w, "-T" | "-t"))
        }
        "visudo" => {
            only(&[
                "-c", "--check", "-q", "--quiet", "-s", "--strict", "-f", "--file", "FILE",
            ]) && words.iter().any(|w| matches!(*w, "-c" | "--check"))
        }
        "ufw" => matches!(
            words.first(),
            Some(&("status" | "show" | "version" | "--version"))
        ),
        "firewall-cmd" => {
            !words.is_empty()
                && words.iter().all(|w| {
                    w.starts_with("--list-")
                        || w.starts_with("--get-")
                        || w.starts_with("--query-")
                        || w.starts_with("--info-")
                        || matches!(*w, "--state" | "--permanent" | "--version")
                        || w.starts_with("--zone=")
                })
        }
        "fail2ban-client" => matches!(
            words.first(),
            Some(&("status" | "ping" | "version" | "get" | "-V" | "--version"))
        ),
        "certbot" => matches!(words.first(), Some(&("certificates" | "--version"))),
        // `sudo -l`, `sudo -i` (with a command, sudo is a wrapper and never gets here);
        // `sudo -e` edits files.
        "sudo" => !words.iter().any(|w| matches!(*w, "-e" | "--edit")),
        _ => false,
    };
    if read {
        Verdict::Read
    } else {
        Verdict::Write(format!(
            "{} in this form changes the service or its configuration",
            ctx.program
        ))
    }
}

/// redis-cli with one of the read-only commands; no command starts its REPL.
fn redis_cli(_: &Ctx, args: &[Arg]) -> Verdict {
    const READ: &[&str] = &[
        "ping",
        "info",
        "get",
        "mget",
        "exists",
        "ttl",
        "pttl",
        "type",
        "strlen",
        "llen",
        "lrange",
        "lindex",
        "hget",
        "hmget",
        "hgetall",
        "hkeys",
        "hvals",
        "hlen",
        "hexists",
        "smembers",
        "scard",
        "sismember",
        "zrange",
        "zcard",
        "zscore",
        "zrank",
        "dbsize",
        "scan",
        "sscan",
        "hscan",
        "zscan",
        "keys",
        "time",
        "lastsave",
        "role",
        "memory",
        "latency",
        "slowlog",
        "client",
        "config",
        "xlen",
        "xrange",
        "xinfo",
        "pubsub",
        "object",
        "--version",
    ];
    let ops = operands(
        args,
        "hpansuc",
        &["user", "pass", "tls", "cacert", "cert", "key"],
    );
    let Some(cmd) = nth(&ops, 0) else {
        return Verdict::Unknown(
            "redis-cli without a command reads commands from its input".into(),
        );
    };
    let lower = cmd.to_ascii_lowercase();
    let sub = nth(&ops, 1).map(str::to_ascii_lowercase);
    let read = READ.contains(&lower.as_str())
        && match lower.as_str() {
            "config" => sub.as_deref() == Some("get"),
            "client" => matches!(sub.as_deref(), Some("list" | "info" | "getname" | "id")),
            "slowlog" => matches!(sub.as_deref(), Some("get" | "len")),
            "memory" => matches!(sub.as_deref(), Some("usage" | "stats" | "doctor")),
            "latency" => matches!(sub.as_deref(), Some("latest" | "history" | "doctor")),
            _ => true,
        };
    if read {
        Verdict::Read
    } else {
        Verdict::Write(format!("redis-cli {cmd} is not a read-only Redis command"))
    }
}

/// chronyc and ntpq: their status reports; every other command changes the clock or the
/// daemon (`chronyc makestep`, `ntpq -c :config`).
fn time_sync(ctx: &Ctx, args: &[Arg]) -> Verdict {
    const CHRONYC: &[&str] = &[
        "tracking",
        "sources",
        "sourcestats",
        "activity",
        "ntpdata",
        "serverstats",
        "clients",
        "authdata",
        "selectdata",
        "rtcdata",
        "smoothing",
        "waitsync",
        "help",
    ];
    const NTPQ: &[&str] = &[
        "peers",
        "lpeers",
        "opeers",
        "rv",
        "readvar",
        "associations",
        "lassociations",
        "sysinfo",
        "sysstats",
        "iostats",
        "monstats",
        "kerninfo",
        "version",
        "pstats",
    ];
    let words: Vec<&str> = args.iter().filter_map(|a| a.exact()).collect();
    if words.len() != args.len() {
        return Verdict::Unknown(format!(
            "{} with arguments only known at run time",
            ctx.program
        ));
    }
    let read = match ctx.program {
        "chronyc" => {
            let ops: Vec<&&str> = words.iter().filter(|w| !w.starts_with('-')).collect();
            ops.first().is_some_and(|c| CHRONYC.contains(c))
        }
        _ => {
            let mut ok = !words.is_empty();
            let mut i = 0;
            while let Some(w) = words.get(i) {
                match *w {
                    "-c" => {
                        let cmd = words.get(i + 1).and_then(|c| c.split_whitespace().next());
                        ok &= cmd.is_some_and(|c| NTPQ.contains(&c));
                        i += 1;
                    }
                    "-p" | "-pn" | "-n" | "-4" | "-6" | "-w" => {}
                    w if w.starts_with('-') => ok = false,
                    _ => {} // a host
                }
                i += 1;
            }
            ok
        }
    };
    if read {
        Verdict::Read
    } else {
        Verdict::Write(format!(
            "{} in this form changes the clock or the time daemon",
            ctx.program
        ))
    }
}
