//! What commands change in the shell's state (see [`ShellState`](super::ShellState)): `cd`,
//! aliases, `hash -p`, `unset -f`, and the files the input writes, copies, links or downloads
//! (so that running one later is judged as what it is).

use super::{
    editing::editing_file,
    paths::{places, write_targets},
    state::{Place, Written},
    walk::{Walker, basename},
    words::Arg,
    wrappers::scan_options,
};

pub(super) fn apply(w: &mut Walker, program: &str, args: &[Arg]) {
    match program {
        "cd" | "pushd" => cd(w, args),
        "popd" => w.state.cd(vec![Place::Unknown]),
        "hash" => hash(w, args),
        "unalias" => {
            for a in args {
                match a.exact() {
                    Some("-a") => w.state.aliases.clear(),
                    Some(name) => {
                        w.state.aliases.remove(name);
                    }
                    None => {}
                }
            }
        }
        "unset" if args.first().and_then(|a| a.exact()) == Some("-f") => {
            for a in &args[1..] {
                if let Some(name) = a.exact() {
                    w.state.functions.remove(name);
                }
            }
        }
        "ln" => link(w, args),
        "cp" | "mv" | "install" => copy(w, program, args),
        "curl" | "wget" => download(w, program, args),
        // Metadata and removal change no file's content: what it was stays known.
        "chmod" | "chown" | "chgrp" | "chattr" | "setfacl" | "touch" | "rm" | "rmdir"
        | "unlink" => {}
        _ => {
            for target in write_targets(program, args) {
                wrote(w, &target, Written::Unseen);
            }
        }
    }
}

fn wrote(w: &mut Walker, target: &Arg, how: Written) {
    let at = places(w, target);
    if let Some(p) = at.iter().find(|p| editing_file(&p.text())) {
        w.changes_editing(format!(
            "{} is written, which line editors read their key bindings from",
            p.text()
        ));
    }
    w.wrote(&at, how);
}

fn cd(w: &mut Walker, args: &[Arg]) {
    let operands: Vec<&Arg> = args
        .iter()
        .skip_while(|a| {
            a.exact()
                .is_some_and(|t| matches!(t, "-L" | "-P" | "-e" | "-@"))
        })
        .filter(|a| a.exact() != Some("--"))
        .collect();
    let to = match operands.first() {
        None => vec![Place::Home(String::new())],
        Some(a) => match a.exact() {
            Some("-") | None => vec![Place::Unknown],
            Some(t) if w.state.cdpath && !t.starts_with('/') && !a.home => vec![Place::Unknown],
            Some(_) => places(w, a),
        },
    };
    w.state.cd(to);
}

fn hash(w: &mut Walker, args: &[Arg]) {
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.exact() {
            Some("-r") => w.state.hashed.clear(),
            Some("-p") => {
                let path = args.get(i + 1);
                for name in args.iter().skip(i + 2) {
                    match (path.and_then(|p| p.exact()), name.exact()) {
                        (Some(p), Some(n)) => w.state.hash(n, p),
                        _ => w
                            .state
                            .names_changed("hash -p with words only known at run time"),
                    }
                }
                return;
            }
            Some("-d") => {
                for name in args.iter().skip(i + 1).filter_map(|a| a.exact()) {
                    w.state.hashed.remove(name);
                }
                return;
            }
            _ => {}
        }
        i += 1;
    }
}

/// What a copy of `source` is: a copy of a program if the source names one.
fn copy_of(source: &Arg) -> Written {
    match source.exact() {
        Some(s) if s.starts_with('/') => Written::Copy(basename(s).to_owned()),
        _ => Written::Unseen,
    }
}

/// `ln [-s] TARGET LINK`: a symbolic link is followed when paths are resolved; a hard link is
/// a copy.
fn link(w: &mut Walker, args: &[Arg]) {
    let s = scan_options(args, "tS", &["target-directory", "suffix"]);
    let ops: Vec<&Arg> = args[s.operand..].iter().collect();
    let symbolic = s.has('s', "symbolic");
    let (targets, link): (Vec<&Arg>, Option<Arg>) = match s.value("t", "target-directory") {
        Some(dir) => (ops.clone(), Some(dir.clone())),
        None if ops.len() >= 2 => (
            ops[..ops.len() - 1].to_vec(),
            ops.last().map(|a| (*a).clone()),
        ),
        None => (ops.clone(), None), // `ln -s /x` links into the working directory
    };
    for t in &targets {
        let link_at = match &link {
            Some(l)
                if targets.len() == 1
                    && !l.text.ends_with('/')
                    && s.value("t", "target-directory").is_none() =>
            {
                l.clone()
            }
            Some(dir) => Arg {
                text: format!("{}/{}", dir.text.trim_end_matches('/'), basename(&t.text)),
                prefix: format!("{}/{}", dir.prefix.trim_end_matches('/'), basename(&t.text)),
                ..dir.clone()
            },
            None => Arg::lit(basename(&t.text)),
        };
        let at = places(w, &link_at);
        if symbolic && t.literal {
            // `~` in the target is the home directory, as the shell expanded it.
            let target = if t.home {
                match places(w, t).as_slice() {
                    [p] => p.text(),
                    _ => continue,
                }
            } else {
                t.text.clone()
            };
            w.state.link(&at, &target);
        }
        let how = copy_of(t);
        w.wrote(&at, how);
    }
}

/// `cp SRC DEST`, `mv`, `install`: the destination is a copy of the source.
fn copy(w: &mut Walker, program: &str, args: &[Arg]) {
    let targets = write_targets(program, args);
    let s = scan_options(
        args,
        "tSmog",
        &["target-directory", "suffix", "mode", "owner", "group"],
    );
    let ops: Vec<&Arg> = args[s.operand..]
        .iter()
        .filter(|a| !a.is_option())
        .collect();
    let single_source = if s.value("t", "target-directory").is_some() {
        (ops.len() == 1).then(|| ops[0])
    } else {
        (ops.len() == 2).then(|| ops[0])
    };
    for t in targets {
        let how = single_source.map_or(Written::Unseen, copy_of);
        // `cp /bin/rm /tmp/`: the copy is /tmp/rm.
        let t = match single_source {
            Some(src) if t.text.ends_with('/') => {
                Arg::lit(&format!("{}{}", t.text, basename(&src.text)))
            }
            _ => t,
        };
        wrote(w, &t, how);
    }
}

/// `curl -o FILE`, `wget -O FILE` or `wget URL` (saved under the URL's last part).
fn download(w: &mut Walker, program: &str, args: &[Arg]) {
    let how = Written::Downloaded(program.to_owned());
    let mut saved = false;
    let mut i = 0;
    while let Some(a) = args.get(i) {
        let t = a.exact().unwrap_or_default();
        let file = match (program, t) {
            ("curl", "-o" | "--output") | ("wget", "-O" | "--output-document") => {
                i += 1;
                args.get(i).cloned()
            }
            ("curl", t) if t.starts_with("-o") && t.len() > 2 => Some(Arg::lit(&t[2..])),
            ("curl", t) if t.starts_with("--output=") => Some(Arg::lit(&t[9..])),
            ("wget", t) if t.starts_with("-O") && t.len() > 2 => Some(Arg::lit(&t[2..])),
            ("wget", t) if t.starts_with("--output-document=") => Some(Arg::lit(&t[18..])),
            _ => None,
        };
        if let Some(f) = file {
            saved = true;
            if f.exact() != Some("-") {
                wrote(w, &f, how.clone());
            }
        }
        i += 1;
    }
    // wget without -O, curl -O: the name is the URL's last part.
    let remote_name = program == "wget" && !saved
        || args
            .iter()
            .any(|a| matches!(a.exact(), Some("-O" | "--remote-name")) && program == "curl");
    if remote_name {
        for url in args
            .iter()
            .filter_map(|a| a.exact())
            .filter(|t| t.contains("://"))
        {
            let path = url.split(['?', '#']).next().unwrap_or(url);
            let name = path
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or("index.html");
            wrote(w, &Arg::lit(name), how.clone());
        }
    }
}
