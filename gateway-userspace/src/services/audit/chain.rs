//! The hash chain on SQLite and its verification.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// Chain hash of the record before the first.
pub const GENESIS: [u8; 32] = [0; 32];
const CHECKPOINT_DOMAIN: &[u8] = b"sluice-audit-checkpoint-v1";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("audit store: {0}")]
    Io(#[from] std::io::Error),
    #[error("audit key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
}

/// One record as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub node: String,
    /// RFC 3339.
    pub time: String,
    pub kind: String,
    pub session: Option<String>,
    /// JSON text, hashed byte for byte.
    pub body: String,
}

impl Record {
    /// From a row whose first columns are `seq, node, time, kind, session, body`.
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
        Ok(Record {
            seq: row.get(0)?,
            node: row.get(1)?,
            time: row.get(2)?,
            kind: row.get(3)?,
            session: row.get(4)?,
            body: row.get(5)?,
        })
    }
}

/// The chain hash of `r` after `prev`.
pub fn record_hash(prev: &[u8; 32], r: &Record) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(r.seq.to_be_bytes());
    for field in [
        r.node.as_bytes(),
        r.time.as_bytes(),
        r.kind.as_bytes(),
        r.session.as_deref().unwrap_or("").as_bytes(),
        r.body.as_bytes(),
    ] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field);
    }
    // A missing session and an empty one must not hash alike.
    h.update([u8::from(r.session.is_some())]);
    h.finalize().into()
}

fn checkpoint_message(node: &str, seq: u64, hash: &[u8; 32]) -> Vec<u8> {
    let mut m = CHECKPOINT_DOMAIN.to_vec();
    m.extend((node.len() as u64).to_be_bytes());
    m.extend(node.as_bytes());
    m.extend(seq.to_be_bytes());
    m.extend(hash);
    m
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    time TEXT NOT NULL,
    kind TEXT NOT NULL,
    session TEXT,
    body TEXT NOT NULL,
    prev BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    seq INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    hash BLOB NOT NULL,
    time TEXT NOT NULL,
    signature BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_update BEFORE UPDATE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints
    BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
";

/// Loads the gateway's Ed25519 signing key, creating it (mode 0600) on first use.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, AuditError> {
    let bad = |reason: String| AuditError::Key {
        path: path.into(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let seed: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| bad(format!("expected 32 bytes, found {}", bytes.len())))?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| bad(e.to_string()))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            std::io::Write::write_all(&mut f, &seed)?;
            f.sync_all()?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(e.into()),
    }
}

/// Appends to one node's chain.
pub struct Chain {
    db: Connection,
    node: String,
    key: SigningKey,
    last_seq: u64,
    last_hash: [u8; 32],
}

impl Chain {
    /// Opens (or creates) the store. Every commit is durable on return (WAL, `synchronous=FULL`).
    pub fn open(path: &Path, node: &str, key: SigningKey) -> Result<Chain, AuditError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.execute_batch(SCHEMA)?;
        let last: Option<(u64, Vec<u8>)> = db
            .query_row(
                "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (last_seq, last_hash) = match last {
            None => (0, GENESIS),
            Some((seq, hash)) => (seq, hash.try_into().unwrap_or(GENESIS)),
        };
        Ok(Chain {
            db,
            node: node.to_string(),
            key,
            last_seq,
            last_hash,
        })
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Appends one record; returns its sequence number and chain hash once it is durable.
    pub fn append(
        &mut self,
        time: &str,
        kind: &str,
        session: Option<&str>,
        body: &str,
    ) -> Result<(u64, [u8; 32]), AuditError> {
        let record = Record {
            seq: self.last_seq + 1,
            node: self.node.clone(),
            time: time.into(),
            kind: kind.into(),
            session: session.map(str::to_string),
            body: body.into(),
        };
        let hash = record_hash(&self.last_hash, &record);
        self.db.execute(
            "INSERT INTO audit (seq, node, time, kind, session, body, prev, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                record.seq,
                record.node,
                record.time,
                record.kind,
                record.session,
                record.body,
                &self.last_hash[..],
                &hash[..]
            ],
        )?;
        self.last_seq = record.seq;
        self.last_hash = hash;
        Ok((record.seq, hash))
    }

    /// Signs the current head. A verifier holding the public key can then tell that the log
    /// reached at least this record, so cutting off the tail up to here is detected.
    pub fn checkpoint(&mut self, time: &str) -> Result<u64, AuditError> {
        let sig = self.key.sign(&checkpoint_message(
            &self.node,
            self.last_seq,
            &self.last_hash,
        ));
        self.db.execute(
            "INSERT OR IGNORE INTO checkpoints (seq, node, hash, time, signature)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                self.last_seq,
                self.node,
                &self.last_hash[..],
                time,
                &sig.to_bytes()[..]
            ],
        )?;
        Ok(self.last_seq)
    }
}

/// What a successful verification saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub records: u64,
    pub checkpoints: u64,
    pub head: [u8; 32],
}

/// The first problem found, precisely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Broken {
    #[error("record {seq}: expected sequence number {expected} (a record is missing)")]
    Gap { seq: u64, expected: u64 },
    #[error("record {seq}: its `prev` does not match the hash of record {}", seq - 1)]
    Link { seq: u64 },
    #[error("record {seq}: contents do not match its hash (edited)")]
    Content { seq: u64 },
    #[error("checkpoint at record {seq}: bad signature")]
    Signature { seq: u64 },
    #[error("checkpoint at record {seq}: the chain has a different hash there")]
    CheckpointMismatch { seq: u64 },
    #[error("checkpoint at record {seq}, but the log ends at record {end} (truncated)")]
    Truncated { seq: u64, end: u64 },
}

/// Checks every link of `node`'s chain and every checkpoint against `key`.
pub fn verify(path: &Path, node: &str, key: &VerifyingKey) -> Result<Verified, VerifyFailure> {
    let db = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut stmt = db.prepare(
        "SELECT seq, node, time, kind, session, body, prev, hash FROM audit WHERE node = ?1 ORDER BY seq",
    )?;
    let mut rows = stmt.query([node])?;
    let mut prev = GENESIS;
    let mut expected = 1u64;
    let mut hashes = std::collections::HashMap::new();
    while let Some(row) = rows.next()? {
        let r = Record::from_row(row)?;
        let stored_prev: Vec<u8> = row.get(6)?;
        let stored_hash: Vec<u8> = row.get(7)?;
        if r.seq != expected {
            return Err(Broken::Gap {
                seq: r.seq,
                expected,
            }
            .into());
        }
        if stored_prev != prev {
            return Err(Broken::Link { seq: r.seq }.into());
        }
        let hash = record_hash(&prev, &r);
        if stored_hash != hash {
            return Err(Broken::Content { seq: r.seq }.into());
        }
        hashes.insert(r.seq, hash);
        prev = hash;
        expected += 1;
    }
    let end = expected - 1;
    let mut stmt =
        db.prepare("SELECT seq, hash, signature FROM checkpoints WHERE node = ?1 ORDER BY seq")?;
    let mut rows = stmt.query([node])?;
    let mut checkpoints = 0;
    while let Some(row) = rows.next()? {
        let seq: u64 = row.get(0)?;
        let hash: Vec<u8> = row.get(1)?;
        let sig: Vec<u8> = row.get(2)?;
        let hash: [u8; 32] = hash.try_into().map_err(|_| Broken::Signature { seq })?;
        let sig = Signature::from_slice(&sig).map_err(|_| Broken::Signature { seq })?;
        key.verify(&checkpoint_message(node, seq, &hash), &sig)
            .map_err(|_| Broken::Signature { seq })?;
        if seq > end {
            return Err(Broken::Truncated { seq, end }.into());
        }
        if seq > 0 && hashes.get(&seq) != Some(&hash) {
            return Err(Broken::CheckpointMismatch { seq }.into());
        }
        checkpoints += 1;
    }
    Ok(Verified {
        records: end,
        checkpoints,
        head: prev,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    #[error("{0}")]
    Broken(#[from] Broken),
    #[error("cannot read the audit store: {0}")]
    Sql(#[from] rusqlite::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sluice-audit-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn filled(name: &str, n: u64) -> (PathBuf, VerifyingKey) {
        let dir = temp(name);
        let key = load_or_create_key(&dir.join("audit.key")).unwrap();
        let mut chain = Chain::open(&dir.join("audit.db"), "node-a", key).unwrap();
        for i in 1..=n {
            chain
                .append(
                    "2026-11-23T10:00:00Z",
                    "command",
                    Some("s1"),
                    &format!("{{\"sql\":\"SELECT {i}\"}}"),
                )
                .unwrap();
            if i % 5 == 0 {
                chain.checkpoint("2026-11-23T10:00:00Z").unwrap();
            }
        }
        (dir.join("audit.db"), chain.verifying_key())
    }

    /// Runs SQL as an attacker with write access would: triggers dropped first.
    fn tamper(db: &Path, sql: &str) {
        let c = Connection::open(db).unwrap();
        c.execute_batch(&format!(
            "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;
             DROP TRIGGER checkpoints_no_update; DROP TRIGGER checkpoints_no_delete; {sql}"
        ))
        .unwrap();
    }

    #[test]
    fn an_untouched_chain_verifies_and_survives_reopening() {
        let (db, key) = filled("ok", 12);
        let v = verify(&db, "node-a", &key).unwrap();
        assert_eq!((v.records, v.checkpoints), (12, 2));
        // Reopened, the chain continues from its head.
        let dir = db.parent().unwrap();
        let signing = load_or_create_key(&dir.join("audit.key")).unwrap();
        let mut chain = Chain::open(&db, "node-a", signing).unwrap();
        let (seq, _) = chain.append("t", "session_end", None, "{}").unwrap();
        assert_eq!(seq, 13);
        assert_eq!(verify(&db, "node-a", &key).unwrap().records, 13);
    }

    #[test]
    fn updates_and_deletes_are_refused_by_the_store() {
        let (db, _) = filled("triggers", 3);
        let c = Connection::open(&db).unwrap();
        let err = c
            .execute("UPDATE audit SET body = '{}' WHERE seq = 2", [])
            .unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        assert!(c.execute("DELETE FROM audit WHERE seq = 3", []).is_err());
    }

    #[test]
    fn an_edited_byte_is_found_at_its_record() {
        let (db, key) = filled("edit", 12);
        tamper(
            &db,
            "UPDATE audit SET body = replace(body, 'SELECT 7', 'SELECT 8') WHERE seq = 7",
        );
        let err = verify(&db, "node-a", &key).unwrap_err();
        assert!(
            matches!(err, VerifyFailure::Broken(Broken::Content { seq: 7 })),
            "{err}"
        );
    }

    #[test]
    fn a_deleted_record_is_found() {
        let (db, key) = filled("delete", 12);
        tamper(&db, "DELETE FROM audit WHERE seq = 4");
        let err = verify(&db, "node-a", &key).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyFailure::Broken(Broken::Gap {
                    seq: 5,
                    expected: 4
                })
            ),
            "{err}"
        );
    }

    #[test]
    fn a_rewritten_chain_fails_its_signed_checkpoints() {
        // The attacker edits record 3 and recomputes every hash after it: the chain is
        // consistent again, but the checkpoint they cannot re-sign no longer matches.
        let (db, key) = filled("rechain", 12);
        tamper(
            &db,
            "UPDATE audit SET body = '{\"sql\":\"SELECT 0\"}' WHERE seq = 3",
        );
        let c = Connection::open(&db).unwrap();
        let mut prev = GENESIS;
        for seq in 1..=12u64 {
            let r: Record = c
                .query_row(
                    "SELECT seq, node, time, kind, session, body FROM audit WHERE seq = ?1",
                    [seq],
                    Record::from_row,
                )
                .unwrap();
            let h = record_hash(&prev, &r);
            c.execute(
                "UPDATE audit SET prev = ?1, hash = ?2 WHERE seq = ?3",
                params![&prev[..], &h[..], seq],
            )
            .unwrap();
            prev = h;
        }
        let err = verify(&db, "node-a", &key).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyFailure::Broken(Broken::CheckpointMismatch { seq: 5 })
            ),
            "{err}"
        );
    }

    #[test]
    fn a_truncated_tail_is_found_by_the_checkpoint() {
        let (db, key) = filled("truncate", 12);
        tamper(&db, "DELETE FROM audit WHERE seq > 8");
        let err = verify(&db, "node-a", &key).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyFailure::Broken(Broken::Truncated { seq: 10, end: 8 })
            ),
            "{err}"
        );
    }

    #[test]
    fn a_forged_checkpoint_is_refused() {
        let (db, key) = filled("forged", 6);
        tamper(
            &db,
            "UPDATE checkpoints SET signature = zeroblob(64) WHERE seq = 5",
        );
        let err = verify(&db, "node-a", &key).unwrap_err();
        assert!(
            matches!(err, VerifyFailure::Broken(Broken::Signature { seq: 5 })),
            "{err}"
        );
    }
}
