//! What masking needs to know about a database, read on sluice's own upstream connection (the
//! resource's injected credential, never the agent's session): relations by OID and by name
//! with their columns and types, view definitions, type details for binary results, and a
//! bounded sample of each table's values. Cached per resource and database, shared by every
//! session, refreshed after `refresh_secs` and after DDL through sluice.
//!
//! Every lookup is bounded in time. When the catalog cannot be reached, every relation counts
//! as unknown, so derived values are masked (fail closed).

mod query;
mod view;

use query::{
    SampleError, byte, fetch_relations, join_numbers, num, sample_table, simple_query, text,
};
pub use view::CatalogView;

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tracing::{debug, warn};

use super::{
    codec,
    upstream::{BoxIo, PreviewLogin},
};
use crate::{
    conn::ConnCtx,
    inspect::masking::{
        ColumnContext, DetectorKind, MaskingEngine, SourceColumn,
        lineage::{self, Output, RelName, Slot},
        sensitivity::{Lookup, Sensitive, SensitivityView, Verdict, judge_sample},
    },
};

/// A catalog per resource and database; more are not kept (the oldest is dropped).
const MAX_CATALOGS: usize = 256;
/// Relations and types fetched per round trip, and in total per statement.
const MAX_FETCH: usize = 200;
/// Views are followed this deep (a view over a view over a table).
const MAX_VIEW_DEPTH: usize = 4;
/// Columns sampled per table, and bytes kept per sampled value.
const MAX_SAMPLED_COLUMNS: usize = 200;
const SAMPLE_VALUE_BYTES: usize = 400;
/// Connecting and logging in.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Catalog queries (not samples).
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failure, lookups fail at once for this long instead of each waiting for a timeout.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Schemas whose relations describe the database, not its data.
fn is_system_schema(s: &str) -> bool {
    matches!(s, "pg_catalog" | "information_schema" | "pg_toast")
}

/// Columns of system views that show session settings: after a statement through sluice put a
/// value derived from a sensitive column into a setting (`set_config`), they are masked.
fn shows_settings(schema: &str, table: &str, column: &str) -> bool {
    schema == "pg_catalog"
        && matches!(
            (table, column),
            ("pg_settings", "setting" | "reset_val" | "boot_val")
                | ("pg_stat_activity", "application_name" | "query")
                | ("pg_file_settings", "setting")
                | ("pg_db_role_setting", "setconfig")
        )
}

/// The catalogs of every resource and database sessions reached, and the lineages of the
/// statements they ran.
#[derive(Default)]
pub struct Registry {
    map: Mutex<Vec<(String, Arc<Catalog>)>>,
    pub lineage: Arc<super::response::LineageCache>,
}

impl Registry {
    /// The catalog for `key`, made by `make` the first time.
    pub fn get(&self, key: &str, make: impl FnOnce() -> Catalog) -> Arc<Catalog> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, c)) = map.iter().find(|(k, _)| k == key) {
            return c.clone();
        }
        if map.len() >= MAX_CATALOGS {
            map.remove(0);
        }
        let c = Arc::new(make());
        map.push((key.to_string(), c.clone()));
        c
    }
}

/// A table column.
#[derive(Clone, Debug)]
pub struct ColInfo {
    pub attnum: i16,
    pub name: String,
    pub type_oid: u32,
    pub type_name: String,
}

/// A relation and what is known of its columns.
#[derive(Debug)]
pub struct RelInfo {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub relkind: u8,
    pub columns: Vec<ColInfo>,
    pub sensitive: HashMap<String, Sensitive>,
    /// Its contents could not be established (a temporary table of another session, a sample
    /// that failed): whatever is read from it may be sensitive.
    pub unknown: bool,
    fetched: Instant,
}

impl RelInfo {
    pub fn column(&self, attnum: i16) -> Option<&ColInfo> {
        self.columns.iter().find(|c| c.attnum == attnum)
    }
}

/// A type, for binary results of types sluice has no built-in knowledge of.
#[derive(Clone, Debug)]
pub struct TypeInfo {
    pub name: String,
    /// `b` base, `c` composite, `d` domain, `e` enum, `r` range, `m` multirange, `p` pseudo.
    pub typtype: u8,
    pub elem: u32,
    pub base: u32,
    /// `A` for arrays.
    pub category: u8,
}

#[derive(Default)]
struct State {
    rels: HashMap<u32, Arc<RelInfo>>,
    /// Relation name → OIDs of every relation of that name (any schema), when fetched.
    names: HashMap<String, (Instant, Vec<u32>)>,
    types: HashMap<u32, Arc<TypeInfo>>,
    /// Columns a statement through sluice wrote values derived from sensitive columns into:
    /// (relation name, column or every column).
    written: HashMap<(String, Option<String>), DetectorKind>,
    /// A statement through sluice put sensitive data into a setting or a notification.
    settings_tainted: bool,
    /// The last failure: lookups count as unknown until `RETRY_AFTER` has passed.
    failed_at: Option<Instant>,
    /// When every user table was last looked at ([`Catalog::survey`]).
    surveyed_at: Option<Instant>,
    generation: u64,
}

/// One database as masking sees it.
pub struct Catalog {
    ctx: ConnCtx,
    /// `None` with passthrough credentials: sluice has no login of its own, so only the
    /// policy's rules are known.
    login: Option<PreviewLogin>,
    conn: tokio::sync::Mutex<Option<BoxIo>>,
    state: RwLock<State>,
}

impl Catalog {
    pub fn new(ctx: &ConnCtx, login: Option<PreviewLogin>) -> Catalog {
        let login = login.map(|mut l| {
            l.params.retain(|(k, _)| k != "application_name");
            l.params
                .push(("application_name".into(), "sluice-masking-catalog".into()));
            l
        });
        Catalog {
            ctx: ctx.clone(),
            login,
            conn: tokio::sync::Mutex::new(None),
            state: RwLock::new(State::default()),
        }
    }

    /// Whether this catalog can read the database (it has a login of its own).
    pub fn connected_mode(&self) -> bool {
        self.login.is_some()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes whenever cached knowledge is dropped or a taint is added: plans made before are
    /// stale.
    pub fn generation(&self) -> u64 {
        self.read().generation
    }

    /// Forgets relations and types (after DDL). Taints stay: the data they describe does.
    pub fn invalidate(&self) {
        let mut s = self.write();
        s.rels.clear();
        s.names.clear();
        s.types.clear();
        s.surveyed_at = None;
        s.generation += 1;
    }

    /// Records that `rel.column` (every column when `None`) now holds values of `kind`.
    pub fn taint_written(&self, rel: &RelName, column: Option<&str>, kind: DetectorKind) {
        let mut s = self.write();
        if s.written.len() >= 10_000 {
            return;
        }
        let key = (rel.name.clone(), column.map(str::to_string));
        if s.written.insert(key, kind) != Some(kind) {
            s.generation += 1;
        }
    }

    /// Records that data went into a setting or a notification (`set_config`, `pg_notify` with
    /// a value read from the database): settings readers and notification payloads are masked
    /// whole from now on, in every session of this database.
    pub fn taint_settings(&self) {
        let mut s = self.write();
        if !s.settings_tainted {
            s.settings_tainted = true;
            s.generation += 1;
        }
    }

    pub fn settings_tainted(&self) -> bool {
        self.read().settings_tainted
    }

    pub fn relation(&self, oid: u32) -> Option<Arc<RelInfo>> {
        self.read().rels.get(&oid).cloned()
    }

    pub fn type_info(&self, oid: u32) -> Option<Arc<TypeInfo>> {
        self.read().types.get(&oid).cloned()
    }

    /// A view of what is known now, for resolving lineages.
    pub fn view<'a>(&'a self, engine: &'a MaskingEngine) -> CatalogView<'a> {
        CatalogView {
            state: self.read(),
            engine,
            connected: self.login.is_some(),
        }
    }

    /// Makes sure relations (by OID and by name) and types are known, fetching and sampling
    /// what is missing or older than the refresh interval. Errors are logged and leave the
    /// missing entries unknown.
    pub async fn ensure(
        &self,
        engine: &MaskingEngine,
        oids: &[u32],
        names: &BTreeSet<RelName>,
        types: &[u32],
    ) {
        if self.login.is_none() {
            return;
        }
        let refresh = Duration::from_secs(engine.config().sampling.refresh_secs.max(1));
        if self.missing(oids, names, types, refresh).is_none() {
            return;
        }
        let mut conn = self.conn.lock().await;
        // Another session may have fetched it meanwhile.
        let Some((oids, names, types)) = self.missing(oids, names, types, refresh) else {
            return;
        };
        if let Some(at) = self.read().failed_at
            && at.elapsed() < RETRY_AFTER
        {
            return;
        }
        match self.fetch(&mut conn, engine, oids, names, types).await {
            Ok(()) => self.write().failed_at = None,
            Err(e) => {
                warn!(event = "masking_catalog_failed", conn_id = self.ctx.id, resource = %self.ctx.resource.name,
                      error = %e, "masking catalog lookup failed; derived values are masked");
                *conn = None;
                let mut s = self.write();
                s.failed_at = Some(Instant::now());
                s.generation += 1;
            }
        }
    }

    /// Looks at every user table (up to [`MAX_FETCH`]), once per refresh interval: a value
    /// sluice cannot attribute (an opaque function, rows of an unknown statement) could come
    /// from any of them, so whether the database holds sensitive data must not depend on which
    /// tables earlier statements happened to name.
    pub async fn survey(&self, engine: &MaskingEngine) {
        if self.login.is_none() {
            return;
        }
        let refresh = Duration::from_secs(engine.config().sampling.refresh_secs.max(1));
        if self
            .read()
            .surveyed_at
            .is_some_and(|t| t.elapsed() < refresh)
        {
            return;
        }
        let names = {
            let mut conn = self.conn.lock().await;
            if self
                .read()
                .surveyed_at
                .is_some_and(|t| t.elapsed() < refresh)
            {
                return;
            }
            if conn.is_none() {
                match self.connect().await {
                    Ok(c) => *conn = Some(c),
                    Err(e) => {
                        warn!(event = "masking_catalog_failed", conn_id = self.ctx.id, error = %e,
                              "masking catalog unreachable; derived values are masked");
                        self.write().failed_at = Some(Instant::now());
                        return;
                    }
                }
            }
            let io = conn.as_mut().expect("connected");
            let sql = format!(
                "SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relpersistence <> 't' \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
                 AND n.nspname NOT LIKE 'pg\\_temp%' ORDER BY c.oid LIMIT {MAX_FETCH}"
            );
            match simple_query(io, &sql, QUERY_TIMEOUT).await {
                Ok(rows) => rows
                    .into_iter()
                    .filter_map(|r| text(&r, 0))
                    .map(|name| RelName { schema: None, name })
                    .collect::<BTreeSet<_>>(),
                Err(e) => {
                    warn!(event = "masking_catalog_failed", conn_id = self.ctx.id, error = %e,
                          "masking catalog survey failed");
                    *conn = None;
                    self.write().failed_at = Some(Instant::now());
                    return;
                }
            }
        };
        self.ensure(engine, &[], &names, &[]).await;
        self.write().surveyed_at = Some(Instant::now());
    }

    #[allow(clippy::type_complexity)]
    fn missing(
        &self,
        oids: &[u32],
        names: &BTreeSet<RelName>,
        types: &[u32],
        refresh: Duration,
    ) -> Option<(Vec<u32>, Vec<String>, Vec<u32>)> {
        let s = self.read();
        let fresh = |t: Instant| t.elapsed() < refresh;
        let o: Vec<u32> = oids
            .iter()
            .copied()
            .filter(|o| *o != 0 && !s.rels.get(o).is_some_and(|r| fresh(r.fetched)))
            .take(MAX_FETCH)
            .collect();
        let n: Vec<String> = names
            .iter()
            .map(|r| r.name.clone())
            .filter(|n| !s.names.get(n).is_some_and(|(t, _)| fresh(*t)))
            .take(MAX_FETCH)
            .collect();
        let t: Vec<u32> = types
            .iter()
            .copied()
            .filter(|t| *t != 0 && !s.types.contains_key(t))
            .take(MAX_FETCH)
            .collect();
        (!(o.is_empty() && n.is_empty() && t.is_empty())).then_some((o, n, t))
    }

    async fn fetch(
        &self,
        conn: &mut Option<BoxIo>,
        engine: &MaskingEngine,
        mut oids: Vec<u32>,
        mut names: Vec<String>,
        types: Vec<u32>,
    ) -> Result<(), String> {
        if conn.is_none() {
            *conn = Some(self.connect().await?);
        }
        let io = conn.as_mut().expect("connected");
        if !types.is_empty() {
            self.fetch_types(io, &types).await?;
        }
        let mut new_rels: Vec<RelInfo> = Vec::new();
        let mut views: Vec<(usize, String)> = Vec::new();
        let mut fetched_names: Vec<String> = Vec::new();
        for _ in 0..MAX_VIEW_DEPTH {
            if oids.is_empty() && names.is_empty() {
                break;
            }
            let (rels, defs) = fetch_relations(io, &oids, &names).await?;
            fetched_names.append(&mut names);
            oids.clear();
            for (rel, def) in rels.into_iter().zip(defs) {
                if new_rels.iter().any(|r| r.oid == rel.oid) {
                    continue;
                }
                if let Some(def) = def
                    && !is_system_schema(&rel.schema)
                {
                    // A view: what it reads must be known too. (System views describe the
                    // database, not its data: their columns are read by content, with the
                    // settings columns of `shows_settings` as the exception.)
                    let l = lineage::analyze(&def, &engine.config().lineage.trusted_functions);
                    let known = self.read();
                    for r in l.relations() {
                        if !fetched_names.contains(&r.name)
                            && !names.contains(&r.name)
                            && !known.names.contains_key(&r.name)
                        {
                            names.push(r.name);
                        }
                    }
                    drop(known);
                    views.push((new_rels.len(), def));
                }
                new_rels.push(rel);
            }
            names.truncate(MAX_FETCH);
        }
        // Tables: rules, names, samples.
        let sampling = engine.config().sampling.clone();
        for rel in new_rels.iter_mut() {
            self.configured(engine, rel);
            let sample = sampling.enabled
                && matches!(rel.relkind, b'r' | b'p' | b'm' | b'f')
                && !is_system_schema(&rel.schema);
            if rel.unknown || !sample {
                continue;
            }
            match sample_table(io, engine, rel, &sampling).await {
                Ok(found) => {
                    for (col, kind) in found {
                        rel.sensitive
                            .entry(col)
                            .or_insert(Sensitive { kind, whole: false });
                    }
                }
                // The gateway's role cannot read it: neither can the agent, which uses it.
                Err(SampleError::Denied) => {}
                Err(SampleError::Failed(e)) => {
                    debug!(event = "masking_sample_failed", table = %rel.name, error = %e);
                    rel.unknown = true;
                }
                Err(SampleError::Io(e)) => return Err(e),
            }
        }
        {
            let mut s = self.write();
            let now = Instant::now();
            for n in &fetched_names {
                s.names.insert(n.clone(), (now, Vec::new()));
            }
            for rel in &new_rels {
                if let Some(e) = s.names.get_mut(&rel.name)
                    && !e.1.contains(&rel.oid)
                {
                    e.1.push(rel.oid);
                }
            }
            let view_oids: Vec<u32> = views.iter().map(|(i, _)| new_rels[*i].oid).collect();
            for rel in new_rels {
                s.rels.insert(rel.oid, Arc::new(rel));
            }
            s.generation += 1;
            drop(s);
            // Views: their columns are what their definitions compute. Resolved against what is
            // known now, innermost first (a few passes settle views over views).
            for _ in 0..MAX_VIEW_DEPTH {
                for ((_, def), oid) in views.iter().zip(&view_oids) {
                    self.resolve_view(engine, *oid, def);
                }
            }
        }
        Ok(())
    }

    /// Sensitivity that needs no sample: rules, column names, temporary tables.
    fn configured(&self, engine: &MaskingEngine, rel: &mut RelInfo) {
        if is_system_schema(&rel.schema) {
            return;
        }
        for c in &rel.columns {
            let ctx = ColumnContext {
                name: &c.name,
                source: Some(SourceColumn {
                    schema: &rel.schema,
                    table: &rel.name,
                    column: &c.name,
                }),
                type_name: Some(&c.type_name),
            };
            if let Some(kind) = engine.configured_sensitivity(&ctx) {
                rel.sensitive
                    .insert(c.name.clone(), Sensitive { kind, whole: false });
            } else if let Some(kind) = engine.type_rule_kind(&c.type_name) {
                rel.sensitive
                    .insert(c.name.clone(), Sensitive { kind, whole: false });
            }
        }
    }

    fn resolve_view(&self, engine: &MaskingEngine, oid: u32, def: &str) {
        let l = lineage::analyze(def, &engine.config().lineage.trusted_functions);
        let Some(rel) = self.relation(oid) else {
            return;
        };
        let mut sensitive = rel.sensitive.clone();
        let mut unknown = false;
        match l.statements.as_deref() {
            Some([s]) => {
                let rels: Vec<RelName> = s.relations.iter().cloned().collect();
                let slots: &[Slot] = match &s.output {
                    Output::Rows(slots) => slots,
                    _ => &[],
                };
                let view = self.view(engine);
                let exact = slots.iter().all(|s| matches!(s, Slot::One(_)))
                    && slots.len() == rel.columns.len();
                for (i, c) in rel.columns.iter().enumerate() {
                    let d = if exact {
                        match &slots[i] {
                            Slot::One(d) | Slot::Star(d) => d.clone(),
                        }
                    } else {
                        s.all.clone()
                    };
                    match d.resolve(&view, Some(c.type_oid), &rels) {
                        Verdict::Clean => {}
                        Verdict::Sensitive(kind) => {
                            sensitive.insert(
                                c.name.clone(),
                                Sensitive {
                                    kind,
                                    whole: !(exact && d.direct),
                                },
                            );
                        }
                        Verdict::Unknown => {
                            sensitive.insert(
                                c.name.clone(),
                                Sensitive {
                                    kind: DetectorKind::Column,
                                    whole: true,
                                },
                            );
                        }
                    }
                }
            }
            _ => unknown = true,
        }
        let mut s = self.write();
        if let Some(r) = s.rels.get(&oid) {
            if r.sensitive == sensitive && r.unknown == unknown {
                return;
            }
            let updated = RelInfo {
                oid: r.oid,
                schema: r.schema.clone(),
                name: r.name.clone(),
                relkind: r.relkind,
                columns: r.columns.clone(),
                sensitive,
                unknown: r.unknown || unknown,
                fetched: r.fetched,
            };
            s.rels.insert(oid, Arc::new(updated));
            s.generation += 1;
        }
    }

    async fn connect(&self) -> Result<BoxIo, String> {
        let login = self.login.as_ref().ok_or("no login")?;
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, login.open(&self.ctx))
            .await
            .map_err(|_| "connecting took too long".to_string())??;
        Ok(connected)
    }

    async fn fetch_types(&self, io: &mut BoxIo, types: &[u32]) -> Result<(), String> {
        let list = join_numbers(types);
        let sql = format!(
            "SELECT oid, typname, typtype, typelem, typbasetype, typcategory FROM pg_catalog.pg_type WHERE oid IN ({list})"
        );
        let rows = simple_query(io, &sql, QUERY_TIMEOUT)
            .await
            .map_err(|e| e.to_string())?;
        let mut s = self.write();
        for r in rows {
            let (Some(oid), Some(name)) = (num(&r, 0), text(&r, 1)) else {
                continue;
            };
            s.types.insert(
                oid,
                Arc::new(TypeInfo {
                    name,
                    typtype: byte(&r, 2),
                    elem: num(&r, 3).unwrap_or(0),
                    base: num(&r, 4).unwrap_or(0),
                    category: byte(&r, 5),
                }),
            );
        }
        // Unknown OIDs stay unknown; remember them so they are not asked for again.
        for t in types {
            s.types.entry(*t).or_insert_with(|| {
                Arc::new(TypeInfo {
                    name: String::new(),
                    typtype: b'?',
                    elem: 0,
                    base: 0,
                    category: b'?',
                })
            });
        }
        Ok(())
    }
}
