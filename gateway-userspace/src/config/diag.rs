//! Problems in a policy file, each with its `file:line:col` and a hint, collected while
//! validating so that every one is reported at once. A leaf: it imports no other sluice module,
//! so every section's settings module may use it without a cycle.

use std::{
    collections::BTreeSet,
    fmt,
    path::{Path, PathBuf},
};

use serde_saphyr::Spanned;

/// One problem in a policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub line: u64,
    pub column: u64,
    pub message: String,
    pub hint: Option<String>,
}

/// Every problem found in a policy file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: error: {}",
                self.file.display(),
                d.line,
                d.column,
                d.message
            )?;
            if let Some(hint) = &d.hint {
                write!(f, "\n  hint: {hint}")?;
            }
        }
        Ok(())
    }
}

/// The environment variables and files the policy's secrets come from: an agent must never get
/// such a variable (`sluice exec`) nor a Landlock grant over such a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretSources {
    pub env: BTreeSet<String>,
    pub files: BTreeSet<PathBuf>,
}

impl SecretSources {
    pub(crate) fn note_env(&mut self, name: &str) {
        self.env.insert(name.to_string());
    }

    pub(crate) fn note_file(&mut self, path: &Path) {
        self.files.insert(path.into());
    }
}

/// Collects diagnostics while validating (and where secrets came from).
#[derive(Default)]
pub(crate) struct Report {
    pub(crate) diagnostics: Vec<Diagnostic>,
    pub(crate) secrets: SecretSources,
}

impl Report {
    pub(crate) fn error<T>(
        &mut self,
        at: &Spanned<T>,
        message: impl Into<String>,
        hint: Option<&str>,
    ) {
        self.diagnostics.push(Diagnostic {
            line: at.referenced.line(),
            column: at.referenced.column(),
            message: message.into(),
            hint: hint.map(str::to_string),
        });
    }

    /// A problem with no position of its own (something missing from the whole file).
    pub(crate) fn error_at_start(&mut self, message: impl Into<String>, hint: Option<&str>) {
        self.diagnostics.push(Diagnostic {
            line: 1,
            column: 1,
            message: message.into(),
            hint: hint.map(str::to_string),
        });
    }

    /// Every problem, or the secrets' sources when there was none.
    pub(crate) fn finish(self, source: &Path) -> Result<SecretSources, ConfigError> {
        if self.diagnostics.is_empty() {
            Ok(self.secrets)
        } else {
            Err(ConfigError {
                file: source.into(),
                diagnostics: self.diagnostics,
            })
        }
    }
}
