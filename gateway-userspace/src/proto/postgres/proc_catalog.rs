//! The server's own word on functions (`pg_proc`), asked on sluice's own upstream connection
//! with the gateway's credential, for the guardrails ([`functions::from_catalog`]).
//!
//! One connection and one cache per upstream, shared by its sessions. A name's rows (every
//! overload in every schema) are cached for [`TTL`] and dropped when a session of the same
//! upstream runs DDL, so a function replaced through sluice is looked up again; one replaced
//! behind sluice's back is seen after the TTL at the latest (and, meanwhile, a misjudged read
//! still runs read-only). A lookup is bounded by [`LOOKUP_TIMEOUT`]; when it fails, the caller
//! falls back to what is known without a catalog.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;

use super::{
    codec,
    upstream::{BoxIo, PreviewLogin},
};
use crate::{conn::ConnCtx, inspect::guardrails::functions::ProcRow};

/// How long a name's catalog rows are trusted.
pub const TTL: Duration = Duration::from_secs(30);
/// Connecting, logging in and one query, at most.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);
/// Names asked in one query, and names kept per upstream.
const MAX_NAMES_PER_QUERY: usize = 256;
const MAX_CACHED_NAMES: usize = 50_000;
/// A catalog answer larger than this is not a catalog answer.
const MAX_MESSAGE: usize = 1 << 20;

/// Every upstream's catalog, by upstream address.
#[derive(Default)]
pub struct Catalogs {
    by_upstream: Mutex<HashMap<String, Arc<Catalog>>>,
}

impl Catalogs {
    pub fn of(&self, upstream: &str) -> Arc<Catalog> {
        lock(&self.by_upstream)
            .entry(upstream.to_string())
            .or_default()
            .clone()
    }
}

/// A name's rows (every overload in every schema), and when they were read.
type Cached = (Arc<Vec<ProcRow>>, Instant);

#[derive(Default)]
pub struct Catalog {
    /// The lookup connection; one lookup at a time uses it.
    conn: tokio::sync::Mutex<Option<BoxIo>>,
    cache: Mutex<HashMap<String, Cached>>,
    /// Table name → every table of that name is a plain table (no triggers, rules or
    /// children), and when that was read.
    tables: Mutex<HashMap<String, (bool, Instant)>>,
}

impl Catalog {
    /// Forget everything (after DDL).
    pub fn invalidate(&self) {
        lock(&self.cache).clear();
        lock(&self.tables).clear();
    }

    /// Whether every table called `name` (in any schema) is an ordinary table without
    /// triggers (foreign-key actions are triggers too), rules or inheritance children: a
    /// statement changing it changes exactly the rows its command tag counts.
    pub async fn plain_table(
        &self,
        name: &str,
        ctx: &ConnCtx,
        login: &PreviewLogin,
    ) -> Result<bool, String> {
        if let Some((plain, at)) = lock(&self.tables).get(name)
            && at.elapsed() < TTL
        {
            return Ok(*plain);
        }
        let sql = format!(
            "SELECT bool_and(c.relkind = 'r' AND NOT c.relhastriggers AND NOT c.relhasrules \
             AND NOT c.relhassubclass) FROM pg_catalog.pg_class c WHERE c.relname = '{}'",
            name.replace('\'', "''")
        );
        let rows = tokio::time::timeout(LOOKUP_TIMEOUT, self.query(&sql, ctx, login))
            .await
            .map_err(|_| format!("the catalog lookup took longer than {LOOKUP_TIMEOUT:?}"))
            .and_then(|r| r);
        let rows = match rows {
            Ok(r) => r,
            Err(e) => {
                *self.conn.lock().await = None;
                return Err(e);
            }
        };
        let plain = rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .is_some_and(|v| v == "t");
        let mut tables = lock(&self.tables);
        if tables.len() >= MAX_CACHED_NAMES {
            tables.clear();
        }
        tables.insert(name.to_string(), (plain, Instant::now()));
        Ok(plain)
    }

    /// The rows of each name (empty: no such function), from the cache or one query.
    pub async fn rows(
        &self,
        names: &[String],
        ctx: &ConnCtx,
        login: &PreviewLogin,
    ) -> Result<HashMap<String, Arc<Vec<ProcRow>>>, String> {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = lock(&self.cache);
            for n in names {
                match cache.get(n) {
                    Some((rows, at)) if at.elapsed() < TTL => {
                        out.insert(n.clone(), rows.clone());
                    }
                    _ => missing.push(n.clone()),
                }
            }
        }
        missing.sort();
        missing.dedup();
        for chunk in missing.chunks(MAX_NAMES_PER_QUERY) {
            let found = tokio::time::timeout(LOOKUP_TIMEOUT, self.lookup(chunk, ctx, login))
                .await
                .map_err(|_| format!("the catalog lookup took longer than {LOOKUP_TIMEOUT:?}"))
                .and_then(|r| r);
            let found = match found {
                Ok(f) => f,
                Err(e) => {
                    // The connection may be mid-answer: start over next time.
                    *self.conn.lock().await = None;
                    return Err(e);
                }
            };
            let mut cache = lock(&self.cache);
            if cache.len() + chunk.len() > MAX_CACHED_NAMES {
                cache.clear();
            }
            let now = Instant::now();
            for name in chunk {
                let rows: Vec<ProcRow> =
                    found.iter().filter(|r| r.name == *name).cloned().collect();
                let rows = Arc::new(rows);
                cache.insert(name.clone(), (rows.clone(), now));
                out.insert(name.clone(), rows);
            }
        }
        Ok(out)
    }

    async fn lookup(
        &self,
        names: &[String],
        ctx: &ConnCtx,
        login: &PreviewLogin,
    ) -> Result<Vec<ProcRow>, String> {
        let list = names
            .iter()
            .map(|n| format!("'{}'", n.replace('\'', "''")))
            .collect::<Vec<_>>()
            .join(",");
        let sql = format!(
            "SELECT n.nspname, p.proname, p.provolatile, p.prosecdef, l.lanname, p.pronargs \
             FROM pg_catalog.pg_proc p \
             JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
             JOIN pg_catalog.pg_language l ON l.oid = p.prolang \
             WHERE p.proname IN ({list})"
        );
        let rows = self.query(&sql, ctx, login).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let text = |i: usize| r.get(i).cloned().flatten().unwrap_or_default();
                ProcRow {
                    schema: text(0),
                    name: text(1),
                    volatility: text(2).chars().next().unwrap_or('v'),
                    security_definer: text(3) == "t",
                    language: text(4),
                    args: text(5).parse().unwrap_or(0),
                }
            })
            .collect())
    }

    /// Runs one query on the lookup connection (connecting first if needed); rows as text.
    async fn query(
        &self,
        sql: &str,
        ctx: &ConnCtx,
        login: &PreviewLogin,
    ) -> Result<Vec<Vec<Option<String>>>, String> {
        let mut slot = self.conn.lock().await;
        if slot.is_none() {
            *slot = Some(login.open(ctx).await?);
        }
        let up = slot.as_mut().expect("connected above");
        let mut buf = BytesMut::new();
        postgres_protocol::message::frontend::query(sql, &mut buf).map_err(|e| e.to_string())?;
        up.write_all(&buf).await.map_err(|e| e.to_string())?;
        up.flush().await.map_err(|e| e.to_string())?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let m = codec::read_message(up, MAX_MESSAGE, "upstream")
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the database closed the catalog connection")?;
            match m.tag {
                b'D' => {
                    let body = m.body();
                    let fields = codec::data_row_fields(body).map_err(|e| e.to_string())?;
                    rows.push(
                        fields
                            .into_iter()
                            .map(|f| f.map(|r| String::from_utf8_lossy(&body[r]).into_owned()))
                            .collect(),
                    );
                }
                b'E' => error = Some(codec::notice_field(&codec::notice_fields(m.body()), b'M')),
                b'Z' => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(format!("the catalog lookup failed: {e}")),
            None => Ok(rows),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
