//! Requests and grants on disk (SQLite, WAL), so a restart cannot lose track of them: a
//! request still pending when the gateway stopped is marked abandoned at the next start (its
//! agent connection died with the old process, so nothing of it can run any more).
//!
//! The store keeps what reviewers see: masked text and the SHA-256 of the exact bytes, never
//! the bytes (they live only in the waiting session's memory, and nothing can run from here
//! after a restart anyway). The file is 0600 in a private directory.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::model::{ApprovalView, GrantView};
use crate::inspect::masking::MaskingEngine;

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
    #[error("approval store {path}: {source}")]
    Files {
        path: String,
        source: std::io::Error,
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

/// `PRAGMA user_version` of a store whose views hold masked text only. Version 0 (stores of
/// earlier gateways) kept the raw statement and parameters.
const MASKED_VERSION: i64 = 1;

impl Store {
    /// Opens (creating it 0600) the store; a store written by an earlier gateway, which kept
    /// raw statements, is masked in place with `masker` first.
    pub fn open(path: &Path, masker: &MaskingEngine) -> Result<Store, StoreError> {
        crate::files::prepare_sqlite_file(path).map_err(|e| StoreError::Files {
            path: path.display().to_string(),
            source: e,
        })?;
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
        let store = Store { db };
        let version: i64 = store
            .db
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < MASKED_VERSION {
            store.mask_old_views(masker)?;
        }
        Ok(store)
    }

    /// Re-masks every stored view (the raw text an earlier gateway kept becomes what the
    /// masking engine leaves of it, as in the audit log), then rewrites the file so that the
    /// raw text is not left behind in free pages or in the WAL either. Re-masking rather than
    /// dropping the column keeps the history reviewers and the audit replay refer to.
    fn mask_old_views(&self, masker: &MaskingEngine) -> Result<(), StoreError> {
        // Overwritten cells are zeroed, not only unlinked.
        self.db.pragma_update(None, "secure_delete", true)?;
        let tx = self.db.unchecked_transaction()?;
        let rows: Vec<(String, String)> = {
            let mut stmt = tx.prepare("SELECT id, view FROM approvals")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?
        };
        for (id, text) in &rows {
            let view: ApprovalView = serde_json::from_str(text)?;
            let masked = serde_json::to_string(&super::mask_view(masker, view))?;
            if &masked != text {
                tx.execute(
                    "UPDATE approvals SET view = ?2 WHERE id = ?1",
                    params![id, masked],
                )?;
            }
        }
        tx.pragma_update(None, "user_version", MASKED_VERSION)?;
        tx.commit()?;
        if !rows.is_empty() {
            // VACUUM writes a fresh copy of the database; the checkpoint moves it into the main
            // file and truncates the WAL, which held the old pages.
            self.db.execute_batch("VACUUM")?;
            self.db
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            tracing::warn!(
                event = "approval_store_masked",
                requests = rows.len(),
                "approval store of an earlier version held raw statements; masked in place"
            );
        }
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::approvals::model::{Preview, Requester, State};

    const CARD: &str = "4111111111111111";
    const EMAIL: &str = "ada@example.com";

    fn view(id: &str) -> ApprovalView {
        ApprovalView {
            id: id.into(),
            state: State::Approved,
            created_at: "2026-01-01T00:00:00Z".into(),
            expires_at: "2026-01-01T00:15:00Z".into(),
            decided_at: None,
            requester: Requester {
                target: "agents".into(),
                pid: 1,
                uid: 0,
                exe: None,
                cgroup_id: 1,
                subject: None,
                session: None,
            },
            resource: "db".into(),
            protocol: "postgres".into(),
            command: format!("UPDATE customers SET card = '{CARD}' WHERE email = '{EMAIL}'"),
            parameters: vec![Some(EMAIL.into()), None],
            sha256: "ab".repeat(32),
            rule: "writes".into(),
            reason: "statement kind update".into(),
            preview: Some(Preview {
                plan: Some(
                    serde_json::json!([{ "Plan": { "Filter": format!("(email = '{EMAIL}'::text)") } }]),
                ),
                note: Some(format!("dry run failed: invalid input syntax: \"{CARD}\"")),
                ..Preview::default()
            }),
            groups: vec!["dba".into()],
            required: 1,
            votes: Vec::new(),
            decision_reason: None,
            grant: None,
        }
    }

    /// Every byte of the store's files (database, WAL, shared memory).
    fn file_bytes(path: &Path) -> Vec<u8> {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            all.extend(std::fs::read(&p).unwrap_or_default());
        }
        all
    }

    fn contains(hay: &[u8], needle: &str) -> bool {
        hay.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    /// A store written by an earlier gateway (raw text, user_version 0) is masked when a new
    /// gateway opens it, and no raw value is left anywhere in its files.
    #[test]
    fn a_store_with_raw_statements_is_masked_in_place() {
        let dir = std::env::temp_dir().join(format!("sluice-apstore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("approvals.db");
        {
            // The old layout, as an old gateway wrote it.
            let db = Connection::open(&path).unwrap();
            db.pragma_update(None, "journal_mode", "WAL").unwrap();
            db.execute_batch(
                "CREATE TABLE approvals (id TEXT PRIMARY KEY, state TEXT NOT NULL, created_at TEXT NOT NULL, view TEXT NOT NULL);
                 CREATE TABLE grants (id TEXT PRIMARY KEY, expires_at TEXT NOT NULL, view TEXT NOT NULL);",
            )
            .unwrap();
            for id in ["a", "b"] {
                let v = view(id);
                db.execute(
                    "INSERT INTO approvals VALUES (?1, ?2, ?3, ?4)",
                    params![
                        v.id,
                        v.state.as_str(),
                        v.created_at,
                        serde_json::to_string(&v).unwrap()
                    ],
                )
                .unwrap();
            }
            // Leave the raw rows in the WAL as a crash would.
            std::mem::forget(db);
        }
        assert!(
            contains(&file_bytes(&path), CARD),
            "the fixture holds raw text"
        );
        let masker = MaskingEngine::with_defaults().unwrap();
        let store = Store::open(&path, &masker).unwrap();
        let got = store.get("a").unwrap().unwrap();
        assert!(
            !got.command.contains(CARD) && got.command.contains("[CARD]"),
            "{}",
            got.command
        );
        assert!(!got.command.contains(EMAIL), "{}", got.command);
        assert_eq!(got.parameters, [Some("[EMAIL]".to_string()), None]);
        assert!(
            !got.preview
                .as_ref()
                .unwrap()
                .plan
                .as_ref()
                .unwrap()
                .to_string()
                .contains(EMAIL)
        );
        assert!(
            !got.preview
                .as_ref()
                .unwrap()
                .note
                .as_ref()
                .unwrap()
                .contains(CARD)
        );
        assert_eq!(
            got.sha256,
            "ab".repeat(32),
            "the hash of the exact bytes is kept"
        );
        drop(store);
        let bytes = file_bytes(&path);
        for raw in [CARD, EMAIL] {
            assert!(
                !contains(&bytes, raw),
                "{raw} is still in the store's files"
            );
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "tightened from the umask's mode");
        // Opening again changes nothing (the version is recorded).
        let store = Store::open(&path, &masker).unwrap();
        assert_eq!(
            store.get("b").unwrap().unwrap().parameters[0].as_deref(),
            Some("[EMAIL]")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
