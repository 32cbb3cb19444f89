//! The hash chain: sealing records, signing checkpoints, and verifying a node's chain in any
//! [`Store`].

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// Chain hash of the record before the first.
pub const GENESIS: [u8; 32] = [0; 32];
const CHECKPOINT_DOMAIN: &[u8] = b"sluice-audit-checkpoint-v1";
/// Records read per round trip while verifying or exporting (bounds memory, not length).
pub const PAGE: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit store: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("audit store: {}", postgres_error(.0))]
    Postgres(#[from] postgres::Error),
    #[error("audit store: {0}")]
    Io(#[from] std::io::Error),
    #[error("audit key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("audit store: {0}")]
    Refused(String),
}

/// The server's own words ("db error" alone says nothing), or the client's error and its cause.
fn postgres_error(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}): {}", db.severity(), db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
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

/// A record with the chain fields as the store holds them (raw, so that a verifier sees
/// malformed values too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    pub record: Record,
    pub prev: Vec<u8>,
    pub hash: Vec<u8>,
}

/// A signed statement that `node`'s chain reached `seq` with head `hash`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    pub node: String,
    pub seq: u64,
    #[serde(with = "hex_bytes")]
    pub hash: Vec<u8>,
    pub time: String,
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
}

mod hex_bytes {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::util::hex(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: String = serde::Deserialize::deserialize(d)?;
        crate::util::unhex(&text).ok_or_else(|| serde::de::Error::custom("expected hex"))
    }
}

/// Where records live: SQLite on the host, or a PostgreSQL database shared by a fleet. Every
/// node has its own chain; the stores refuse UPDATE and DELETE.
pub trait Store: Send {
    /// Takes the exclusive right to append to `node`'s chain (for as long as the store is
    /// open) and registers `key` as the node's checkpoint key. Refuses when another live
    /// gateway writes that chain, or when the node is registered with another key.
    fn claim(&mut self, node: &str, key: &VerifyingKey) -> Result<(), AuditError>;
    /// The last record of `node`'s chain.
    fn head(&mut self, node: &str) -> Result<Option<Stored>, AuditError>;
    /// Appends in one transaction, durable when this returns.
    fn append(&mut self, records: &[Stored]) -> Result<(), AuditError>;
    fn add_checkpoint(&mut self, c: &Checkpoint) -> Result<(), AuditError>;
    /// Nodes with a chain or a registered key.
    fn nodes(&mut self) -> Result<Vec<String>, AuditError>;
    /// The key `node` registered at its first claim (trust on first use; pin keys in the
    /// policy to rule out a replaced registration).
    fn node_key(&mut self, node: &str) -> Result<Option<Vec<u8>>, AuditError>;
    /// `node`'s records after sequence number `after`, in order, at most `limit`.
    fn records(&mut self, node: &str, after: u64, limit: usize) -> Result<Vec<Stored>, AuditError>;
    fn checkpoints(&mut self, node: &str) -> Result<Vec<Checkpoint>, AuditError>;
    /// Every record of one session, in order.
    fn session(&mut self, session: &str) -> Result<Vec<Stored>, AuditError>;
    /// Records of one kind at or after `since` (RFC 3339), oldest first, at most `limit`.
    fn of_kind(
        &mut self,
        kind: &str,
        since: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Stored>, AuditError>;
}

/// Whether `node` still has to be registered with `key` (`true`), already is (`false`), or is
/// registered with another key (refused: its chain would be signed by two keys).
pub(super) fn needs_registration(
    node: &str,
    registered: Option<&[u8]>,
    key: &VerifyingKey,
) -> Result<bool, AuditError> {
    match registered {
        None => Ok(true),
        Some(k) if k == key.as_bytes() => Ok(false),
        Some(_) => Err(AuditError::Refused(format!(
            "node `{node}` is registered in the audit store with another checkpoint key; \
             give this gateway its own `audit.node` name, or restore its key file"
        ))),
    }
}

/// The chain hash of `r` after `prev`.
pub fn record_hash(prev: &[u8], r: &Record) -> [u8; 32] {
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

fn checkpoint_message(node: &str, seq: u64, hash: &[u8]) -> Vec<u8> {
    let mut m = CHECKPOINT_DOMAIN.to_vec();
    m.extend((node.len() as u64).to_be_bytes());
    m.extend(node.as_bytes());
    m.extend(seq.to_be_bytes());
    m.extend(hash);
    m
}

impl Checkpoint {
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        Signature::from_slice(&self.signature)
            .map(|sig| {
                key.verify(&checkpoint_message(&self.node, self.seq, &self.hash), &sig)
                    .is_ok()
            })
            .unwrap_or(false)
    }
}

/// Reads the gateway's Ed25519 signing key; `None` when the file does not exist.
pub fn read_key(path: &Path) -> Result<Option<SigningKey>, AuditError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| AuditError::Key {
                path: path.into(),
                reason: format!("expected 32 bytes, found {}", bytes.len()),
            })?;
            Ok(Some(SigningKey::from_bytes(&seed)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Loads the gateway's Ed25519 signing key, creating it (mode 0600) on first use.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, AuditError> {
    // A key an earlier version (or a copy) left readable by others is tightened first.
    crate::files::tighten_private_file(path)?;
    if let Some(key) = read_key(path)? {
        return Ok(key);
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| AuditError::Key {
        path: path.into(),
        reason: e.to_string(),
    })?;
    crate::files::create_private(path, &seed)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The newest checkpoint, kept outside the store (and, through the syslog sink, off the
/// host): deleting the tail of the log together with its checkpoint rows is still detected.
pub fn write_witness(path: &Path, c: &Checkpoint) -> Result<(), AuditError> {
    crate::files::write_private_atomic(
        path,
        serde_json::to_string(c).unwrap_or_default().as_bytes(),
    )?;
    Ok(())
}

pub fn read_witness(path: &Path) -> Result<Option<Checkpoint>, AuditError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| AuditError::Key {
                path: path.into(),
                reason: format!("not a checkpoint: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Appends to one node's chain.
pub struct Chain {
    store: Box<dyn Store>,
    node: String,
    key: SigningKey,
    last_seq: u64,
    last_hash: [u8; 32],
    last_checkpoint: u64,
}

/// One record to append; the chain gives it its sequence number.
pub struct Entry<'a> {
    pub time: &'a str,
    pub kind: &'a str,
    pub session: Option<&'a str>,
    pub body: &'a str,
}

impl Chain {
    /// Claims `node`'s chain in `store` and continues from its head.
    pub fn open(
        mut store: Box<dyn Store>,
        node: &str,
        key: SigningKey,
    ) -> Result<Chain, AuditError> {
        store.claim(node, &key.verifying_key())?;
        let (last_seq, last_hash) = match store.head(node)? {
            None => (0, GENESIS),
            Some(s) => (
                s.record.seq,
                s.hash.try_into().map_err(|_| {
                    AuditError::Refused(format!("the head of node `{node}`'s chain is malformed"))
                })?,
            ),
        };
        let last_checkpoint = store.checkpoints(node)?.last().map(|c| c.seq).unwrap_or(0);
        Ok(Chain {
            store,
            node: node.to_string(),
            key,
            last_seq,
            last_hash,
            last_checkpoint,
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Records appended since the last checkpoint.
    pub fn unsigned(&self) -> u64 {
        self.last_seq - self.last_checkpoint
    }

    /// Appends the entries in one transaction; returns each one's sealed record and hash once
    /// all are durable. On error nothing was appended and the chain is unchanged.
    pub fn append_all(&mut self, entries: &[Entry<'_>]) -> Result<Vec<Stored>, AuditError> {
        let mut prev = self.last_hash;
        let mut sealed = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let record = Record {
                seq: self.last_seq + 1 + i as u64,
                node: self.node.clone(),
                time: e.time.into(),
                kind: e.kind.into(),
                session: e.session.map(str::to_string),
                body: e.body.into(),
            };
            let hash = record_hash(&prev, &record);
            sealed.push(Stored {
                record,
                prev: prev.to_vec(),
                hash: hash.to_vec(),
            });
            prev = hash;
        }
        if let Err(e) = self.store.append(&sealed) {
            // A commit whose answer was lost (the connection dropped during COMMIT) may have
            // happened anyway. This gateway holds the chain, so the store's head is the truth.
            self.resync();
            let committed = sealed
                .last()
                .is_some_and(|l| l.record.seq == self.last_seq && l.hash == self.last_hash);
            return if committed { Ok(sealed) } else { Err(e) };
        }
        self.last_seq += entries.len() as u64;
        self.last_hash = prev;
        Ok(sealed)
    }

    /// Takes the head from the store (when it can be read and is well formed).
    fn resync(&mut self) {
        if let Ok(Some(head)) = self.store.head(&self.node)
            && let Ok(hash) = <[u8; 32]>::try_from(head.hash.as_slice())
            && head.record.seq >= self.last_seq
        {
            self.last_seq = head.record.seq;
            self.last_hash = hash;
        }
    }

    /// Appends one record; returns its sequence number and chain hash once it is durable.
    pub fn append(
        &mut self,
        time: &str,
        kind: &str,
        session: Option<&str>,
        body: &str,
    ) -> Result<(u64, [u8; 32]), AuditError> {
        self.append_all(&[Entry {
            time,
            kind,
            session,
            body,
        }])?;
        Ok((self.last_seq, self.last_hash))
    }

    /// Signs the current head (when it moved). A verifier holding the public key can then
    /// tell that the log reached at least this record, so cutting off the tail is detected.
    pub fn checkpoint(&mut self, time: &str) -> Result<Option<Checkpoint>, AuditError> {
        if self.last_seq == self.last_checkpoint {
            return Ok(None);
        }
        let sig = self.key.sign(&checkpoint_message(
            &self.node,
            self.last_seq,
            &self.last_hash,
        ));
        let c = Checkpoint {
            node: self.node.clone(),
            seq: self.last_seq,
            hash: self.last_hash.to_vec(),
            time: time.to_string(),
            signature: sig.to_bytes().to_vec(),
        };
        self.store.add_checkpoint(&c)?;
        self.last_checkpoint = self.last_seq;
        Ok(Some(c))
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
    #[error("record {seq}: stored for node `{found}` inside node `{node}`'s chain")]
    Node {
        seq: u64,
        node: String,
        found: String,
    },
    #[error("checkpoint at record {seq}: bad signature")]
    Signature { seq: u64 },
    #[error("checkpoint at record {seq}: the chain has a different hash there")]
    CheckpointMismatch { seq: u64 },
    #[error("checkpoint at record {seq}, but the log ends at record {end} (truncated)")]
    Truncated { seq: u64, end: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    #[error("{0}")]
    Broken(#[from] Broken),
    #[error("cannot read the audit store: {0}")]
    Store(#[from] AuditError),
}

/// Checks one record of `node`'s chain where record `expected` must follow the hash `prev`;
/// returns its hash.
pub fn check_record(
    node: &str,
    expected: u64,
    prev: &[u8],
    s: &Stored,
) -> Result<[u8; 32], Broken> {
    let seq = s.record.seq;
    if seq != expected {
        return Err(Broken::Gap { seq, expected });
    }
    if s.record.node != node {
        return Err(Broken::Node {
            seq,
            node: node.into(),
            found: s.record.node.clone(),
        });
    }
    if s.prev != prev {
        return Err(Broken::Link { seq });
    }
    let hash = record_hash(prev, &s.record);
    if s.hash != hash {
        return Err(Broken::Content { seq });
    }
    Ok(hash)
}

/// Checks every link of `node`'s chain, every checkpoint in the store and the `witness`
/// (a checkpoint kept elsewhere) against `key`.
pub fn verify(
    store: &mut dyn Store,
    node: &str,
    key: &VerifyingKey,
    witness: Option<&Checkpoint>,
) -> Result<Verified, VerifyFailure> {
    let mut checkpoints = store.checkpoints(node)?;
    checkpoints.extend(witness.filter(|w| w.node == node).cloned());
    for c in &checkpoints {
        if !c.verify(key) {
            return Err(Broken::Signature { seq: c.seq }.into());
        }
    }
    // Only the hashes checkpoints refer to are kept while scanning.
    let mut wanted: std::collections::HashMap<u64, [u8; 32]> =
        checkpoints.iter().map(|c| (c.seq, GENESIS)).collect();
    let mut prev = GENESIS;
    let mut end = 0u64;
    loop {
        let page = store.records(node, end, PAGE)?;
        if page.is_empty() {
            break;
        }
        for s in page {
            let hash = check_record(node, end + 1, &prev, &s)?;
            if let Some(h) = wanted.get_mut(&s.record.seq) {
                *h = hash;
            }
            prev = hash;
            end = s.record.seq;
        }
    }
    for c in &checkpoints {
        if c.seq > end {
            return Err(Broken::Truncated { seq: c.seq, end }.into());
        }
        if c.seq > 0 && wanted.get(&c.seq).map(|h| &h[..]) != Some(&c.hash[..]) {
            return Err(Broken::CheckpointMismatch { seq: c.seq }.into());
        }
    }
    Ok(Verified {
        records: end,
        checkpoints: checkpoints.len() as u64,
        head: prev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(session: Option<&str>) -> Record {
        Record {
            seq: 1,
            node: "n".into(),
            time: "t".into(),
            kind: "k".into(),
            session: session.map(str::to_string),
            body: "{}".into(),
        }
    }

    #[test]
    fn a_missing_session_and_an_empty_one_hash_differently() {
        assert_ne!(
            record_hash(&GENESIS, &record(None)),
            record_hash(&GENESIS, &record(Some("")))
        );
    }

    #[test]
    fn fields_cannot_be_shifted_into_each_other() {
        // Length prefixes: "ab" + "c" and "a" + "bc" are different records.
        let mut a = record(None);
        a.kind = "ab".into();
        a.body = "c".into();
        let mut b = record(None);
        b.kind = "a".into();
        b.body = "bc".into();
        assert_ne!(record_hash(&GENESIS, &a), record_hash(&GENESIS, &b));
    }

    #[test]
    fn a_witness_round_trips_and_its_signature_binds_every_field() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let hash = [9u8; 32];
        let c = Checkpoint {
            node: "n".into(),
            seq: 12,
            hash: hash.to_vec(),
            time: "t".into(),
            signature: key
                .sign(&checkpoint_message("n", 12, &hash))
                .to_bytes()
                .to_vec(),
        };
        let dir = std::env::temp_dir().join(format!("sluice-witness-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.witness");
        write_witness(&path, &c).unwrap();
        let back = read_witness(&path).unwrap().unwrap();
        assert_eq!(back, c);
        assert!(back.verify(&key.verifying_key()));
        for forged in [
            Checkpoint {
                seq: 13,
                ..c.clone()
            },
            Checkpoint {
                node: "m".into(),
                ..c.clone()
            },
            Checkpoint {
                hash: vec![8; 32],
                ..c.clone()
            },
        ] {
            assert!(!forged.verify(&key.verifying_key()));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Commits, but reports the first commit as failed (an answer lost with the connection).
    #[derive(Default)]
    struct LostAnswer {
        rows: Vec<Stored>,
        lose_next: bool,
    }

    impl Store for LostAnswer {
        fn claim(&mut self, _: &str, _: &VerifyingKey) -> Result<(), AuditError> {
            Ok(())
        }
        fn head(&mut self, _: &str) -> Result<Option<Stored>, AuditError> {
            Ok(self.rows.last().cloned())
        }
        fn append(&mut self, records: &[Stored]) -> Result<(), AuditError> {
            if let Some(first) = records.first()
                && self.rows.iter().any(|r| r.record.seq == first.record.seq)
            {
                return Err(AuditError::Refused("duplicate key".into()));
            }
            self.rows.extend_from_slice(records);
            if std::mem::take(&mut self.lose_next) {
                return Err(AuditError::Refused("connection closed".into()));
            }
            Ok(())
        }
        fn add_checkpoint(&mut self, _: &Checkpoint) -> Result<(), AuditError> {
            Ok(())
        }
        fn nodes(&mut self) -> Result<Vec<String>, AuditError> {
            Ok(vec!["n".into()])
        }
        fn node_key(&mut self, _: &str) -> Result<Option<Vec<u8>>, AuditError> {
            Ok(None)
        }
        fn records(
            &mut self,
            _: &str,
            after: u64,
            limit: usize,
        ) -> Result<Vec<Stored>, AuditError> {
            Ok(self
                .rows
                .iter()
                .filter(|r| r.record.seq > after)
                .take(limit)
                .cloned()
                .collect())
        }
        fn checkpoints(&mut self, _: &str) -> Result<Vec<Checkpoint>, AuditError> {
            Ok(Vec::new())
        }
        fn session(&mut self, _: &str) -> Result<Vec<Stored>, AuditError> {
            Ok(Vec::new())
        }
        fn of_kind(
            &mut self,
            _: &str,
            _: Option<&str>,
            _: usize,
        ) -> Result<Vec<Stored>, AuditError> {
            Ok(Vec::new())
        }
    }

    #[test]
    fn a_commit_whose_answer_was_lost_is_recognised_and_the_chain_goes_on() {
        let store = LostAnswer {
            lose_next: true,
            ..Default::default()
        };
        let mut chain =
            Chain::open(Box::new(store), "n", SigningKey::from_bytes(&[3; 32])).unwrap();
        let sealed = chain
            .append_all(&[Entry {
                time: "t",
                kind: "k",
                session: None,
                body: "{}",
            }])
            .expect("the commit did happen");
        assert_eq!(sealed[0].record.seq, 1);
        let (seq, _) = chain.append("t", "k", None, "{}").unwrap();
        assert_eq!(seq, 2, "no duplicate sequence number after the lost answer");
    }
}
