//! The fleet store: one PostgreSQL database for every gateway of a DaemonSet, with the same
//! tables as the SQLite store and one chain per node. A commit returns once PostgreSQL has
//! made it durable (`synchronous_commit` as the server sets it; keep it `on`).
//!
//! The gateway's database role needs only INSERT and SELECT on these tables once they exist;
//! statement-level triggers refuse UPDATE, DELETE and TRUNCATE even to roles that have them.

use ed25519_dalek::VerifyingKey;
use postgres::{Client, NoTls, Row};

use super::chain::{AuditError, Checkpoint, Record, Store, Stored, needs_registration};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit (
    seq bigint NOT NULL,
    node text NOT NULL,
    time text NOT NULL,
    kind text NOT NULL,
    session text,
    body text NOT NULL,
    prev bytea NOT NULL,
    hash bytea NOT NULL,
    PRIMARY KEY (node, seq)
);
CREATE INDEX IF NOT EXISTS audit_by_session ON audit (session);
CREATE INDEX IF NOT EXISTS audit_by_kind ON audit (kind, time);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    node text NOT NULL,
    seq bigint NOT NULL,
    hash bytea NOT NULL,
    time text NOT NULL,
    signature bytea NOT NULL,
    PRIMARY KEY (node, seq)
);
CREATE TABLE IF NOT EXISTS audit_nodes (
    node text PRIMARY KEY,
    public_key bytea NOT NULL,
    registered text NOT NULL
);
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only (% on %)', TG_OP, TG_TABLE_NAME;
END $$;
CREATE OR REPLACE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE OR REPLACE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE OR REPLACE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
";

const COLUMNS: &str = "seq, node, time, kind, session, body, prev, hash";
/// Serialises schema creation between gateways starting at once.
const SCHEMA_LOCK: i64 = 0x736c_7569_6365_0001;

pub struct PgStore {
    config: postgres::Config,
    client: Client,
    /// The node whose chain this connection holds the advisory lock for.
    claimed: Option<(String, VerifyingKey)>,
}

impl PgStore {
    /// Connects and creates the tables when missing.
    pub fn open(config: postgres::Config) -> Result<PgStore, AuditError> {
        let mut client = config.connect(NoTls)?;
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
        tx.batch_execute(SCHEMA)?;
        tx.commit()?;
        Ok(PgStore {
            config,
            client,
            claimed: None,
        })
    }

    /// After a lost connection the chain's lock was released with it: take it again.
    fn client(&mut self) -> Result<&mut Client, AuditError> {
        if self.client.is_closed() {
            self.client = self.config.connect(NoTls)?;
            if let Some((node, key)) = self.claimed.take() {
                self.claim(&node, &key)?;
            }
        }
        Ok(&mut self.client)
    }

    fn stored(row: &Row) -> Stored {
        Stored {
            record: Record {
                seq: row.get::<_, i64>(0) as u64,
                node: row.get(1),
                time: row.get(2),
                kind: row.get(3),
                session: row.get(4),
                body: row.get(5),
            },
            prev: row.get(6),
            hash: row.get(7),
        }
    }

    fn query(
        &mut self,
        sql: &str,
        args: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Stored>, AuditError> {
        Ok(self
            .client()?
            .query(sql, args)?
            .iter()
            .map(Self::stored)
            .collect())
    }
}

impl Store for PgStore {
    fn claim(&mut self, node: &str, key: &VerifyingKey) -> Result<(), AuditError> {
        let lock_name = format!("sluice-audit/{node}");
        let got: bool = self
            .client()?
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&lock_name],
            )?
            .get(0);
        if !got {
            return Err(AuditError::Refused(format!(
                "node `{node}`'s audit chain is being written by another gateway; \
                 give each gateway its own `audit.node` name"
            )));
        }
        let registered = self.node_key(node)?;
        if needs_registration(node, registered.as_deref(), key)? {
            self.client()?.execute(
                "INSERT INTO audit_nodes (node, public_key, registered) VALUES ($1, $2, $3)",
                &[&node, &&key.as_bytes()[..], &crate::util::now_rfc3339()],
            )?;
        }
        self.claimed = Some((node.to_string(), *key));
        Ok(())
    }

    fn head(&mut self, node: &str) -> Result<Option<Stored>, AuditError> {
        let rows = self.query(
            &format!("SELECT {COLUMNS} FROM audit WHERE node = $1 ORDER BY seq DESC LIMIT 1"),
            &[&node],
        )?;
        Ok(rows.into_iter().next())
    }

    fn append(&mut self, records: &[Stored]) -> Result<(), AuditError> {
        let client = self.client()?;
        let mut tx = client.transaction()?;
        let insert = tx.prepare(&format!(
            "INSERT INTO audit ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ))?;
        for s in records {
            let r = &s.record;
            tx.execute(
                &insert,
                &[
                    &(r.seq as i64),
                    &r.node,
                    &r.time,
                    &r.kind,
                    &r.session,
                    &r.body,
                    &s.prev,
                    &s.hash,
                ],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn add_checkpoint(&mut self, c: &Checkpoint) -> Result<(), AuditError> {
        self.client()?.execute(
            "INSERT INTO audit_checkpoints (node, seq, hash, time, signature)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[&c.node, &(c.seq as i64), &c.hash, &c.time, &c.signature],
        )?;
        Ok(())
    }

    fn nodes(&mut self) -> Result<Vec<String>, AuditError> {
        Ok(self
            .client()?
            .query(
                "SELECT node FROM audit_nodes UNION SELECT DISTINCT node FROM audit ORDER BY 1",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn node_key(&mut self, node: &str) -> Result<Option<Vec<u8>>, AuditError> {
        Ok(self
            .client()?
            .query_opt(
                "SELECT public_key FROM audit_nodes WHERE node = $1",
                &[&node],
            )?
            .map(|r| r.get(0)))
    }

    fn records(&mut self, node: &str, after: u64, limit: usize) -> Result<Vec<Stored>, AuditError> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM audit WHERE node = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            ),
            &[&node, &(after as i64), &(limit as i64)],
        )
    }

    fn checkpoints(&mut self, node: &str) -> Result<Vec<Checkpoint>, AuditError> {
        Ok(self
            .client()?
            .query(
                "SELECT node, seq, hash, time, signature FROM audit_checkpoints WHERE node = $1 ORDER BY seq",
                &[&node],
            )?
            .iter()
            .map(|r| Checkpoint {
                node: r.get(0),
                seq: r.get::<_, i64>(1) as u64,
                hash: r.get(2),
                time: r.get(3),
                signature: r.get(4),
            })
            .collect())
    }

    fn session(&mut self, session: &str) -> Result<Vec<Stored>, AuditError> {
        self.query(
            &format!("SELECT {COLUMNS} FROM audit WHERE session = $1 ORDER BY node, seq"),
            &[&session],
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
                "SELECT {COLUMNS} FROM audit WHERE kind = $1 AND time COLLATE \"C\" >= $2 ORDER BY time COLLATE \"C\", node, seq LIMIT $3"
            ),
            &[&kind, &since.unwrap_or(""), &(limit as i64)],
        )
    }
}
