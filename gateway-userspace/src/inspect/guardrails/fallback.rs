//! When the whole text does not parse: split it into statements at `;` tokens and analyse each.
//!
//! Splitting uses sqlparser's tokenizer, so a `;` inside a string, a dollar-quoted body, a
//! quoted identifier or a comment never splits. A statement that still fails is classified by
//! its leading keywords (tokens, not substrings): `DO` is a [`RuleId::DoBlock`]; everything else
//! is [`RuleId::Unparseable`], plus the rule its keywords imply (`ALTER SYSTEM` is an ALTER).

use sqlparser::{
    dialect::Dialect,
    keywords::Keyword,
    parser::Parser,
    tokenizer::{Token, TokenWithSpan, Tokenizer},
};

use super::{Analysis, Finding, RuleId, StatementKind, rules};

pub(super) fn analyze_split(sql: &str, dialect: &dyn Dialect, whole_error: String) -> Analysis {
    let mut out = Analysis::default();
    let tokens = match Tokenizer::new(dialect, sql).tokenize_with_location() {
        Ok(t) => t,
        // Not even tokens (an unterminated string or comment): one opaque statement.
        Err(e) => {
            out.statements.push(StatementKind::Other);
            out.reads.push(false);
            out.parse_error = Some(e.to_string());
            out.findings.push(Finding {
                rule: RuleId::Unparseable,
                statement: 0,
                reason: format!("cannot tokenize: {e}"),
            });
            return out;
        }
    };

    let mut explained = false;
    for chunk in tokens.split(|t| t.token == Token::SemiColon) {
        if !chunk.iter().any(|t| significant(&t.token)) {
            continue; // empty statement: only whitespace and comments
        }
        let parsed = Parser::new(dialect)
            .with_tokens_with_locations(chunk.to_vec())
            .parse_statements();
        match parsed {
            Ok(statements) if !statements.is_empty() => {
                for s in &statements {
                    rules::analyze_statement(s, &mut out);
                }
            }
            Ok(_) => {}
            Err(e) => {
                explained = true;
                classify_failed(chunk, e.to_string(), &mut out);
            }
        }
    }
    // The pieces parsed although the whole did not (e.g. `BEGIN ATOMIC ... END` bodies split
    // apart): keep the whole text's failure so the input is never reported clean.
    if !explained {
        out.parse_error = Some(whole_error.clone());
        out.findings.push(Finding {
            rule: RuleId::Unparseable,
            statement: 0,
            reason: format!("cannot parse: {whole_error}"),
        });
        if out.statements.is_empty() {
            out.statements.push(StatementKind::Other);
            out.reads.push(false);
        }
    }
    out
}

fn significant(t: &Token) -> bool {
    !matches!(t, Token::Whitespace(_) | Token::EOF)
}

/// The first few unquoted words, upper-cased through sqlparser's keyword table.
fn leading_words(chunk: &[TokenWithSpan]) -> Vec<Keyword> {
    chunk
        .iter()
        .filter(|t| significant(&t.token))
        .take(4)
        .map_while(|t| match &t.token {
            Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
            _ => None,
        })
        .collect()
}

fn classify_failed(chunk: &[TokenWithSpan], error: String, out: &mut Analysis) {
    use Keyword as W;
    let words = leading_words(chunk);
    let index = out.statements.len();
    let mut push = |rule: RuleId, reason: String| {
        out.findings.push(Finding {
            rule,
            statement: index,
            reason,
        })
    };
    let first = words.first().copied().unwrap_or(W::NoKeyword);
    if first == W::DO {
        // sqlparser has no DO statement; the block itself is the finding, not a parse failure.
        push(RuleId::DoBlock, "DO block (anonymous code)".to_owned());
        out.statements.push(StatementKind::Do);
        out.reads.push(false);
        return;
    }
    let shown = describe(chunk);
    let implied = match words.as_slice() {
        [W::DROP, ..] => Some(RuleId::Drop),
        [W::ALTER, ..] => Some(RuleId::Alter),
        [W::TRUNCATE, ..] => Some(RuleId::Truncate),
        [W::GRANT | W::REVOKE, ..] => Some(RuleId::GrantRevoke),
        [W::CREATE, W::FUNCTION | W::PROCEDURE, ..]
        | [W::CREATE, W::OR, W::REPLACE, W::FUNCTION | W::PROCEDURE] => {
            Some(RuleId::CreateFunction)
        }
        [W::CREATE, W::TRIGGER, ..]
        | [W::CREATE, W::CONSTRAINT, W::TRIGGER, ..]
        | [W::CREATE, W::OR, W::REPLACE, W::TRIGGER] => Some(RuleId::CreateTrigger),
        [W::CREATE, W::EXTENSION, ..] => Some(RuleId::CreateExtension),
        [W::LOAD, ..] => Some(RuleId::LoadLibrary),
        [W::SET, W::ROLE, ..]
        | [W::SET, W::SESSION | W::LOCAL, W::ROLE, ..]
        | [W::SET, W::SESSION, W::AUTHORIZATION, ..] => Some(RuleId::SetRole),
        _ => None,
    };
    if let Some(rule) = implied {
        push(rule, format!("{shown} (not fully parsed)"));
    }
    push(
        RuleId::Unparseable,
        format!("cannot parse {shown}: {error}"),
    );
    if out.parse_error.is_none() {
        out.parse_error = Some(error);
    }
    out.reads.push(false);
    out.statements.push(match first {
        W::SELECT | W::VALUES | W::TABLE => StatementKind::Select,
        W::INSERT => StatementKind::Insert,
        W::UPDATE => StatementKind::Update,
        W::DELETE => StatementKind::Delete,
        W::MERGE => StatementKind::Merge,
        W::COPY => StatementKind::Copy,
        W::CREATE | W::ALTER | W::DROP | W::TRUNCATE | W::COMMENT => StatementKind::Ddl,
        W::GRANT | W::REVOKE => StatementKind::Dcl,
        W::BEGIN
        | W::START
        | W::COMMIT
        | W::END
        | W::ROLLBACK
        | W::ABORT
        | W::SAVEPOINT
        | W::RELEASE => StatementKind::Transaction,
        W::SET | W::RESET => StatementKind::Set,
        W::SHOW => StatementKind::Show,
        W::EXPLAIN => StatementKind::Explain,
        W::CALL => StatementKind::Call,
        W::PREPARE | W::DEALLOCATE => StatementKind::Prepare,
        W::EXECUTE => StatementKind::Execute,
        W::DECLARE | W::FETCH | W::CLOSE => StatementKind::Cursor,
        W::LISTEN | W::UNLISTEN => StatementKind::Listen,
        W::NOTIFY => StatementKind::Notify,
        W::LOCK => StatementKind::Lock,
        W::VACUUM | W::ANALYZE | W::CLUSTER | W::REINDEX | W::REFRESH => StatementKind::Maintenance,
        _ => StatementKind::Other,
    });
}

/// The first three tokens, for the reason: `ALTER SYSTEM SET`, `CREATE OR REPLACE`.
fn describe(chunk: &[TokenWithSpan]) -> String {
    let words: Vec<String> = chunk
        .iter()
        .filter(|t| significant(&t.token))
        .take(3)
        .map(|t| match &t.token {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            other => other.to_string(),
        })
        .collect();
    let mut s = words.join(" ");
    if s.len() > 40 {
        s = "statement".to_owned();
    }
    s
}
