//! `kubectl-delete`: deleting cluster objects.

use super::{
    ShellRuleId as R,
    walk::{Walker, shown},
    words::Arg,
    wrappers::scan_options,
};

// ---------------------------------------------------------------------------------------------
// kubectl-delete

/// kubectl's global options that take a value (`-n ns`, `--v 5`): the word after one is its
/// value, not the verb. The read-only list reads kubectl's arguments with the same list.
pub(super) const KUBECTL_SHORT_VALUE: &str = "nsv";
pub(super) const KUBECTL_LONG_VALUE: &[&str] = &[
    "context",
    "cluster",
    "user",
    "kubeconfig",
    "namespace",
    "server",
    "token",
    "as",
    "as-group",
    "as-uid",
    "request-timeout",
    "certificate-authority",
    "client-certificate",
    "client-key",
    "cache-dir",
    "tls-server-name",
    "profile",
    "profile-output",
    "username",
    "password",
    "log-file",
    "v",
];

/// helm's global options that take a value (see [`KUBECTL_LONG_VALUE`]).
pub(super) const HELM_SHORT_VALUE: &str = "n";
pub(super) const HELM_LONG_VALUE: &[&str] = &[
    "kube-context",
    "namespace",
    "kubeconfig",
    "kube-apiserver",
    "kube-token",
    "kube-as-user",
    "kube-as-group",
    "kube-ca-file",
    "registry-config",
    "repository-cache",
    "repository-config",
    "burst-limit",
    "qps",
];

pub(super) fn kube(w: &mut Walker, program: &str, args: &[Arg]) {
    let (short_arg, long_arg, verbs): (&str, &[&str], &[&str]) = if program == "helm" {
        (
            HELM_SHORT_VALUE,
            HELM_LONG_VALUE,
            &["uninstall", "delete", "del", "un"],
        )
    } else {
        (KUBECTL_SHORT_VALUE, KUBECTL_LONG_VALUE, &["delete"])
    };
    let s = scan_options(args, short_arg, long_arg);
    let Some(verb) = args.get(s.operand) else {
        return;
    };
    let words = || {
        let w: Vec<&str> = args.iter().map(|a| a.text.as_str()).collect();
        shown(&format!("{program} {}", w.join(" ")))
    };
    match verb.exact() {
        Some(v) if verbs.contains(&v) => {
            w.find(
                R::KubectlDelete,
                format!("{} deletes cluster objects", words()),
            );
        }
        None => w.find(
            R::KubectlDelete,
            format!(
                "{}: the subcommand {} is only known at run time",
                words(),
                shown(&verb.text)
            ),
        ),
        Some(_) => {}
    }
}
