//! Which table columns are sensitive, and what that makes of a derivation.
//!
//! A column is sensitive when a rule names it (by `table.column`, by name or by type), when its
//! name says it (`ssn`, `date_of_birth`), when sampling its values finds personal data in most
//! of them, when a view computes it from a sensitive column, or when a statement through sluice
//! wrote a value derived from one into it. [`Derivation::resolve`] turns a lineage into a
//! verdict against what the catalog knows ([`SensitivityView`]).

use super::{
    DetectorKind, MaskingEngine,
    lineage::{Derivation, RelName, Source},
};

/// How a sensitive column must be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sensitive {
    /// The placeholder kind of values derived from it.
    pub kind: DetectorKind,
    /// Even a plain read is masked whole: the stored value is itself a transformation
    /// (a view's computed column, a value written from a sensitive one) or unknowable (a
    /// temporary table sluice cannot sample). Otherwise a plain read goes through the content
    /// detectors, so decoys in a sensitive column survive.
    pub whole: bool,
}

/// What the catalog says about a source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lookup {
    pub kinds: Vec<DetectorKind>,
    /// The relation's contents could not be established (catalog unreachable, a temporary
    /// table of the agent's session, a sample that timed out).
    pub unknown: bool,
}

impl Lookup {
    pub fn add(&mut self, other: Lookup) {
        self.kinds.extend(other.kinds);
        self.unknown |= other.unknown;
    }
}

/// The catalog as lineage resolution needs it.
pub trait SensitivityView {
    fn column(&self, rel: &RelName, column: &str) -> Lookup;
    fn whole_row(&self, rel: &RelName) -> Lookup;
    /// A column of that name in any of `rels`.
    fn any_named(&self, column: &str, rels: &[RelName]) -> Lookup {
        let mut l = Lookup::default();
        for r in rels {
            l.add(self.column(r, column));
        }
        l
    }
    /// Whether a statement through sluice put a sensitive value into a session setting.
    fn settings_tainted(&self) -> bool {
        false
    }
    /// Whether the database has any sensitive column sluice knows of (or sluice cannot tell):
    /// an opaque function or an unknown relation could then read one.
    fn has_sensitive(&self) -> bool;
}

/// What the policy alone says (rules and column names), for sessions without a catalog
/// connection (`credentials: passthrough`): a table is known only by the name a statement
/// gives it.
pub struct ConfigView<'a> {
    pub engine: &'a MaskingEngine,
}

impl SensitivityView for ConfigView<'_> {
    fn column(&self, rel: &RelName, column: &str) -> Lookup {
        let ctx = super::ColumnContext {
            name: column,
            source: Some(super::SourceColumn {
                schema: rel.schema.as_deref().unwrap_or(""),
                table: &rel.name,
                column,
            }),
            type_name: None,
        };
        Lookup {
            kinds: self
                .engine
                .configured_sensitivity(&ctx)
                .into_iter()
                .collect(),
            unknown: false,
        }
    }

    fn whole_row(&self, rel: &RelName) -> Lookup {
        Lookup {
            kinds: self
                .engine
                .table_rule_kinds(rel.schema.as_deref().unwrap_or(""), &rel.name),
            unknown: false,
        }
    }

    fn has_sensitive(&self) -> bool {
        self.engine.has_column_rules()
    }
}

/// What an output value is, for masking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not derived from anything sensitive: the content detectors decide.
    Clean,
    /// Derived from sensitive columns: masked whole with this kind's placeholder.
    Sensitive(DetectorKind),
    /// Derivation unknown while sensitive columns exist: masked whole.
    Unknown,
}

impl Verdict {
    /// The placeholder kind when the value is masked whole.
    pub fn whole_kind(self) -> Option<DetectorKind> {
        match self {
            Verdict::Clean => None,
            Verdict::Sensitive(k) => Some(k),
            Verdict::Unknown => Some(DetectorKind::Column),
        }
    }
}

/// One kind when all agree, else the generic column placeholder.
pub fn merge_kinds(kinds: &[DetectorKind]) -> Option<DetectorKind> {
    let first = *kinds.first()?;
    Some(if kinds.iter().all(|k| *k == first) {
        first
    } else {
        DetectorKind::Column
    })
}

impl Derivation {
    /// The verdict for this derivation against `view`. `type_oid` is the output's type when it
    /// is a whole output column (a non-revealing root must produce its own type). `rels` are
    /// the statement's relations (for names no scope could place).
    pub fn resolve(
        &self,
        view: &dyn SensitivityView,
        type_oid: Option<u32>,
        rels: &[RelName],
    ) -> Verdict {
        if let Some((kind, must_be_clean)) = &self.sanitizer
            && type_oid.is_some_and(|t| kind.fits_type(t))
            && must_be_clean.resolve(view, None, rels) == Verdict::Clean
        {
            return Verdict::Clean;
        }
        let mut l = Lookup::default();
        for s in &self.sources {
            l.add(match s {
                Source::Column { rel, column } => view.column(rel, column),
                Source::WholeRow(rel) => view.whole_row(rel),
                Source::AnyColumnNamed(c) => view.any_named(c, rels),
                Source::Setting => Lookup {
                    kinds: view
                        .settings_tainted()
                        .then_some(DetectorKind::Column)
                        .into_iter()
                        .collect(),
                    unknown: false,
                },
            });
        }
        if let Some(k) = merge_kinds(&l.kinds) {
            return Verdict::Sensitive(k);
        }
        if (l.unknown || self.opaque) && view.has_sensitive() {
            return Verdict::Unknown;
        }
        Verdict::Clean
    }
}

/// Sampling's judgement of one column: the kind found in at least `min_share_percent` of its
/// non-empty values, if any.
pub fn judge_sample<'a>(
    engine: &MaskingEngine,
    values: impl IntoIterator<Item = &'a [u8]>,
    min_share_percent: u8,
) -> Option<DetectorKind> {
    let mut nonempty = 0u32;
    let mut hits = 0u32;
    let mut kinds: Vec<DetectorKind> = Vec::new();
    for v in values {
        if v.is_empty() {
            continue;
        }
        nonempty += 1;
        let Ok(spans) = engine.find(v) else {
            continue;
        };
        if let Some(s) = spans.first() {
            hits += 1;
            kinds.push(s.kind);
        }
    }
    if nonempty == 0 || hits * 100 < nonempty * u32::from(min_share_percent) {
        return None;
    }
    // The most frequent kind.
    kinds.sort();
    let mut best = (0usize, kinds[0]);
    let mut i = 0;
    while i < kinds.len() {
        let j = kinds[i..].iter().take_while(|k| **k == kinds[i]).count();
        if j > best.0 {
            best = (j, kinds[i]);
        }
        i += j;
    }
    Some(best.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::masking::lineage;

    /// A tiny catalog: customers(email sensitive, card sensitive), accounts(nothing).
    struct View;
    impl SensitivityView for View {
        fn column(&self, rel: &RelName, column: &str) -> Lookup {
            let kinds = match (rel.name.as_str(), column) {
                ("customers", "email") => vec![DetectorKind::Email],
                ("customers", "card") => vec![DetectorKind::Card],
                ("v", "r") => vec![DetectorKind::Email],
                _ => vec![],
            };
            Lookup {
                kinds,
                unknown: rel.name == "tmp",
            }
        }
        fn whole_row(&self, rel: &RelName) -> Lookup {
            match rel.name.as_str() {
                "customers" => Lookup {
                    kinds: vec![DetectorKind::Email, DetectorKind::Card],
                    unknown: false,
                },
                "tmp" => Lookup {
                    kinds: vec![],
                    unknown: true,
                },
                _ => Lookup::default(),
            }
        }
        fn has_sensitive(&self) -> bool {
            true
        }
    }

    /// Verdict per output column of a one-statement query whose outputs are all `One` slots;
    /// `types` are the result types (bool 16, int4 23, int8 20, text 25).
    pub(crate) fn verdicts(sql: &str, types: &[u32]) -> Vec<Verdict> {
        let l = lineage::analyze(sql, &[]);
        let s = &l.statements.as_ref().expect("parses")[0];
        let rels: Vec<RelName> = s.relations.iter().cloned().collect();
        let lineage::Output::Rows(slots) = &s.output else {
            panic!("not rows: {sql}")
        };
        slots
            .iter()
            .zip(types)
            .map(|(slot, t)| match slot {
                lineage::Slot::One(d) | lineage::Slot::Star(d) => d.resolve(&View, Some(*t), &rels),
            })
            .collect()
    }

    use Verdict::*;
    const E: Verdict = Sensitive(DetectorKind::Email);
    const C: Verdict = Sensitive(DetectorKind::Card);
    const R: Verdict = Sensitive(DetectorKind::Column);

    #[test]
    fn transformations_of_a_sensitive_column_are_sensitive() {
        for sql in [
            "select reverse(card) from customers",
            "select encode(convert_to(email, 'UTF8'), 'base64') from customers",
            "select email::bytea from customers",
            "select replace(email, '@', ' at ') from customers c",
            "select substr(c.email, 1, 5) from customers c",
            "select translate(email, 'abc', 'xyz') from customers",
            "select (select string_agg(ascii(substr(email, i, 1))::text, ',') from generate_series(1, length(email)) i) from customers",
            "select upper(x.e) from (select email as e from customers) x",
            "with t(e) as (select email from customers) select lower(e) from t",
            "select e || '' from (select email e from customers union select 'x') u",
            "select coalesce(null, email) from customers",
            "select case when id > 0 then email end from customers",
            "select max(email) from customers",
            "select md5(email) from customers",
            "select email ~~ '%' from customers",
        ] {
            let v = verdicts(sql, &[25]);
            assert!(
                matches!(v[0], Sensitive(_)),
                "{sql}: {v:?} (an agent could read the value back)"
            );
        }
        assert_eq!(verdicts("select reverse(card) from customers", &[25]), [C]);
        assert_eq!(
            verdicts("select email, 1 from customers", &[25, 23]),
            [E, Clean]
        );
    }

    #[test]
    fn whole_rows_carry_every_sensitive_column() {
        for sql in [
            "select row_to_json(c) from customers c",
            "select c::text from customers c",
            "select to_jsonb(c.*) from customers c",
            "select json_agg(customers) from customers",
            "select (select c from customers c limit 1)",
        ] {
            assert_eq!(verdicts(sql, &[25]), [R], "{sql}");
        }
    }

    #[test]
    fn non_revealing_roots_stay_clean_only_with_their_type() {
        assert_eq!(
            verdicts("select count(email) from customers", &[20]),
            [Clean]
        );
        assert_eq!(verdicts("select count(*) from customers", &[20]), [Clean]);
        assert_eq!(
            verdicts("select length(email) from customers", &[23]),
            [Clean]
        );
        assert_eq!(
            verdicts("select email is null from customers", &[16]),
            [Clean]
        );
        assert_eq!(
            verdicts("select email = 'a@b.io' from customers", &[16]),
            [Clean]
        );
        // The same roots over a transformed value, or with another result type, reveal.
        assert_eq!(
            verdicts("select substr(email, 1, 1) = 'a' from customers", &[16]),
            [E]
        );
        assert_eq!(
            verdicts(
                "select length(repeat('x', ascii(email))) from customers",
                &[23]
            ),
            [E]
        );
        assert_eq!(
            verdicts(
                "select count(*) filter (where substr(email,1,1) = 'a') from customers",
                &[20]
            ),
            [E]
        );
        assert_eq!(verdicts("select length(email) from customers", &[25]), [E]);
        assert_eq!(
            verdicts("select (email = 'x')::int + 1 from customers", &[23]),
            [E]
        );
    }

    #[test]
    fn unknown_functions_and_unknown_relations_fail_closed() {
        assert_eq!(
            verdicts("select my_func(id) from accounts", &[25]),
            [Unknown]
        );
        assert_eq!(
            verdicts(
                "select query_to_xml('select email from customers', true, false, '')",
                &[25]
            ),
            [Unknown]
        );
        assert_eq!(
            verdicts("select public.lower(name) from accounts", &[25]),
            [Unknown]
        );
        assert_eq!(verdicts("select x from tmp", &[25]), [Unknown]);
        assert_eq!(verdicts("select lower(name) from accounts", &[25]), [Clean]);
        assert_eq!(verdicts("select now(), 1 + 2", &[25, 23]), [Clean, Clean]);
    }

    #[test]
    fn sampling_needs_most_values_to_hold_a_finding() {
        let e = MaskingEngine::with_defaults().unwrap();
        let v: [&[u8]; 3] = [b"ada@example.com", b"bob@example.org", b"n/a"];
        assert_eq!(judge_sample(&e, v, 50), Some(DetectorKind::Email));
        let v: [&[u8]; 3] = [b"ada@example.com", b"x", b"n/a"];
        assert_eq!(judge_sample(&e, v, 50), None);
        let v: [&[u8]; 2] = [b"", b""];
        assert_eq!(judge_sample(&e, v, 50), None);
    }
}
