//! `targets:`: the intercepted cgroups, their egress default and connection caps.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{
    DEFAULT_PROCESS_MAX_CONNECTIONS, DEFAULT_TARGET_MAX_CONNECTIONS, diag::Report, raw::RawTarget,
    valid_name,
};

/// An intercepted cgroup and its egress default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub cgroup: TargetCgroup,
    pub egress: EgressMode,
    /// `run_as` and `landlock`: how `sluice exec` confines the agent.
    pub sandbox: crate::exec::settings::TargetSandbox,
    pub inbound: InboundMode,
    /// Whether its sockets may connect to unix-domain sockets (paths and abstract names).
    pub unix: UnixMode,
    /// Concurrent connections of this target, and of one of its processes.
    pub max_connections: usize,
    pub max_connections_per_process: usize,
}

/// Unix-domain sockets: a local database's socket, `docker.sock`, any daemon's: another way out
/// of the network policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnixMode {
    /// No connect or send to a unix socket by path or abstract name, from the target's sockets
    /// (socket pairs between its own processes keep working).
    #[default]
    Deny,
    Allow,
}

/// What a target's processes may accept from others.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InboundMode {
    /// No binds to a fixed port; connection requests and unsolicited datagrams from outside the
    /// host are dropped.
    Deny,
    /// Servers on loopback only (tools that talk to themselves): binds to a fixed port only on
    /// loopback; connection requests from outside the host are dropped.
    #[default]
    Loopback,
    Allow,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetCgroup {
    /// Created and removed by sluice (`<cgroup2>/sluice/<name>`); `sluice exec --name` joins it.
    Managed,
    /// An existing cgroup, relative to the cgroup v2 mount (Kubernetes pods, systemd units).
    Path(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EgressMode {
    /// TCP connects to anything that is not a listed resource or allowed destination fail (EPERM).
    Deny,
    /// Unlisted destinations are reached directly, untouched.
    Allow,
}

/// The targets, and their names for the rules to refer to.
pub(super) fn validate(
    raw: &[RawTarget],
    max_connections: usize,
    report: &mut Report,
) -> (Vec<Target>, HashSet<String>) {
    let mut targets = Vec::new();
    let mut target_names = HashSet::new();
    let mut cgroup_paths: BTreeMap<String, Spanned<String>> = BTreeMap::new();
    for t in raw {
        if !valid_name(&t.name.value) {
            report.error(
                &t.name,
                format!("target name `{}` is not valid", t.name.value),
                Some("use 1-64 letters, digits, '-', '_' or '.'"),
            );
        } else if !target_names.insert(t.name.value.clone()) {
            report.error(
                &t.name,
                format!("target `{}` is defined twice", t.name.value),
                None,
            );
        }
        let cgroup = match &t.cgroup {
            None => TargetCgroup::Managed,
            Some(p) => {
                let path = p.value.trim_matches('/').to_string();
                if path.is_empty() {
                    report.error(
                            p,
                            "the root cgroup cannot be intercepted",
                            Some("name the agent's own cgroup (e.g. a pod or a systemd unit), or omit `cgroup` to let sluice manage one"),
                        );
                } else if path
                    .split('/')
                    .any(|c| c == ".." || c == "." || c.is_empty())
                {
                    report.error(
                        p,
                        format!("cgroup path `{}` is not a plain relative path", p.value),
                        None,
                    );
                } else {
                    cgroup_paths.insert(path.clone(), p.clone());
                }
                TargetCgroup::Path(path)
            }
        };
        let at_least_one = |v: &Option<Spanned<usize>>, what: &str, report: &mut Report| {
            v.as_ref().and_then(|s| {
                if s.value == 0 {
                    report.error(s, format!("`{what}` must be at least 1"), None);
                    None
                } else {
                    Some(s.value)
                }
            })
        };
        targets.push(Target {
            name: t.name.value.clone(),
            cgroup,
            egress: t.egress.value,
            inbound: t.inbound.unwrap_or_default(),
            unix: t.unix.unwrap_or_default(),
            max_connections: at_least_one(&t.max_connections, "max_connections", report)
                .unwrap_or(DEFAULT_TARGET_MAX_CONNECTIONS.min(max_connections)),
            max_connections_per_process: at_least_one(
                &t.max_connections_per_process,
                "max_connections_per_process",
                report,
            )
            .unwrap_or(DEFAULT_PROCESS_MAX_CONNECTIONS),
            sandbox: crate::exec::settings::validate(
                t.run_as.as_ref(),
                t.landlock.as_ref(),
                report,
            ),
        });
    }
    // Programs attached to a cgroup also run for its descendants: a nested target would be
    // intercepted twice with possibly contradicting policies.
    let paths: Vec<&String> = cgroup_paths.keys().collect();
    for (i, a) in paths.iter().enumerate() {
        for b in &paths[i + 1..] {
            if b.starts_with(a.as_str()) && b.as_bytes().get(a.len()) == Some(&b'/') {
                report.error(
                    &cgroup_paths[*b],
                    format!("cgroup `{b}` is inside target cgroup `{a}`"),
                    Some("targets must not be nested; the outer target already covers it"),
                );
            }
        }
    }
    (targets, target_names)
}
