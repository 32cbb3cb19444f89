//! Credential values and where they come from. Imports only the [`super::diag`] leaf and
//! [`crate::files`], so settings modules may use it without a cycle.

use std::{fmt, path::Path};

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::diag::Report;

/// A credential value. `Debug` never shows it, so it cannot leak through logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub(crate) String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where a secret comes from: inline (tests, demos), an environment variable, or a file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub(crate) enum RawSecret {
    Value(String),
    Env(String),
    File(String),
}

pub(crate) fn resolve_secret(raw: &Spanned<RawSecret>, report: &mut Report) -> Option<Secret> {
    match &raw.value {
        RawSecret::Value(v) => Some(Secret(v.clone())),
        RawSecret::Env(name) => {
            report.secrets.note_env(name);
            match std::env::var(name) {
                Ok(v) => Some(Secret(v)),
                Err(_) => {
                    report.error(
                        raw,
                        format!("environment variable `{name}` is not set"),
                        None,
                    );
                    None
                }
            }
        }
        // Refused when group or others could read it, or another user owns it (files.rs).
        RawSecret::File(path) => {
            report.secrets.note_file(Path::new(path));
            match crate::files::read_secret_text(Path::new(path)) {
                Ok(v) => Some(Secret(v)),
                Err(e) => {
                    report.error(raw, e.to_string(), None);
                    None
                }
            }
        }
    }
}
