//! The host: storage (disks, RAID, ZFS, btrfs), the clock, the hostname, kernel settings and
//! mounts.

use super::tools::unknown_word;
use super::{Check::Custom, Ctx, Entry, Found, Opts, Verdict, find_option, nth, operands};
use crate::inspect::guardrails::shell::{walk::shown, words::Arg};

pub(super) const ENTRIES: &[Entry] = &[
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
];

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
            return unknown_word("date", &a);
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
            return unknown_word("sysctl", &a);
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
