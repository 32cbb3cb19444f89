//! Masking of everything the database sends the agent: result rows (text and binary, every
//! type), COPY out (text, CSV, binary), errors and notices, `ParameterStatus` and notifications.
//!
//! Each result set gets a plan when its columns are known ([`ResultPlan`]): a column read
//! plainly from a table goes through the content detectors (with the rules for that table
//! column); a column computed from a sensitive column, or computed in a way sluice cannot
//! establish while the database has sensitive columns, is masked whole. Plans are per
//! statement and per portal ([`super::masking_plan`]).
//!
//! A value that must be masked but whose binary type cannot hold a placeholder ends the result
//! with an ErrorResponse; the rest of the server's answer up to `ReadyForQuery` is dropped.

mod copy;
mod lineages;
mod notice;
mod plan;
mod status;

use copy::CopyPlan;
pub use lineages::LineageCache;
pub use notice::mask_notice;

use std::{
    collections::{BTreeSet, VecDeque},
    hash::{Hash, Hasher},
    sync::Arc,
};

use super::{
    binary::{self, Cell, Shape},
    catalog::Catalog,
    codec::{self, Column, Message, SQLSTATE_REFUSED},
    hold::PreviewLogin,
    masking_plan::{Event, PlanTracker, Portal},
};
use crate::{
    conn::ConnCtx,
    inspect::{
        guardrails::shape::literal_shape,
        masking::{
            ColumnContext, ColumnPlan, DetectorKind, MaskError, MaskingEngine, Report,
            SourceColumn,
            lineage::{self, Derivation, Lineage, Output, RelName, Slot, StatementLineage},
            sensitivity::{SensitivityView, Verdict},
        },
    },
    services::Services,
};

/// Masking could not be done; the response is withheld and the session ends (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum MaskFailure {
    #[error("{0}")]
    Codec(#[from] codec::CodecError),
    #[error("{0}")]
    Mask(#[from] MaskError),
}

/// What to send the agent for one message from the server.
pub enum Handled {
    Forward(Message),
    /// Not for the agent (the answer to sluice's own `Describe`, the rest of a refused result).
    Swallow,
    /// The result cannot be masked in the format asked for: this error goes to the agent, and
    /// the server's answer is dropped up to its `ReadyForQuery`.
    Refuse(Message),
}

/// How one column's cells are masked.
#[derive(Clone, Debug)]
enum Action {
    /// The content detectors (and the rules for the column).
    Content(ColumnPlan),
    /// Every non-NULL cell becomes this kind's placeholder.
    Whole(DetectorKind),
}

#[derive(Clone, Debug)]
struct ColMask {
    name: String,
    type_oid: u32,
    format: i16,
    shape: Shape,
    action: Action,
}

/// A result set's masking plan.
#[derive(Debug)]
pub struct ResultPlan {
    cols: Vec<ColMask>,
    /// Some column needs work even when the row prefilter finds nothing.
    cell_work: bool,
    /// Rows of a result sluice cannot attribute: refused if the database has sensitive data.
    unattributed: bool,
}

/// Per session: masks what the database sends.
pub struct ResponseMasker<'a> {
    ctx: &'a ConnCtx,
    services: &'a Services,
    pg: &'a super::State,
    tracker: &'a PlanTracker,
    catalog: Arc<Catalog>,
    engine: Arc<MaskingEngine>,
    plan: Option<Arc<ResultPlan>>,
    plans: VecDeque<(u64, Arc<ResultPlan>)>,
    copy: Option<CopyPlan>,
    discarding: bool,
    /// Inside a result set whose first message the tracker has seen: further `DataRow`s
    /// change nothing there, so they skip it (a lock per row on bulk reads).
    in_rows: bool,
}

/// Plans kept per session (a session runs few distinct result shapes).
const PLANS_KEPT: usize = 32;

/// The catalog of the session's database (shared with the other sessions to it).
pub fn catalog_for(ctx: &ConnCtx, pg: &super::State, login: Option<&PreviewLogin>) -> Arc<Catalog> {
    let db = login
        .and_then(|l| l.params.iter().find(|(k, _)| k == "database"))
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let key = match login {
        Some(l) => format!("{}\0{}\0{}", ctx.resource.name, db, l.user),
        None => format!("{}\0passthrough", ctx.resource.name),
    };
    pg.catalogs.get(&key, || Catalog::new(ctx, login.cloned()))
}

/// The session's statement hook: a statement that puts a value read from the database into a
/// setting or a notification (`set_config('application_name', email, ...)`,
/// `pg_notify('c', reverse(ssn))`) taints settings and notifications before it runs, so that
/// no session (this one or one listening) sees them in clear, whichever is first.
pub fn statement_hook(
    services: &Services,
    pg: &super::State,
    catalog: Arc<Catalog>,
) -> super::masking_plan::StatementHook {
    let lineages = pg.catalogs.lineage.clone();
    let engine = services.masker();
    let trusted = engine.config().lineage.trusted_functions.clone();
    Box::new(move |sql: &str| {
        if !mentions_export(sql) {
            return;
        }
        let l = lineages.get(sql, &trusted);
        let exports = match &l.statements {
            Some(s) => s.iter().any(|s| s.exports_state),
            None => true,
        };
        if exports {
            catalog.taint_settings();
        }
    })
}

impl<'a> ResponseMasker<'a> {
    pub fn new(
        ctx: &'a ConnCtx,
        services: &'a Services,
        pg: &'a super::State,
        tracker: &'a PlanTracker,
        catalog: Arc<Catalog>,
    ) -> Self {
        ResponseMasker {
            ctx,
            services,
            pg,
            tracker,
            catalog,
            engine: services.masker(),
            plan: None,
            plans: VecDeque::new(),
            copy: None,
            discarding: false,
            in_rows: false,
        }
    }

    fn lineages(&self) -> &LineageCache {
        &self.pg.catalogs.lineage
    }

    fn lineage(&self, sql: &str) -> Arc<Lineage> {
        self.lineages()
            .get(sql, &self.engine.config().lineage.trusted_functions)
    }

    /// One message from the server.
    pub async fn handle(&mut self, msg: Message) -> Result<Handled, MaskFailure> {
        let event = if msg.tag == b'D' && self.in_rows {
            Event::Rows
        } else {
            self.tracker.on_backend(&msg)
        };
        if matches!(event, Event::Internal) {
            self.in_rows = false;
            return Ok(Handled::Forward(msg));
        }
        self.in_rows = match msg.tag {
            b'D' => true,
            b'T' => matches!(event, Event::ResultSet { .. }),
            _ => false,
        };
        if self.discarding {
            match msg.tag {
                b'Z' => self.discarding = false,
                b'N' | b'S' | b'A' => {}
                _ => return Ok(Handled::Swallow),
            }
        }
        let out = match msg.tag {
            b'T' => match event {
                Event::Swallow => return Ok(Handled::Swallow),
                Event::ResultSet { sql, index } => {
                    self.engine = self.services.masker();
                    let cols = codec::row_description(msg.body())?;
                    self.plan = Some(self.plan_for(Some(&sql), index, &cols).await);
                    msg
                }
                _ => msg,
            },
            b'n' if matches!(event, Event::Swallow) => return Ok(Handled::Swallow),
            b'D' => {
                if let Event::PortalStart { portal } = &event {
                    self.engine = self.services.masker();
                    self.plan = Some(self.portal_plan(portal.as_ref()).await);
                }
                let plan = match &self.plan {
                    Some(p) => p.clone(),
                    None => Arc::new(self.unattributed(0)),
                };
                if plan.unattributed {
                    self.catalog.survey(&self.engine.clone()).await;
                }
                let r = self.mask_row(msg, &plan)?;
                if matches!(r, Handled::Refuse(_)) {
                    self.discarding = true;
                }
                return Ok(r);
            }
            b'H' => {
                self.engine = self.services.masker();
                self.copy = match event {
                    Event::CopyOut { sql, index } => Some(self.copy_plan(sql, index, &msg).await),
                    _ => Some(self.copy_plan(None, 0, &msg).await),
                };
                msg
            }
            b'd' => match &mut self.copy {
                Some(_) => self.mask_copy(msg)?,
                None => msg,
            },
            b'c' => {
                self.copy = None;
                msg
            }
            b'C' => {
                if let Event::Complete { sql, index } = &event {
                    self.completed(sql, *index, &msg).await;
                }
                msg
            }
            b'E' | b'N' => {
                let tainted = self.statements_tainted().await;
                let statements = self.tracker.current_statements();
                mask_notice(msg, &self.engine, tainted, &statements)?
            }
            b'S' => self.parameter_status(msg).await?,
            b'A' => self.notification(msg).await?,
            b'Z' => {
                self.plan = None;
                self.copy = None;
                msg
            }
            _ => msg,
        };
        Ok(Handled::Forward(out))
    }

    /// Masks the cells of a DataRow; forwarded as received when nothing matched.
    fn mask_row(&self, msg: Message, plan: &ResultPlan) -> Result<Handled, MaskFailure> {
        let engine = &*self.engine;
        if !engine.config().enabled {
            return Ok(Handled::Forward(msg));
        }
        if plan.unattributed {
            let view = self.catalog.view(engine);
            if view.has_sensitive() {
                drop(view);
                return Ok(self.refuse(
                    "sluice: rows arrived that sluice cannot attribute to a statement, and the database holds sensitive data; they were withheld".into(),
                    "Describe the portal before executing it, or use the simple query protocol.",
                ));
            }
        }
        if !plan.cell_work && !engine.could_contain(msg.body())? {
            return Ok(Handled::Forward(msg));
        }
        let fields = codec::data_row_fields(msg.body())?;
        let body = msg.body();
        let mut changed = false;
        let mut report = Report::default();
        let mut values: Vec<Option<std::borrow::Cow<[u8]>>> = Vec::with_capacity(fields.len());
        let types = |o: u32| self.catalog.type_info(o);
        let catalog: &binary::Types = &types;
        for (i, f) in fields.iter().enumerate() {
            let Some(range) = f else {
                values.push(None);
                continue;
            };
            let value = &body[range.clone()];
            let masked = match plan.cols.get(i) {
                None => binary::mask_content(
                    engine,
                    &engine.plan_column(&ColumnContext::default()),
                    value,
                    Shape::Unknown,
                    0,
                    catalog,
                    &mut report,
                )?,
                Some(c) => match &c.action {
                    // An empty value says no more than a NULL does.
                    Action::Whole(_) if value.is_empty() => Cell::Unchanged,
                    Action::Whole(kind) => {
                        match binary::whole_value(engine, *kind, value, c.shape, c.format) {
                            Some(v) => Cell::Masked(v),
                            None => Cell::Refuse,
                        }
                    }
                    Action::Content(p) => binary::mask_content(
                        engine,
                        p,
                        value,
                        c.shape,
                        c.format,
                        catalog,
                        &mut report,
                    )?,
                },
            };
            match masked {
                Cell::Unchanged => values.push(Some(value.into())),
                Cell::Masked(m) => {
                    changed = true;
                    values.push(Some(m.into()));
                }
                Cell::Refuse => {
                    let c = plan.cols.get(i);
                    let name = c.map(|c| c.name.as_str()).unwrap_or("?");
                    let ty = c.map(|c| c.type_oid).unwrap_or(0);
                    return Ok(self.refuse(
                        format!(
                            "sluice: column {} (\"{name}\") must be masked, and values of its type (OID {ty}) cannot hold a masked value in binary format; the result was withheld",
                            i + 1
                        ),
                        "Ask for this column in text format, or cast it to text in the query (`col::text`) to receive it masked.",
                    ));
                }
            }
        }
        if !changed {
            return Ok(Handled::Forward(msg));
        }
        let refs: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref()).collect();
        Ok(Handled::Forward(codec::build_data_row(&refs)))
    }

    fn refuse(&self, message: String, hint: &str) -> Handled {
        tracing::warn!(event = "masking_refused", conn_id = self.ctx.id, reason = %message);
        Handled::Refuse(codec::error_response(
            SQLSTATE_REFUSED,
            &message,
            None,
            Some(hint),
        ))
    }

    /// Whether the statements the server is answering read anything sensitive (or cannot be
    /// told): their errors and notices may quote it.
    async fn statements_tainted(&mut self) -> bool {
        let engine = self.engine.clone();
        if !engine.config().enabled || !engine.config().lineage.enabled {
            return false;
        }
        for sql in self.tracker.current_statements() {
            if sql.is_empty() {
                // A portal sluice does not know.
                self.catalog.survey(&engine).await;
                if self.catalog.view(&engine).has_sensitive() {
                    return true;
                }
                continue;
            }
            let l = self.lineage(&sql);
            self.catalog.ensure(&engine, &[], &l.relations(), &[]).await;
            let rels: Vec<RelName> = l.relations().into_iter().collect();
            let mut all = l.all();
            for s in l.statements.iter().flatten() {
                all.absorb(s.exported.clone());
                for w in &s.writes {
                    all.absorb(w.from.clone());
                }
            }
            if all.opaque {
                self.catalog.survey(&engine).await;
            }
            if all.resolve(&self.catalog.view(&engine), None, &rels) != Verdict::Clean {
                return true;
            }
        }
        false
    }

    /// DDL refreshes the catalog; a write of a sensitive-derived value taints its column; a
    /// setting or notification given one taints settings.
    async fn completed(&mut self, sql: &str, index: usize, msg: &Message) {
        let tag = codec::query_text(msg.body()).unwrap_or_default();
        let verb = tag.split(' ').next().unwrap_or("");
        if matches!(
            verb,
            "CREATE" | "ALTER" | "DROP" | "COMMENT" | "GRANT" | "REVOKE" | "REFRESH" | "IMPORT"
        ) {
            self.catalog.invalidate();
        }
        // Cheap prefilters (no statement without these words can write or export).
        let may_write = matches!(verb, "INSERT" | "UPDATE" | "MERGE" | "CREATE")
            || (verb == "SELECT" && (mentions(sql, "into") || mentions(sql, "create")));
        let may_export = mentions_export(sql);
        if !(may_write || may_export) || !self.engine.config().lineage.enabled {
            return;
        }
        let engine = self.engine.clone();
        let l = self.lineage(sql);
        let Some(st) = l.statements.as_ref().and_then(|s| s.get(index)).cloned() else {
            return;
        };
        let mut names = st.relations.clone();
        for w in &st.writes {
            names.insert(w.rel.clone());
        }
        self.catalog.ensure(&engine, &[], &names, &[]).await;
        let rels: Vec<RelName> = names.into_iter().collect();
        let mut taints = Vec::new();
        let mut settings = false;
        {
            let view = self.catalog.view(&engine);
            for w in &st.writes {
                if let Some(kind) = w.from.resolve(&view, None, &rels).whole_kind() {
                    taints.push((w.rel.clone(), w.column.clone(), kind));
                }
            }
            if st.exports_state && st.exported.resolve(&view, None, &rels) != Verdict::Clean {
                settings = true;
            }
        }
        for (rel, col, kind) in taints {
            self.catalog.taint_written(&rel, col.as_deref(), kind);
        }
        if settings {
            self.catalog.taint_settings();
        }
    }
}

/// Whether `sql` contains `needle`, ASCII case-insensitively.
pub(crate) fn mentions(sql: &str, needle: &str) -> bool {
    let n = needle.as_bytes();
    let first = n[0].to_ascii_lowercase();
    sql.as_bytes()
        .windows(n.len())
        .any(|w| w[0].to_ascii_lowercase() == first && w.eq_ignore_ascii_case(n))
}

/// Whether `sql` may pass a value to `set_config` or `pg_notify` (also spelled with Unicode
/// escapes, `U&"..."`, which the word search cannot see through).
fn mentions_export(sql: &str) -> bool {
    mentions(sql, "set_config") || mentions(sql, "pg_notify") || mentions(sql, "u&")
}
