//! Reading the log back: JSONL export (and checking an export on its own), session listings,
//! and replays: SQL session transcripts here, byte-stream sessions (SSH) in [`terminal`].

use std::{collections::BTreeMap, fmt::Write};

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{
    chain::{AuditError, Checkpoint, Record, Store, Stored},
    psql,
    record::{
        ApprovalRecord, CommandRecord, ResultRecord, ResultSet, SessionEnd, SessionStart, kind,
    },
    terminal,
};
use crate::util::{hex, unhex};

/// One exported record: self-describing, with its chain fields, the body embedded as the exact
/// JSON text that was hashed (so the chain can be recomputed from the export alone).
#[derive(Serialize, Deserialize)]
struct ExportLine<'a> {
    #[serde(rename = "type")]
    kind_tag: &'a str,
    node: String,
    seq: u64,
    time: String,
    kind: String,
    session: Option<String>,
    #[serde(borrow)]
    body: &'a RawValue,
    prev: String,
    hash: String,
}

const EXPORT_TYPE: &str = "sluice.audit.v1";

pub fn export_line(s: &Stored) -> String {
    let r = &s.record;
    // A body that is not JSON (impossible for records the gateway wrote) is exported as a
    // JSON string so the line stays valid; the chain check then shows it.
    let quoted;
    let body: &RawValue = match serde_json::from_str::<&RawValue>(&r.body) {
        Ok(b) => b,
        Err(_) => {
            quoted = serde_json::value::to_raw_value(&r.body).expect("a string serializes");
            &quoted
        }
    };
    serde_json::to_string(&ExportLine {
        kind_tag: EXPORT_TYPE,
        node: r.node.clone(),
        seq: r.seq,
        time: r.time.clone(),
        kind: r.kind.clone(),
        session: r.session.clone(),
        body,
        prev: hex(&s.prev),
        hash: hex(&s.hash),
    })
    .expect("export lines serialize")
}

pub fn parse_export_line(line: &str) -> Result<Stored, String> {
    let l: ExportLine<'_> = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if l.kind_tag != EXPORT_TYPE {
        return Err(format!("not a sluice audit line (type `{}`)", l.kind_tag));
    }
    Ok(Stored {
        record: Record {
            seq: l.seq,
            node: l.node,
            time: l.time,
            kind: l.kind,
            session: l.session,
            body: l.body.get().to_string(),
        },
        prev: unhex(&l.prev).ok_or("`prev` is not hex")?,
        hash: unhex(&l.hash).ok_or("`hash` is not hex")?,
    })
}

/// Records held in memory (an export being checked); read-only.
#[derive(Default)]
pub struct MemoryStore {
    chains: BTreeMap<String, Vec<Stored>>,
}

impl MemoryStore {
    /// From JSONL export text; reports the first line that does not parse.
    pub fn from_jsonl(text: &str) -> Result<MemoryStore, String> {
        let mut m = MemoryStore::default();
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let s = parse_export_line(line).map_err(|e| format!("line {}: {e}", i + 1))?;
            m.chains.entry(s.record.node.clone()).or_default().push(s);
        }
        for chain in m.chains.values_mut() {
            chain.sort_by_key(|s| s.record.seq);
        }
        Ok(m)
    }

    /// The sequence number before the first exported record of `node` (an export may start
    /// in the middle of a chain, `--after-seq`).
    pub fn first_seq(&self, node: &str) -> Option<u64> {
        self.chains.get(node)?.first().map(|s| s.record.seq)
    }
}

impl Store for MemoryStore {
    fn claim(&mut self, _: &str, _: &VerifyingKey) -> Result<(), AuditError> {
        Err(AuditError::Refused("an export is read-only".into()))
    }
    fn head(&mut self, node: &str) -> Result<Option<Stored>, AuditError> {
        Ok(self.chains.get(node).and_then(|c| c.last().cloned()))
    }
    fn append(&mut self, _: &[Stored]) -> Result<(), AuditError> {
        Err(AuditError::Refused("an export is read-only".into()))
    }
    fn add_checkpoint(&mut self, _: &Checkpoint) -> Result<(), AuditError> {
        Err(AuditError::Refused("an export is read-only".into()))
    }
    fn nodes(&mut self) -> Result<Vec<String>, AuditError> {
        Ok(self.chains.keys().cloned().collect())
    }
    fn node_key(&mut self, _: &str) -> Result<Option<Vec<u8>>, AuditError> {
        Ok(None)
    }
    fn records(&mut self, node: &str, after: u64, limit: usize) -> Result<Vec<Stored>, AuditError> {
        Ok(self
            .chains
            .get(node)
            .map(|c| {
                c.iter()
                    .filter(|s| s.record.seq > after)
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
    fn checkpoints(&mut self, _: &str) -> Result<Vec<Checkpoint>, AuditError> {
        Ok(Vec::new())
    }
    fn session(&mut self, session: &str) -> Result<Vec<Stored>, AuditError> {
        Ok(self
            .chains
            .values()
            .flatten()
            .filter(|s| s.record.session.as_deref() == Some(session))
            .cloned()
            .collect())
    }
    fn of_kind(
        &mut self,
        kind: &str,
        since: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Stored>, AuditError> {
        let mut v: Vec<Stored> = self
            .chains
            .values()
            .flatten()
            .filter(|s| s.record.kind == kind && s.record.time.as_str() >= since.unwrap_or(""))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.record.time.cmp(&b.record.time));
        v.truncate(limit);
        Ok(v)
    }
}

/// Checks the links and contents of an export's chains (signatures need the store's
/// checkpoints; an export proves its records are exactly those that were chained).
pub fn verify_export(store: &mut MemoryStore) -> Result<Vec<(String, u64)>, String> {
    let mut out = Vec::new();
    for node in store.nodes().map_err(|e| e.to_string())? {
        let records = store
            .records(&node, 0, usize::MAX)
            .map_err(|e| e.to_string())?;
        let Some(first) = records.first() else {
            continue;
        };
        // An export may start in the middle of a chain (`--after-seq`): from its first `prev`.
        let mut prev = first.prev.clone();
        for (expected, s) in (first.record.seq..).zip(&records) {
            let hash = super::chain::check_record(&node, expected, &prev, s)
                .map_err(|broken| format!("node `{node}`: {broken}"))?;
            prev = hash.to_vec();
        }
        out.push((node, records.len() as u64));
    }
    Ok(out)
}

/// One line of `sluice audit sessions`.
#[derive(Clone, Debug, Serialize)]
pub struct SessionSummary {
    pub session: String,
    pub node: String,
    pub started: String,
    pub start: SessionStart,
    pub ended: Option<String>,
    pub end: Option<SessionEnd>,
}

impl SessionSummary {
    /// Who the session was: the token subject, else the user it logged in as (database or SSH
    /// user), with the process.
    pub fn who(&self) -> String {
        let id = &self.start.identity;
        let p = &self.start.process;
        let name = id.subject.clone().unwrap_or_else(|| id.user.clone());
        let exe = p.exe.as_deref().unwrap_or(&p.comm);
        format!("{name} ({exe} pid {} uid {})", p.pid, p.uid)
    }
}

#[derive(Default)]
pub struct SessionFilter {
    pub since: Option<String>,
    /// Matches the token subject, the user (database or SSH), the executable or `uid:N`.
    pub identity: Option<String>,
    pub resource: Option<String>,
    pub limit: usize,
}

pub fn sessions(
    store: &mut dyn Store,
    filter: &SessionFilter,
) -> Result<Vec<SessionSummary>, AuditError> {
    let starts = store.of_kind(kind::SESSION_START, filter.since.as_deref(), filter.limit)?;
    let mut out = Vec::new();
    for s in starts {
        let Some(session) = s.record.session.clone() else {
            continue;
        };
        let Ok(start) = serde_json::from_str::<SessionStart>(&s.record.body) else {
            continue;
        };
        if let Some(r) = &filter.resource
            && &start.resource != r
        {
            continue;
        }
        if let Some(who) = &filter.identity {
            let p = &start.process;
            let matches = start.identity.subject.as_deref() == Some(who.as_str())
                || &start.identity.user == who
                || p.exe.as_deref() == Some(who.as_str())
                || &p.comm == who
                || who.strip_prefix("uid:") == Some(p.uid.to_string().as_str());
            if !matches {
                continue;
            }
        }
        let end = store
            .session(&session)?
            .into_iter()
            .rev()
            .find(|r| r.record.kind == kind::SESSION_END);
        out.push(SessionSummary {
            session,
            node: s.record.node.clone(),
            started: s.record.time.clone(),
            start,
            ended: end.as_ref().map(|e| e.record.time.clone()),
            end: end.and_then(|e| serde_json::from_str(&e.record.body).ok()),
        });
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayFormat {
    /// Commands with their time, verdict and rule, and what the agent saw.
    Transcript,
    /// Exactly what `psql` printed on its standard output (PostgreSQL sessions).
    Psql,
    /// One terminal channel as an asciicast v2 recording; `None`: the first channel with a pty,
    /// else the first channel.
    Asciicast { channel: Option<u32> },
}

/// A session's records rendered in `format`, for any protocol.
pub fn replay(records: &[Stored], format: ReplayFormat) -> Result<String, String> {
    let start = records
        .iter()
        .find(|s| s.record.kind == kind::SESSION_START)
        .map(|s| parse::<SessionStart>(&s.record))
        .transpose()?;
    let protocol = start.as_ref().map_or("", |s| s.protocol.as_str());
    match format {
        ReplayFormat::Asciicast { channel } => terminal::asciicast(records, channel),
        ReplayFormat::Transcript | ReplayFormat::Psql if protocol == "postgres" => {
            replay_sql(records, format)
        }
        ReplayFormat::Transcript => terminal::transcript(records),
        ReplayFormat::Psql => Err(format!(
            "session `{}` is a `{protocol}` session: --format psql replays PostgreSQL sessions; \
             use --format transcript, asciicast or jsonl",
            session_id(records)
        )),
    }
}

/// A SQL session's records rendered as text.
pub fn replay_sql(records: &[Stored], format: ReplayFormat) -> Result<String, String> {
    let mut out = String::new();
    let clock = Clock::new(records);
    let transcript = format == ReplayFormat::Transcript;
    for s in records {
        let r = &s.record;
        match r.kind.as_str() {
            kind::SESSION_START if transcript => {
                out.push_str(&start_lines("--", r, &parse(r)?));
            }
            kind::COMMAND if transcript => {
                let c: CommandRecord = parse(r)?;
                let _ = writeln!(out, "\n{}", decision_line("--", &clock, r, &c));
                let _ = writeln!(out, "{}", c.text.trim_end());
            }
            kind::RESULT => {
                let res: ResultRecord = parse(r)?;
                for set in &res.sets {
                    out.push_str(&render_set(set, format));
                }
                if transcript {
                    let _ = writeln!(out, "-- {} µs", res.elapsed_us);
                }
            }
            kind::APPROVAL if transcript => {
                let _ = writeln!(out, "{}", approval_line("--", &clock, r, &parse(r)?));
            }
            kind::SESSION_END if transcript => {
                let e = parse(r)?;
                let _ = writeln!(out, "\n{}", end_line("--", &clock, r, &e, "the database"));
            }
            _ => {}
        }
    }
    Ok(out)
}

fn render_set(set: &ResultSet, format: ReplayFormat) -> String {
    let mut s = psql::render_stdout(set);
    if format != ReplayFormat::Psql {
        s.push_str(&psql::render_stderr(set));
    }
    s
}

/// The session id the records belong to.
pub(super) fn session_id(records: &[Stored]) -> &str {
    records
        .iter()
        .find_map(|s| s.record.session.as_deref())
        .unwrap_or("?")
}

/// Record times as offsets from the session's first record.
pub(super) struct Clock(Option<std::time::SystemTime>);

impl Clock {
    pub(super) fn new(records: &[Stored]) -> Clock {
        Clock(
            records
                .first()
                .and_then(|r| humantime::parse_rfc3339(&r.record.time).ok()),
        )
    }

    /// `+1.234s`, or the time itself when either is unreadable.
    pub(super) fn offset(&self, time: &str) -> String {
        match (self.0, humantime::parse_rfc3339(time).ok()) {
            (Some(a), Some(b)) => {
                let d = b.duration_since(a).unwrap_or_default();
                format!("+{}.{:03}s", d.as_secs(), d.subsec_millis())
            }
            _ => time.to_string(),
        }
    }
}

/// Who, where and from what process, as two comment lines.
pub(super) fn start_lines(prefix: &str, r: &Record, st: &SessionStart) -> String {
    let p = &st.process;
    format!(
        "{prefix} session {} on node {} at {}\n{prefix} {} resource `{}` ({}), from {} (pid {}, uid {}, {}), user {}{}\n",
        r.session.as_deref().unwrap_or("?"),
        r.node,
        r.time,
        st.protocol,
        st.resource,
        st.destination,
        st.target,
        p.pid,
        p.uid,
        p.exe.as_deref().unwrap_or(&p.comm),
        st.identity.user,
        st.identity
            .subject
            .as_ref()
            .map(|s| format!(", token subject {s}"))
            .unwrap_or_default(),
    )
}

/// `[+t] #n action by rule "..": reason`, as a comment.
pub(super) fn decision_line(prefix: &str, clock: &Clock, r: &Record, c: &CommandRecord) -> String {
    let rule = if c.rule.is_empty() {
        String::new()
    } else {
        format!(" by rule \"{}\": {}", c.rule, c.reason)
    };
    format!(
        "{prefix} [{}] #{} {}{rule}",
        clock.offset(&r.time),
        c.n,
        c.action
    )
}

pub(super) fn approval_line(prefix: &str, clock: &Clock, r: &Record, a: &ApprovalRecord) -> String {
    let who = a
        .decisions
        .iter()
        .map(|d| {
            format!(
                "{} {}{}",
                d.reviewer,
                if d.approve { "approved" } else { "denied" },
                d.reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{prefix} [{}] approval {} {}: {}{}",
        clock.offset(&r.time),
        a.id,
        a.event,
        a.state,
        if who.is_empty() {
            String::new()
        } else {
            format!("; {who}")
        }
    )
}

/// `peer` is what the bytes went to (`the database`, `the server`).
pub(super) fn end_line(
    prefix: &str,
    clock: &Clock,
    r: &Record,
    e: &SessionEnd,
    peer: &str,
) -> String {
    format!(
        "{prefix} [{}] session ended after {} ms: {} command(s), {} bytes to {peer}, {} to the agent{}",
        clock.offset(&r.time),
        e.elapsed_ms,
        e.commands,
        e.bytes_to_upstream,
        e.bytes_to_client,
        e.error
            .as_ref()
            .map(|e| format!("; {e}"))
            .unwrap_or_default()
    )
}

pub(super) fn parse<'a, T: Deserialize<'a>>(r: &'a Record) -> Result<T, String> {
    serde_json::from_str(&r.body).map_err(|e| {
        format!(
            "record {} of node {}: unreadable {} body: {e}",
            r.seq, r.node, r.kind
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::audit::chain::{GENESIS, record_hash};

    fn chain(n: u64) -> Vec<Stored> {
        let mut prev = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let record = Record {
                    seq,
                    node: "a".into(),
                    time: "2026-11-23T10:00:00.000Z".into(),
                    kind: "command".into(),
                    session: Some("s".into()),
                    // Key order and spacing must survive the round trip byte for byte.
                    body: format!("{{\"z\":1, \"a\":\"é\\u00e9 {seq}\"}}"),
                };
                let hash = record_hash(&prev, &record).to_vec();
                let s = Stored {
                    record,
                    prev: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                s
            })
            .collect()
    }

    #[test]
    fn an_export_round_trips_byte_for_byte_and_verifies() {
        let records = chain(5);
        let text: String = records.iter().map(|s| export_line(s) + "\n").collect();
        for (line, s) in text.lines().zip(&records) {
            assert_eq!(&parse_export_line(line).unwrap(), s);
        }
        let mut store = MemoryStore::from_jsonl(&text).unwrap();
        assert_eq!(
            verify_export(&mut store).unwrap(),
            vec![("a".to_string(), 5)]
        );
    }

    #[test]
    fn an_edited_export_line_is_found() {
        let text: String = chain(3).iter().map(|s| export_line(s) + "\n").collect();
        let edited = text.replacen("\\u00e9 2", "\\u00e9 9", 1);
        assert_ne!(edited, text);
        let mut store = MemoryStore::from_jsonl(&edited).unwrap();
        let err = verify_export(&mut store).unwrap_err();
        assert!(err.contains("record 2: contents"), "{err}");
    }
}
