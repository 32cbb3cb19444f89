//! What a shell remembers from one command to the next, as far as the text shows it: the working
//! directory, aliases, functions, `hash -p` entries, files the input wrote or linked, and whether
//! program names still mean the system's programs. Tracked within one command line, and across
//! the lines of one session (the session keeps the state of each line that ran).
//!
//! Everything is kept lexically and conservatively: a `cd` that may fail leaves both directories
//! possible; what cannot be followed makes names or paths unknown rather than guessed. Every map
//! is bounded: past [`MAX_ENTRIES`], program names stop being trusted at all.

use std::collections::BTreeMap;

/// Entries kept per map (aliases, functions, hashed names, written files, symbolic links).
const MAX_ENTRIES: usize = 64;
/// Longest alias or function body kept.
const MAX_BODY: usize = 4096;
/// Working directories the shell may be in; past it, the directory is unknown.
const MAX_CWDS: usize = 4;
/// Symbolic links followed in one path.
const MAX_LINKS: usize = 8;

/// A directory (or file) as far as it is known: absolute, relative to the home directory (the
/// string may start with `..`: `~/..` is `Home("..")`), or unknown.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Place {
    Abs(String),
    Home(String),
    Unknown,
}

impl Place {
    /// How reasons and the rules write it: `/etc`, `~`, `~/../x`, `?`.
    pub fn text(&self) -> String {
        match self {
            Place::Abs(p) => p.clone(),
            Place::Home(h) if h.is_empty() => "~".into(),
            Place::Home(h) => format!("~/{h}"),
            Place::Unknown => "?".into(),
        }
    }
}

/// How a file this input wrote came about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Written {
    /// A copy (or hard link, or move) of a known program: running it runs that program.
    Copy(String),
    /// Content sluice did not see (a redirect, `tee`, `cp $x`, ...).
    Unseen,
    /// Content a downloader fetched (`curl -o`, `wget -O`).
    Downloaded(String),
}

/// See the module documentation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShellState {
    /// Where the shell may be; never empty.
    pub(super) cwds: Vec<Place>,
    pub(super) aliases: BTreeMap<String, String>,
    pub(super) functions: BTreeMap<String, String>,
    /// `hash -p PATH NAME`: NAME runs PATH.
    pub(super) hashed: BTreeMap<String, String>,
    /// Files written by the input, by [`Place::text`] of their path.
    pub(super) written: BTreeMap<String, Written>,
    /// Symbolic links the input made: link (absolute or `~/...`) to target as written.
    pub(super) symlinks: BTreeMap<String, String>,
    /// Why a program name no longer identifies a system program (`PATH` or `BASH_CMDS` changed,
    /// too much to follow): every program is then unknown.
    pub(super) names_untrusted: Option<String>,
    /// `HOME` changed: `~` is no longer the home directory sluice assumes.
    pub(super) home_changed: bool,
    /// `CDPATH` set: a relative `cd` may go elsewhere.
    pub(super) cdpath: bool,
}

impl Default for ShellState {
    /// A fresh login: in the home directory, nothing defined.
    fn default() -> Self {
        ShellState {
            cwds: vec![Place::Home(String::new())],
            aliases: BTreeMap::new(),
            functions: BTreeMap::new(),
            hashed: BTreeMap::new(),
            written: BTreeMap::new(),
            symlinks: BTreeMap::new(),
            names_untrusted: None,
            home_changed: false,
            cdpath: false,
        }
    }
}

impl ShellState {
    fn untrust(&mut self, why: &str) {
        if self.names_untrusted.is_none() {
            self.names_untrusted = Some(why.to_owned());
        }
    }

    /// Inserts into a bounded map; past the bound names stop being trusted.
    fn bounded<V>(
        map: &mut BTreeMap<String, V>,
        key: String,
        value: V,
        untrusted: &mut Option<String>,
    ) {
        if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
            untrusted.get_or_insert_with(|| "more definitions than sluice follows".into());
            return;
        }
        map.insert(key, value);
    }

    pub(super) fn define_alias(&mut self, name: &str, body: &str) {
        if body.len() > MAX_BODY {
            return self.untrust("an alias too long to follow");
        }
        Self::bounded(
            &mut self.aliases,
            name.to_owned(),
            body.to_owned(),
            &mut self.names_untrusted,
        );
    }

    pub(super) fn define_function(&mut self, name: &str, body: &str) {
        if body.len() > MAX_BODY {
            return self.untrust("a function too long to follow");
        }
        Self::bounded(
            &mut self.functions,
            name.to_owned(),
            body.to_owned(),
            &mut self.names_untrusted,
        );
    }

    pub(super) fn hash(&mut self, name: &str, path: &str) {
        Self::bounded(
            &mut self.hashed,
            name.to_owned(),
            path.to_owned(),
            &mut self.names_untrusted,
        );
    }

    pub(super) fn names_changed(&mut self, why: &str) {
        self.untrust(why);
    }

    /// The input wrote `places` (one per working directory it may be in).
    pub(super) fn wrote(&mut self, places: &[Place], how: Written) {
        for p in places {
            if *p == Place::Unknown {
                continue;
            }
            Self::bounded(
                &mut self.written,
                p.text(),
                how.clone(),
                &mut self.names_untrusted,
            );
        }
    }

    pub(super) fn written(&self, places: &[Place]) -> Option<&Written> {
        places.iter().find_map(|p| self.written.get(&p.text()))
    }

    pub(super) fn link(&mut self, link: &[Place], target: &str) {
        for p in link {
            if *p == Place::Unknown {
                continue;
            }
            Self::bounded(
                &mut self.symlinks,
                p.text(),
                target.to_owned(),
                &mut self.names_untrusted,
            );
        }
    }

    /// `cd` to `to` (one place per directory it may resolve to): the shell is there, or still
    /// where it was if the `cd` failed.
    pub(super) fn cd(&mut self, to: Vec<Place>) {
        let mut all = self.cwds.clone();
        for p in to {
            if !all.contains(&p) {
                all.push(p);
            }
        }
        self.cwds = if all.len() > MAX_CWDS || all.contains(&Place::Unknown) {
            vec![Place::Unknown]
        } else {
            all
        };
    }

    /// Where a path given to a program may be: one place per working directory, after `~`,
    /// `..`, `/proc/self/{cwd,root}` and the symbolic links this input made. `home` is whether
    /// the word started with an unquoted `~`.
    pub(super) fn resolve(&self, text: &str, home: bool) -> Vec<Place> {
        let starts: Vec<Place> = if home {
            let (user, rest) = text[1..].split_once('/').unwrap_or((&text[1..], ""));
            if !user.is_empty() || self.home_changed {
                return vec![Place::Unknown];
            }
            vec![join(&Place::Home(String::new()), rest)]
        } else if text.starts_with('/') {
            vec![join(&Place::Abs("/".into()), text)]
        } else if text.is_empty() {
            return vec![Place::Unknown];
        } else {
            self.cwds.iter().map(|c| join(c, text)).collect()
        };
        let mut out = Vec::new();
        for p in starts {
            for q in self.through_proc(p) {
                let q = self.through_links(q);
                if !out.contains(&q) {
                    out.push(q);
                }
            }
        }
        out
    }

    /// `/proc/self/root/x` is `/x`; `/proc/self/cwd/x` is `x` in the working directory; another
    /// process's working directory is unknown.
    fn through_proc(&self, p: Place) -> Vec<Place> {
        let Place::Abs(path) = &p else {
            return vec![p];
        };
        let mut parts = path.trim_start_matches('/').splitn(4, '/');
        let (Some("proc"), Some(who), Some(what)) = (parts.next(), parts.next(), parts.next())
        else {
            return vec![p];
        };
        let rest = parts.next().unwrap_or("");
        let this = who == "self" || who == "thread-self";
        let pid = who.chars().all(|c| c.is_ascii_digit());
        match what {
            "root" if this || pid => vec![join(&Place::Abs("/".into()), rest)],
            "cwd" if this => self.cwds.iter().map(|c| join(c, rest)).collect(),
            "cwd" if pid => vec![Place::Unknown],
            _ => vec![p],
        }
    }

    fn through_links(&self, mut p: Place) -> Place {
        for _ in 0..MAX_LINKS {
            let text = p.text();
            let hit = self.symlinks.iter().find(|(link, _)| {
                text == **link || text.starts_with(&format!("{}/", link.trim_end_matches('/')))
            });
            let Some((link, target)) = hit else {
                return p;
            };
            let rest = text[link.len()..].trim_start_matches('/');
            let base = if target == "~" {
                Place::Home(String::new())
            } else if target.starts_with('/') {
                join(&Place::Abs("/".into()), target)
            } else if let Some(home_rel) = target.strip_prefix("~/") {
                join(&Place::Home(String::new()), home_rel)
            } else {
                // A relative target is relative to the link's directory.
                let parent = match &p {
                    Place::Abs(_) => Place::Abs(parent_of(link)),
                    Place::Home(_) => Place::Home(
                        parent_of(link.trim_start_matches('~'))
                            .trim_start_matches('/')
                            .to_owned(),
                    ),
                    Place::Unknown => return Place::Unknown,
                };
                join(&parent, target)
            };
            p = join(&base, rest);
        }
        Place::Unknown
    }
}

fn parent_of(path: &str) -> String {
    match path.trim_end_matches('/').rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => path[..i].to_owned(),
    }
}

/// `rel` (a relative path, or an absolute one that replaces the base) inside `base`, with `.`
/// and `..` resolved lexically. Above `/` is `/`; above `~` stays relative to `~` (`~/..`).
pub(super) fn join(base: &Place, rel: &str) -> Place {
    let (mut parts, home): (Vec<String>, bool) = if rel.starts_with('/') {
        (Vec::new(), false)
    } else {
        match base {
            Place::Abs(b) => (split(b), false),
            Place::Home(h) => (split(h), true),
            Place::Unknown => return Place::Unknown,
        }
    };
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| l != "..") {
                    parts.pop();
                } else if home {
                    parts.push("..".into());
                }
            }
            p => parts.push(p.to_owned()),
        }
    }
    if home {
        Place::Home(parts.join("/"))
    } else {
        Place::Abs(format!("/{}", parts.join("/")))
    }
}

fn split(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(places: Vec<Place>) -> Vec<String> {
        places.iter().map(Place::text).collect()
    }

    #[test]
    fn paths_resolve_through_cwd_home_proc_and_links() {
        let mut s = ShellState::default();
        assert_eq!(texts(s.resolve("srv", false)), ["~/srv"]);
        assert_eq!(texts(s.resolve("~/..", true)), ["~/.."]);
        assert_eq!(texts(s.resolve("~/../../etc", true)), ["~/../../etc"]);
        assert_eq!(texts(s.resolve("/tmp/../etc/./x", false)), ["/etc/x"]);
        assert_eq!(texts(s.resolve("/proc/self/root/etc/x", false)), ["/etc/x"]);
        assert_eq!(
            texts(s.resolve("/proc/1/root/dev/sda", false)),
            ["/dev/sda"]
        );
        assert_eq!(texts(s.resolve("/proc/self/cwd/a", false)), ["~/a"]);
        assert_eq!(texts(s.resolve("/proc/42/cwd/a", false)), ["?"]);
        assert_eq!(texts(s.resolve("~root/x", true)), ["?"]);
        s.cd(vec![Place::Abs("/".into())]);
        assert_eq!(texts(s.resolve("srv", false)), ["~/srv", "/srv"]);
        assert_eq!(texts(s.resolve("/proc/self/cwd/*", false)), ["~/*", "/*"]);
        s.link(&[Place::Abs("/tmp/e".into())], "/etc");
        assert_eq!(texts(s.resolve("/tmp/e/passwd", false)), ["/etc/passwd"]);
        s.link(&[Place::Home("r".into())], "../..");
        assert_eq!(texts(s.resolve("~/r/srv", true)), ["~/../../srv"]);
        // A link to itself is not followed forever.
        s.link(&[Place::Abs("/tmp/l".into())], "/tmp/l");
        assert_eq!(texts(s.resolve("/tmp/l/x", false)), ["?"]);
    }

    #[test]
    fn cd_keeps_every_possible_directory_up_to_a_bound() {
        let mut s = ShellState::default();
        s.cd(vec![Place::Abs("/var".into())]);
        assert_eq!(texts(s.cwds.clone()), ["~", "/var"]);
        for d in ["/a", "/b", "/c"] {
            s.cd(vec![Place::Abs(d.into())]);
        }
        assert_eq!(s.cwds, [Place::Unknown]);
        assert_eq!(texts(s.resolve("x", false)), ["?"]);
        assert_eq!(texts(s.resolve("/x", false)), ["/x"]);
    }

    #[test]
    fn maps_are_bounded() {
        let mut s = ShellState::default();
        for i in 0..MAX_ENTRIES {
            s.define_alias(&format!("a{i}"), "ls");
        }
        assert!(s.names_untrusted.is_none());
        s.define_alias("one-more", "ls");
        assert!(s.names_untrusted.is_some());
        assert!(!s.aliases.contains_key("one-more"));
        let mut s = ShellState::default();
        s.define_function("f", &"x".repeat(MAX_BODY + 1));
        assert!(s.names_untrusted.is_some());
    }
}
