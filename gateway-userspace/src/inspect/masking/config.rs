//! The `masking:` section of the policy. Every field has a default, so an absent section means
//! "on, built-in detectors, redact".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What replaces a finding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// A typed placeholder: `[EMAIL]`, `[CARD]`, ...
    #[default]
    Redact,
    /// Keep a non-identifying part: card and SSN last 4, the email domain, phone last 2.
    /// Kinds without a safe partial form (secrets, dates of birth, IPv6) fall back to redact.
    Partial,
    /// `[EMAIL:3f9a1c2b7d4e]`: HMAC-SHA256 under the policy's key, so masked values stay joinable.
    Hash,
}

/// A built-in detector (also the key of the per-detector overrides and of the report).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    Email,
    Card,
    Ssn,
    Iban,
    Phone,
    /// IPv4 and IPv6; off by default (addresses in logs are rarely personal data to an operator).
    Ip,
    AwsKey,
    GithubToken,
    SlackToken,
    StripeKey,
    AnthropicKey,
    OpenaiKey,
    PrivateKey,
    Jwt,
    /// GitLab personal, project, deploy and runner tokens (`glpat-`, `gldt-`, `glrt-`, ...).
    GitlabToken,
    /// Google API keys (`AIza` + 35 characters).
    GoogleApiKey,
    /// npm access tokens (`npm_` + 36 characters).
    NpmToken,
    /// SendGrid API keys (`SG.` + two segments).
    SendgridKey,
    /// Hugging Face access tokens (`hf_` + 34 letters).
    HuggingfaceToken,
    /// Passwords in connection URLs (`postgres://user:PASSWORD@host`) and in `password=...`
    /// pairs of connection strings.
    Password,
    /// Only in columns named like dates of birth.
    Dob,
    /// A column rule that masks whole cells (`full: true`); not a content detector.
    Column,
}

impl DetectorKind {
    pub const ALL: [DetectorKind; 21] = [
        DetectorKind::Email,
        DetectorKind::Card,
        DetectorKind::Ssn,
        DetectorKind::Iban,
        DetectorKind::Phone,
        DetectorKind::Ip,
        DetectorKind::AwsKey,
        DetectorKind::GithubToken,
        DetectorKind::SlackToken,
        DetectorKind::StripeKey,
        DetectorKind::AnthropicKey,
        DetectorKind::OpenaiKey,
        DetectorKind::PrivateKey,
        DetectorKind::Jwt,
        DetectorKind::GitlabToken,
        DetectorKind::GoogleApiKey,
        DetectorKind::NpmToken,
        DetectorKind::SendgridKey,
        DetectorKind::HuggingfaceToken,
        DetectorKind::Password,
        DetectorKind::Dob,
    ];

    /// The placeholder label.
    pub fn label(self) -> &'static str {
        use DetectorKind::*;
        match self {
            Email => "EMAIL",
            Card => "CARD",
            Ssn => "SSN",
            Iban => "IBAN",
            Phone => "PHONE",
            Ip => "IP",
            AwsKey | GithubToken | SlackToken | StripeKey | AnthropicKey | OpenaiKey
            | PrivateKey | Jwt | GitlabToken | GoogleApiKey | NpmToken | SendgridKey
            | HuggingfaceToken => "SECRET",
            Password => "PASSWORD",
            Dob => "DOB",
            Column => "REDACTED",
        }
    }

    /// The name used in config and reports.
    pub fn name(self) -> &'static str {
        use DetectorKind::*;
        match self {
            Email => "email",
            Card => "card",
            Ssn => "ssn",
            Iban => "iban",
            Phone => "phone",
            Ip => "ip",
            AwsKey => "aws_key",
            GithubToken => "github_token",
            SlackToken => "slack_token",
            StripeKey => "stripe_key",
            AnthropicKey => "anthropic_key",
            OpenaiKey => "openai_key",
            PrivateKey => "private_key",
            Jwt => "jwt",
            GitlabToken => "gitlab_token",
            GoogleApiKey => "google_api_key",
            NpmToken => "npm_token",
            SendgridKey => "sendgrid_key",
            HuggingfaceToken => "huggingface_token",
            Password => "password",
            Dob => "dob",
            Column => "column",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    fn default_enabled(self) -> bool {
        !matches!(self, DetectorKind::Ip)
    }
}

/// Per-detector override.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    pub enabled: Option<bool>,
    pub strategy: Option<Strategy>,
}

/// A rule naming sensitive columns: by column name, by `table.column`, or by type. A column a
/// rule names is masked as the rule says where it is read directly, and any value computed from
/// it (`reverse(email)`, `row_to_json(c)`) is masked whole.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnRule {
    /// Column name, case-insensitive; `*` matches any run of characters (`*_notes`). Without
    /// `table`, it matches a result column of that name and a table column of that name, so
    /// `dob AS d` is still `dob`. `column:` is the same key.
    #[serde(default, alias = "column")]
    pub name: Option<String>,
    /// Table or view name (`customers`, or `schema.customers`), same glob syntax. With it the
    /// rule matches only columns of that table.
    #[serde(default)]
    pub table: Option<String>,
    /// Type name as PostgreSQL writes it (`bytea`, a domain such as `ssn_t`): columns of that
    /// type, and results of that type.
    #[serde(default, rename = "type")]
    pub type_name: Option<String>,
    /// Mask every non-empty cell of the column entirely (`[REDACTED]` under redact).
    #[serde(default)]
    pub full: bool,
    /// Treat the column like one of a detector's columns: `ssn` masks 9-digit SSNs,
    /// `dob` masks dates, any other kind masks every non-empty cell as that kind.
    #[serde(default, rename = "as")]
    pub treat_as: Option<DetectorKind>,
    /// Strategy for what this rule masks (default: the detector's, then the global one).
    #[serde(default)]
    pub strategy: Option<Strategy>,
}

impl ColumnRule {
    /// The placeholder kind of values derived from a column this rule names.
    pub fn kind(&self) -> DetectorKind {
        match self.treat_as {
            Some(k) if !self.full => k,
            _ => DetectorKind::Column,
        }
    }
}

/// Finding sensitive columns by sampling their values (`masking.sampling`), on sluice's own
/// upstream connection with the resource's credential. Only with `credentials: inject`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    pub enabled: bool,
    /// Rows read per table (the first ones the server returns).
    pub rows: u32,
    /// Time budget of one table's sample; over it, the table counts as not sampled.
    pub timeout_ms: u64,
    /// A column is sensitive when at least this share (percent) of its non-empty sampled values
    /// holds a finding.
    pub min_share_percent: u8,
    /// Samples and catalog entries are refreshed after this long (and after any DDL through
    /// sluice on the resource).
    pub refresh_secs: u64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            enabled: true,
            rows: 100,
            timeout_ms: 2_000,
            min_share_percent: 50,
            refresh_secs: 600,
        }
    }
}

/// Masking by where a value comes from (`masking.lineage`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LineageConfig {
    pub enabled: bool,
    /// Functions (lower-case names, any schema) that compute their result only from their
    /// arguments, in addition to the built-in list: a call of any other function sluice does not
    /// know may read any table, so its result is masked when the resource has sensitive columns.
    pub trusted_functions: Vec<String>,
}

impl Default for LineageConfig {
    fn default() -> Self {
        LineageConfig {
            enabled: true,
            trusted_functions: Vec::new(),
        }
    }
}

/// The `masking:` policy section.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaskingConfig {
    pub enabled: bool,
    /// Default strategy for every detector.
    pub strategy: Strategy,
    /// HMAC key for the `hash` strategy; required when any strategy is `hash` (a built-in key
    /// would let anyone precompute hashes of guessed values).
    pub hash_key: Option<String>,
    pub detectors: BTreeMap<DetectorKind, DetectorConfig>,
    pub columns: Vec<ColumnRule>,
    /// Recognise SSN and date-of-birth columns by name (`ssn`, `social_security_number`, `dob`,
    /// `date_of_birth`, ...).
    pub column_heuristics: bool,
    pub sampling: SamplingConfig,
    pub lineage: LineageConfig,
}

impl Default for MaskingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            strategy: Strategy::Redact,
            hash_key: None,
            detectors: BTreeMap::new(),
            columns: Vec::new(),
            column_heuristics: true,
            sampling: SamplingConfig::default(),
            lineage: LineageConfig::default(),
        }
    }
}

impl MaskingConfig {
    pub fn detector_enabled(&self, kind: DetectorKind) -> bool {
        self.enabled
            && self
                .detectors
                .get(&kind)
                .and_then(|d| d.enabled)
                .unwrap_or_else(|| kind.default_enabled())
    }

    pub fn strategy_for(&self, kind: DetectorKind) -> Strategy {
        self.detectors
            .get(&kind)
            .and_then(|d| d.strategy)
            .unwrap_or(self.strategy)
    }

    /// Every problem at once, as sentences naming the offending key.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        if self.detectors.contains_key(&DetectorKind::Column) {
            errors.push(
                "masking.detectors.column: `column` is not a detector; use masking.columns".into(),
            );
        }
        let mut uses_hash = self.strategy == Strategy::Hash
            || self
                .detectors
                .values()
                .any(|d| d.strategy == Some(Strategy::Hash));
        for (i, rule) in self.columns.iter().enumerate() {
            let blank = |v: &Option<String>| v.as_deref().is_some_and(|s| s.trim().is_empty());
            if blank(&rule.name) || blank(&rule.table) || blank(&rule.type_name) {
                errors.push(format!(
                    "masking.columns[{i}]: `name`/`column`, `table` and `type` must not be empty"
                ));
            }
            if rule.name.is_none() && rule.type_name.is_none() {
                errors.push(format!(
                    "masking.columns[{i}]: name a column (`column:` or `name:`, with `table:` to narrow it) or a `type:`"
                ));
            }
            match (rule.full, rule.treat_as) {
                (true, Some(_)) => errors.push(format!(
                    "masking.columns[{i}]: set either `full: true` or `as: <detector>`, not both"
                )),
                (false, None) => errors.push(format!(
                    "masking.columns[{i}]: set `full: true` or `as: <detector>`"
                )),
                (false, Some(DetectorKind::Column)) => errors.push(format!(
                    "masking.columns[{i}].as: `column` is not a detector; use `full: true`"
                )),
                _ => {}
            }
            uses_hash |= rule.strategy == Some(Strategy::Hash);
        }
        if !(1..=100).contains(&self.sampling.min_share_percent) {
            errors.push("masking.sampling.min_share_percent: must be between 1 and 100".into());
        }
        if self.sampling.rows > 10_000 {
            errors.push("masking.sampling.rows: at most 10000 rows are sampled per table".into());
        }
        if uses_hash && self.hash_key.as_deref().is_none_or(|k| k.len() < 16) {
            errors.push(
                "masking.hash_key: the `hash` strategy needs a secret key of at least 16 characters"
                    .into(),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_on_with_redact_and_ip_off() {
        let c = MaskingConfig::default();
        assert!(c.detector_enabled(DetectorKind::Email));
        assert!(!c.detector_enabled(DetectorKind::Ip));
        assert_eq!(c.strategy_for(DetectorKind::Card), Strategy::Redact);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn parses_overrides_and_rejects_unknown_fields() {
        let c: MaskingConfig = serde_json::from_str(
            r#"{"strategy":"partial","detectors":{"ip":{"enabled":true},"email":{"strategy":"redact"}},
                "columns":[{"name":"notes","full":true},{"name":"customer_ref","as":"ssn"}]}"#,
        )
        .unwrap();
        assert!(c.detector_enabled(DetectorKind::Ip));
        assert_eq!(c.strategy_for(DetectorKind::Card), Strategy::Partial);
        assert_eq!(c.strategy_for(DetectorKind::Email), Strategy::Redact);
        assert_eq!(c.columns[1].treat_as, Some(DetectorKind::Ssn));
        assert!(c.validate().is_ok());
        assert!(serde_json::from_str::<MaskingConfig>(r#"{"bogus":1}"#).is_err());
        assert!(serde_json::from_str::<MaskingConfig>(r#"{"detectors":{"emial":{}}}"#).is_err());
    }

    #[test]
    fn validate_reports_every_error() {
        let c: MaskingConfig = serde_json::from_str(
            r#"{"strategy":"hash","columns":[{"name":"a"},{"name":"","full":true,"as":"ssn"}]}"#,
        )
        .unwrap();
        let errs = c.validate().unwrap_err();
        assert_eq!(errs.len(), 4, "{errs:?}");
    }
}
