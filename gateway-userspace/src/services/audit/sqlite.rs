//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, so a commit has
//! been fsynced when it returns. One gateway writes a file at a time (an flock beside it).

use std::{
    fs::{File, TryLockError},
    path::{Path, PathBuf},
};

use ed25519_dalek::VerifyingKey;
use rusqlite::{Connection, OptionalExtension, params};

use super::chain::{AuditError, Checkpoint, Record, Store, Stored, needs_registration};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER NOT NULL,
    node TEXT NOT NULL,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    session TEXT,
    body TEXT NOT NULL,
    prev BLOB NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (node, seq)
);
CREATE INDEX IF NOT EXISTS audit_by_session ON audit (session);
CREATE INDEX IF NOT EXISTS audit_by_kind ON audit (kind, time);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    node TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    time TEXT NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (node, seq)
);
CREATE TABLE IF NOT EXISTS audit_nodes (
    node TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    registered TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
    BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_nodes_no_update BEFORE UPDATE ON audit_nodes
    BEGIN SELECT RAISE(ABORT, 'node keys are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_nodes_no_delete BEFORE DELETE ON audit_nodes
    BEGIN SELECT RAISE(ABORT, 'node keys are append-only'); END;
";

const COLUMNS: &str = "seq, node, time, kind, session, body, prev, hash";

pub struct SqliteStore {
    db: Connection,
    path: PathBuf,
    lock: Option<File>,
}

impl SqliteStore {
    /// Opens (creating the file and schema) for writing.
    pub fn open(path: &Path) -> Result<SqliteStore, AuditError> {
        // 0600 before SQLite opens it, so its -wal and -shm files are 0600 too (files.rs).
        crate::files::prepare_sqlite_file(path)?;
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.pragma_update(None, "busy_timeout", 5000)?;
        db.execute_batch(SCHEMA)?;
        Ok(SqliteStore {
            db,
            path: path.into(),
            lock: None,
        })
    }

    /// Opens an existing store without write access (verification, replay, export).
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, AuditError> {
        if !path.exists() {
            return Err(AuditError::Refused(format!(
                "no audit store at {}",
                path.display()
            )));
        }
        let db = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        db.pragma_update(None, "busy_timeout", 5000)?;
        Ok(SqliteStore {
            db,
            path: path.into(),
            lock: None,
        })
    }

    fn stored(row: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
        Ok(Stored {
            record: Record {
                seq: row.get(0)?,
                node: row.get(1)?,
                time: row.get(2)?,
                kind: row.get(3)?,
                session: row.get(4)?,
                body: row.get(5)?,
            },
            prev: row.get(6)?,
            hash: row.get(7)?,
        })
    }

    fn query(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Stored>, AuditError> {
        let mut stmt = self.db.prepare_cached(sql)?;
        let rows = stmt.query_map(args, Self::stored)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Store for SqliteStore {
    fn claim(&mut self, node: &str, key: &VerifyingKey) -> Result<(), AuditError> {
        let lock_path = self.path.with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(AuditError::Refused(format!(
                    "{} is being written by another sluice gateway",
                    self.path.display()
                )));
            }
            Err(TryLockError::Error(e)) => return Err(e.into()),
        }
        self.lock = Some(lock);
        register(self, node, key)
    }

    fn head(&mut self, node: &str) -> Result<Option<Stored>, AuditError> {
        Ok(self
            .db
            .query_row(
                &format!("SELECT {COLUMNS} FROM audit WHERE node = ?1 ORDER BY seq DESC LIMIT 1"),
                [node],
                Self::stored,
            )
            .optional()?)
    }

    fn append(&mut self, records: &[Stored]) -> Result<(), AuditError> {
        let tx = self.db.transaction()?;
        {
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO audit ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))?;
            for s in records {
                let r = &s.record;
                insert.execute(params![
                    r.seq, r.node, r.time, r.kind, r.session, r.body, s.prev, s.hash
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn add_checkpoint(&mut self, c: &Checkpoint) -> Result<(), AuditError> {
        self.db.execute(
            "INSERT OR IGNORE INTO audit_checkpoints (node, seq, hash, time, signature)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![c.node, c.seq, c.hash, c.time, c.signature],
        )?;
        Ok(())
    }

    fn nodes(&mut self) -> Result<Vec<String>, AuditError> {
        let mut stmt = self.db.prepare(
            "SELECT node FROM audit_nodes UNION SELECT DISTINCT node FROM audit ORDER BY 1",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn node_key(&mut self, node: &str) -> Result<Option<Vec<u8>>, AuditError> {
        Ok(self
            .db
            .query_row(
                "SELECT public_key FROM audit_nodes WHERE node = ?1",
                [node],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn records(&mut self, node: &str, after: u64, limit: usize) -> Result<Vec<Stored>, AuditError> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM audit WHERE node = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
            ),
            params![node, after, limit as u64],
        )
    }

    fn checkpoints(&mut self, node: &str) -> Result<Vec<Checkpoint>, AuditError> {
        let mut stmt = self.db.prepare_cached(
            "SELECT node, seq, hash, time, signature FROM audit_checkpoints WHERE node = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([node], |r| {
            Ok(Checkpoint {
                node: r.get(0)?,
                seq: r.get(1)?,
                hash: r.get(2)?,
                time: r.get(3)?,
                signature: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn session(&mut self, session: &str) -> Result<Vec<Stored>, AuditError> {
        self.query(
            &format!("SELECT {COLUMNS} FROM audit WHERE session = ?1 ORDER BY node, seq"),
            [session],
        )
    }

    fn of_kind(
        &mut self,
        kind: &str,
        since: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Stored>, AuditError> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM audit WHERE kind = ?1 AND time >= ?2 ORDER BY time, node, seq LIMIT ?3"
            ),
            params![kind, since.unwrap_or(""), limit as u64],
        )
    }
}

/// Registers `node`'s key, or checks it against the registered one.
fn register(store: &mut SqliteStore, node: &str, key: &VerifyingKey) -> Result<(), AuditError> {
    let registered = store.node_key(node)?;
    if needs_registration(node, registered.as_deref(), key)? {
        store.db.execute(
            "INSERT INTO audit_nodes (node, public_key, registered) VALUES (?1, ?2, ?3)",
            params![node, &key.as_bytes()[..], crate::util::now_rfc3339()],
        )?;
    }
    Ok(())
}
