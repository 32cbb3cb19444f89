//! Approval holds for PostgreSQL: the held statement waits here, with its exact bytes, while
//! reviewers decide; nothing of it reaches the database before the approval.
//!
//! Simple protocol: the `Query` message is held. Extended protocol: preparing a statement
//! executes nothing, so a held statement's `Parse` is forwarded and remembered; the batch that
//! binds or executes it is held from that `Bind`/`Execute` up to its `Sync` (or `Flush`), with
//! its parameters. A statement prepared once and executed again is held again: each approval
//! releases one batch.

use std::{sync::Arc, time::Duration};

use bytes::BytesMut;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader},
    sync::Notify,
};

use super::{
    codec,
    codec::{Message, SQLSTATE_REFUSED},
};
use crate::{
    conn::ConnCtx,
    gate::{Command, Gate, HoldSpec as GateHold, Refusal, RefusedBy},
    inspect::{Dialect, guardrails::StatementKind, masking::MaskingEngine},
    services::{
        Services,
        approvals::{model::Preview, settings::PreviewSettings},
    },
    util::hex,
};

/// Shown per parameter to reviewers; longer values are cut (the hash covers all of it).
const MAX_PARAM_SHOWN: usize = 1024;

/// What a session knows about its agent and its upstream login.
pub struct SessionIdentity {
    /// The gateway's own login, for previews on a separate connection (`None`: passthrough).
    pub login: Option<PreviewLogin>,
    /// Woken by the agent's CancelRequest: a held statement is then cancelled.
    pub cancel: Arc<Notify>,
}

pub use super::upstream::PreviewLogin;

/// A prepared statement the policy holds.
#[derive(Debug)]
pub struct HeldStatement {
    pub sql: String,
    pub rule: String,
    pub reason: String,
    pub param_types: Vec<u32>,
}

/// A `Bind`'s parameter format codes and values, kept to replay it for the preview.
pub type BoundParams = (Vec<u16>, Vec<Option<Vec<u8>>>);

/// An extended-protocol batch held from its first `Bind`/`Execute` of a held statement.
pub struct HeldBatch {
    pub bytes: BytesMut,
    pub statements: Vec<Arc<HeldStatement>>,
    /// Parameters of the first `Bind` (text as shown to reviewers; raw for the preview).
    pub shown: Vec<Option<String>>,
    pub first_bind: Option<BoundParams>,
    pub executions: usize,
}

impl HeldBatch {
    pub fn new(statement: Arc<HeldStatement>) -> HeldBatch {
        HeldBatch {
            bytes: BytesMut::new(),
            statements: vec![statement],
            shown: Vec::new(),
            first_bind: None,
            executions: 0,
        }
    }

    pub fn add_statement(&mut self, s: Arc<HeldStatement>) {
        if !self.statements.iter().any(|x| Arc::ptr_eq(x, &s)) {
            self.statements.push(s);
        }
    }

    pub fn add_bind(&mut self, bind: &codec::Bind<'_>, masker: &MaskingEngine) {
        self.executions += 1;
        if self.first_bind.is_some() {
            return;
        }
        self.shown = bind
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| p.map(|v| show_param(v, bind.is_binary(i), masker)))
            .collect();
        self.first_bind = Some((
            bind.param_formats.clone(),
            bind.params.iter().map(|p| p.map(<[u8]>::to_vec)).collect(),
        ));
    }
}

/// A parameter as reviewers see it. The value is masked before it is rendered: rendered first,
/// a binary parameter's hex would spell out a card number the masking engine cannot see.
fn show_param(v: &[u8], binary: bool, masker: &MaskingEngine) -> String {
    let masked = match masker.mask(v) {
        Ok(None) => None,
        Ok(Some(m)) => Some(m),
        Err(e) => return format!("<withheld: masking failed: {e}>"),
    };
    let v = masked.as_deref().unwrap_or(v);
    let cut = &v[..v.len().min(MAX_PARAM_SHOWN)];
    let mut s = if binary {
        let mut h = format!("\\x{}", hex(cut));
        // Text types travel as their UTF-8 bytes in binary format too: show them readably
        // as well (the type is the server's to know, so the hex stays first).
        if let Ok(text) = std::str::from_utf8(cut)
            && !text.is_empty()
            && !text.chars().any(char::is_control)
        {
            h.push_str(&format!(" ({text:?})"));
        }
        h
    } else {
        String::from_utf8_lossy(cut).into_owned()
    };
    if cut.len() < v.len() {
        s.push_str(&format!("… ({} bytes)", v.len()));
    }
    s
}

/// The command to hold.
pub struct HoldSpec<'a> {
    pub rule: String,
    pub reason: String,
    pub command: String,
    pub parameters: Vec<Option<String>>,
    /// The exact bytes forwarded on approval.
    pub payload: &'a [u8],
    pub preview: PreviewInput<'a>,
}

pub enum PreviewInput<'a> {
    Simple(&'a str),
    Extended {
        sql: &'a str,
        param_types: &'a [u32],
        bind: Option<&'a BoundParams>,
    },
}

impl PreviewInput<'_> {
    fn sql(&self) -> &str {
        match self {
            PreviewInput::Simple(s) => s,
            PreviewInput::Extended { sql, .. } => sql,
        }
    }
}

fn refused(message: String, detail: Option<&str>, code: &str) -> Message {
    codec::error_response(
        code,
        &message,
        detail,
        Some("Nothing was sent to the database."),
    )
}

/// Holds a command until it is approved (`Ok`: forward the payload) or refused (`Err`: the
/// ErrorResponse for the agent). The hold itself is the gate's; this adds the preview and
/// words the refusal as PostgreSQL would.
pub async fn hold<R: AsyncRead + Unpin>(
    agent: &mut BufReader<R>,
    spec: HoldSpec<'_>,
    gate: &Gate,
    session: &SessionIdentity,
) -> Result<(), Message> {
    let held = GateHold {
        protocol: "postgres",
        command: Command::Sql {
            text: &spec.command,
            dialect: Dialect::Postgres,
        },
        rule: &spec.rule,
        reason: &spec.reason,
        parameters: spec.parameters,
        payload: spec.payload,
    };
    let (ctx, services) = (&gate.ctx, &*gate.services);
    let preview = |settings: PreviewSettings| async move {
        match &session.login {
            Some(login) if settings.explain || settings.dry_run => {
                Some(preview(ctx, services, login, &spec.preview, settings).await)
            }
            Some(_) => None,
            None => Some(Preview {
                note: Some("no preview: the resource relays the agent's own login (passthrough), so sluice has no credential of its own".into()),
                ..Preview::default()
            }),
        }
    };
    // Listening from now on: a CancelRequest that arrives while the request is being opened
    // (before the wait starts) still cancels it (`notify_waiters` keeps nothing for later).
    let cancel = session.cancel.notified();
    tokio::pin!(cancel);
    cancel.as_mut().enable();
    let cancelled = async {
        tokio::select! {
            _ = cancel => {}
            _ = agent_gone(agent) => {}
        }
    };
    gate.hold(held, preview, async |_| {}, cancelled)
        .await
        .map_err(|r| refusal(&r))
}

/// A refusal as PostgreSQL words it: what it is, in which request, and the SQLSTATE a
/// client knows (57014 for a cancelled statement, 57P01 when the gateway gave up).
fn refusal(r: &Refusal) -> Message {
    let rule_said = format!("rule \"{}\": {}", r.rule, r.reason);
    let id = r.request.as_deref().unwrap_or("?");
    match &r.by {
        RefusedBy::NoApprovals | RefusedBy::CannotHold(_) => refused(
            format!("sluice: {}", r.sentence("statement")),
            Some(&r.reason),
            SQLSTATE_REFUSED,
        ),
        RefusedBy::Reviewer { .. } => refused(
            format!("sluice: {}", r.sentence("statement")),
            Some(&format!("approval request {id} ({rule_said})")),
            SQLSTATE_REFUSED,
        ),
        RefusedBy::Timeout(_) => refused(
            format!("sluice: {}", r.sentence("statement")),
            Some(&rule_said),
            SQLSTATE_REFUSED,
        ),
        RefusedBy::Cancelled => refused(
            "canceling statement due to user request (it was held for approval)".into(),
            Some(&format!("approval request {id} cancelled")),
            "57014",
        ),
        RefusedBy::Abandoned(_) => refused(
            format!("sluice: {}", r.sentence("statement")),
            None,
            "57P01",
        ),
        RefusedBy::Mismatch => refused(
            format!("sluice: {}", r.sentence("statement")),
            None,
            "XX000",
        ),
    }
}

/// Resolves when the agent closes its connection (buffered pipelined input keeps it pending).
async fn agent_gone<R: AsyncRead + Unpin>(agent: &mut BufReader<R>) {
    match agent.fill_buf().await {
        Ok([]) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}

/// What the statement would do: `EXPLAIN` (estimated rows) and, if the policy allows, a dry run
/// inside `BEGIN ... ROLLBACK` (exact rows), on a separate connection with a statement timeout.
async fn preview(
    ctx: &ConnCtx,
    services: &Services,
    login: &PreviewLogin,
    input: &PreviewInput<'_>,
    settings: PreviewSettings,
) -> Preview {
    let pg = ctx.resource.postgres();
    let analysis = services
        .analyzer
        .analyze_bounded(
            input.sql(),
            Dialect::Postgres,
            pg.max_statement_bytes,
            pg.analysis_budget,
        )
        .await;
    let previewable = analysis.statements.len() == 1
        && matches!(
            analysis.statements[0],
            StatementKind::Select
                | StatementKind::Insert
                | StatementKind::Update
                | StatementKind::Delete
                | StatementKind::Merge
        );
    if !previewable {
        return Preview {
            note: Some(
                "no preview: only a single SELECT, INSERT, UPDATE, DELETE or MERGE is previewed"
                    .into(),
            ),
            ..Preview::default()
        };
    }
    if let PreviewInput::Extended {
        param_types, bind, ..
    } = input
        && bind.is_none()
        && !param_types.is_empty()
    {
        return Preview {
            note: Some("no preview: the parameters were bound in an earlier batch".into()),
            ..Preview::default()
        };
    }
    // Waiting for a slot, connecting and logging in count against the budget too.
    let budget = settings.timeout + Duration::from_secs(3);
    let previewed = tokio::time::timeout(budget, async {
        let _slot = services.previews.acquire().await;
        run_preview(ctx, login, input, settings).await
    });
    match previewed.await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => Preview {
            note: Some(format!("no preview: {e}")),
            ..Preview::default()
        },
        Err(_) => Preview {
            note: Some(format!(
                "no preview: it took longer than {}",
                humantime::format_duration(budget)
            )),
            ..Preview::default()
        },
    }
}

async fn run_preview(
    ctx: &ConnCtx,
    login: &PreviewLogin,
    input: &PreviewInput<'_>,
    settings: PreviewSettings,
) -> Result<Preview, String> {
    let mut up = login.open(ctx).await?;
    let mut out = Preview::default();
    let timeout_ms = settings.timeout.as_millis().max(1);
    let mut notes = Vec::new();
    if settings.explain {
        let r = run_wrapped(&mut up, "BEGIN READ ONLY", timeout_ms, input, true).await?;
        match r {
            Step::Rows(Some(plan_text)) => {
                let plan: Option<serde_json::Value> = serde_json::from_str(&plan_text).ok();
                out.estimated_rows = plan.as_ref().and_then(estimated_rows);
                out.plan = plan;
            }
            Step::Rows(None) | Step::Tag(_) => notes.push("EXPLAIN returned no plan".to_string()),
            Step::Error(e) => notes.push(format!("EXPLAIN failed: {e}")),
        }
    }
    if settings.dry_run {
        // Read-write in spite of the session's read-only default: it is rolled back.
        match run_wrapped(&mut up, "BEGIN READ WRITE", timeout_ms, input, false).await? {
            Step::Tag(tag) => {
                out.rows_affected = tag.rsplit(' ').next().and_then(|n| n.parse().ok())
            }
            Step::Error(e) => notes.push(format!("dry run failed: {e}")),
            Step::Rows(_) => {}
        }
    }
    let _ = up.write_all(&Message::new(b'X', b"").raw).await;
    if !notes.is_empty() {
        out.note = Some(notes.join("; "));
    }
    Ok(out)
}

enum Step {
    /// First column of the first row.
    Rows(Option<String>),
    /// CommandComplete tag.
    Tag(String),
    Error(String),
}

/// Runs the statement (or its EXPLAIN) between `begin` and ROLLBACK with a statement timeout.
async fn run_wrapped(
    up: &mut super::upstream::BoxIo,
    begin: &str,
    timeout_ms: u128,
    input: &PreviewInput<'_>,
    explain: bool,
) -> Result<Step, String> {
    let mut buf = BytesMut::new();
    let q = |sql: &str, buf: &mut BytesMut| {
        postgres_protocol::message::frontend::query(sql, buf).map_err(|e| e.to_string())
    };
    q(begin, &mut buf)?;
    q(
        &format!("SET LOCAL statement_timeout = {timeout_ms}"),
        &mut buf,
    )?;
    let prefix = if explain {
        "EXPLAIN (FORMAT JSON) "
    } else {
        ""
    };
    match input {
        PreviewInput::Simple(sql) => q(&format!("{prefix}{sql}"), &mut buf)?,
        PreviewInput::Extended {
            sql,
            param_types,
            bind,
        } => {
            use postgres_protocol::{IsNull, message::frontend};
            frontend::parse(
                "",
                &format!("{prefix}{sql}"),
                param_types.iter().copied(),
                &mut buf,
            )
            .map_err(|e| e.to_string())?;
            let (formats, values) = bind
                .map(|b| (b.0.as_slice(), b.1.as_slice()))
                .unwrap_or_default();
            frontend::bind(
                "",
                "",
                formats.iter().map(|f| *f as i16),
                values,
                |v: &Option<Vec<u8>>, out| {
                    Ok(match v {
                        None => IsNull::Yes,
                        Some(v) => {
                            out.extend_from_slice(v);
                            IsNull::No
                        }
                    })
                },
                // Results in text: the plan is JSON text, and a dry run's rows are not kept.
                std::iter::empty(),
                &mut buf,
            )
            .map_err(|e| match e {
                frontend::BindError::Conversion(e) => e.to_string(),
                frontend::BindError::Serialization(e) => e.to_string(),
            })?;
            frontend::execute("", 0, &mut buf).map_err(|e| e.to_string())?;
            frontend::sync(&mut buf);
        }
    }
    q("ROLLBACK", &mut buf)?;
    up.write_all(&buf).await.map_err(|e| e.to_string())?;
    up.flush().await.map_err(|e| e.to_string())?;
    let mut step = 0;
    let mut result = Step::Rows(None);
    loop {
        let m = codec::read_message(up, 16 << 20, "upstream")
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the database closed the preview connection")?;
        match m.tag {
            b'Z' => {
                step += 1;
                if step == 4 {
                    return Ok(result);
                }
            }
            b'E' => {
                let text = codec::notice_field(&codec::notice_fields(m.body()), b'M');
                if step == 2 {
                    result = Step::Error(text);
                } else if step < 2 {
                    return Err(format!("preview setup failed: {text}"));
                }
            }
            b'D' if step == 2 => {
                if let Step::Rows(None) = result
                    && let Ok(fields) = codec::data_row_fields(m.body())
                    && let Some(Some(r)) = fields.first()
                {
                    result = Step::Rows(Some(
                        String::from_utf8_lossy(&m.body()[r.clone()]).into_owned(),
                    ));
                }
            }
            b'C' if step == 2 && !explain => {
                result = Step::Tag(codec::query_text(m.body()).unwrap_or_default().to_string());
            }
            _ => {}
        }
    }
}

/// Rows the planner expects the statement to touch: for a write, the rows its scan produces.
fn estimated_rows(plan: &serde_json::Value) -> Option<f64> {
    let top = plan.get(0)?.get("Plan")?;
    let node = if top.get("Node Type")?.as_str()? == "ModifyTable" {
        top.get("Plans")?.get(0)?
    } else {
        top
    };
    node.get("Plan Rows")?.as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rendered first, a binary text parameter's hex would spell a card number out in full
    /// (`\x34313131...`) where no detector can see it: the value is masked before rendering.
    #[test]
    fn a_binary_parameter_is_masked_before_it_is_shown_as_hex() {
        let masker = MaskingEngine::with_defaults().unwrap();
        let card = b"4111111111111111";
        let shown = show_param(card, true, &masker);
        assert!(shown.contains("[CARD]"), "{shown}");
        assert!(!shown.contains("4111111111111111"), "{shown}");
        assert!(!shown.contains(&hex(card)), "{shown}");
        assert!(!show_param(b"ada@example.com", false, &masker).contains("ada@"));
        assert_eq!(show_param(b"7", true, &masker), "\\x37 (\"7\")");
    }
}
