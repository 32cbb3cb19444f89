//! Requests and grants on disk (SQLite, WAL), so a restart cannot lose track of them: a
//! request still pending when the gateway stopped is marked abandoned at the next start (its
//! agent connection died with the old process, so nothing of it can run any more).

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::model::{ApprovalView, GrantView};

/// Decided requests loaded into memory at start for the API (older ones are read on demand).
const RECENT_AT_START: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("approval store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("approval store: {0}")]
    Json(#[from] serde_json::Error),
    #[error("approval store {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
}

pub struct Store {
    db: Connection,
}

/// What a starting gateway finds on disk.
pub struct Loaded {
    /// Requests that were pending when the previous gateway stopped, now abandoned.
    pub abandoned: Vec<ApprovalView>,
    /// The most recent decided requests, newest first.
    pub recent: Vec<ApprovalView>,
    /// Grants not yet expired (revoked ones included, for the listing).
    pub grants: Vec<GrantView>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let db = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })?;
        // WAL + NORMAL: a committed change survives a crash of the gateway process (the case that
        // matters here); the audit log (not this store) is the durable record of decisions.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS approvals (
                 id TEXT PRIMARY KEY,
                 state TEXT NOT NULL,
                 created_at TEXT NOT NULL,
                 view TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS approvals_state ON approvals(state, created_at);
             CREATE TABLE IF NOT EXISTS grants (
                 id TEXT PRIMARY KEY,
                 expires_at TEXT NOT NULL,
                 view TEXT NOT NULL
             );",
        )?;
        Ok(Store { db })
    }

    /// Marks what was pending as abandoned and loads what the API shows.
    pub fn load(&self, now_rfc3339: &str) -> Result<Loaded, StoreError> {
        let mut abandoned = Vec::new();
        let tx = self.db.unchecked_transaction()?;
        {
            let mut stmt = tx.prepare("SELECT view FROM approvals WHERE state = 'pending'")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            for row in rows {
                let mut view: ApprovalView = serde_json::from_str(&row?)?;
                view.state = super::model::State::Abandoned;
                view.decided_at = Some(now_rfc3339.to_string());
                view.decision_reason = Some(
                    "the gateway stopped while the request was pending; the agent's connection ended and nothing ran"
                        .into(),
                );
                abandoned.push(view);
            }
        }
        for v in &abandoned {
            tx.execute(
                "UPDATE approvals SET state = ?2, view = ?3 WHERE id = ?1",
                params![v.id, v.state.as_str(), serde_json::to_string(v)?],
            )?;
        }
        tx.commit()?;

        let mut recent = Vec::new();
        let mut stmt = self
            .db
            .prepare("SELECT view FROM approvals ORDER BY created_at DESC LIMIT ?1")?;
        for row in stmt.query_map([RECENT_AT_START as i64], |r| r.get::<_, String>(0))? {
            recent.push(serde_json::from_str(&row?)?);
        }
        let mut grants = Vec::new();
        let mut stmt = self
            .db
            .prepare("SELECT view FROM grants WHERE expires_at > ?1 ORDER BY expires_at")?;
        for row in stmt.query_map([now_rfc3339], |r| r.get::<_, String>(0))? {
            grants.push(serde_json::from_str(&row?)?);
        }
        Ok(Loaded {
            abandoned,
            recent,
            grants,
        })
    }

    pub fn put(&self, view: &ApprovalView) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO approvals (id, state, created_at, view) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET state = excluded.state, view = excluded.view",
            params![
                view.id,
                view.state.as_str(),
                view.created_at,
                serde_json::to_string(view)?
            ],
        )?;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<ApprovalView>, StoreError> {
        let view: Option<String> = self
            .db
            .query_row("SELECT view FROM approvals WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(match view {
            Some(v) => Some(serde_json::from_str(&v)?),
            None => None,
        })
    }

    pub fn put_grant(&self, grant: &GrantView) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO grants (id, expires_at, view) VALUES (?1, ?2, ?3)
             ON CONFLICT(id) DO UPDATE SET view = excluded.view",
            params![grant.id, grant.expires_at, serde_json::to_string(grant)?],
        )?;
        Ok(())
    }
}
