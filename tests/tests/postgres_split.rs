//! sluice's analyser and PostgreSQL split statement text the same way (issue 16): for random
//! texts full of the lexer's traps (quotes, doubled quotes, `E''` escapes, dollar quotes with
//! tags, `U&''` strings, quoted identifiers, line and nested block comments, semicolons and
//! backslashes inside all of them, multibyte UTF-8), the number of statements sluice sees is
//! the number the server runs, and each runs whole.
//!
//! Ground truth is the server: each text is sent as one simple query to a real PostgreSQL 15,
//! whose statements each return their own index (`SELECT i AS n, <trap> ...`), so a boundary
//! the server puts elsewhere shows as a missing, extra or garbled index. It is run under every
//! setting that changes lexing that a session through sluice may have: those sluice pins
//! (`standard_conforming_strings = on`, `client_encoding = UTF8`), with the rest at each of
//! their values (`backslash_quote`, `escape_string_warning`).

use proptest::{prelude::*, test_runner::TestRunner};
use sluice::inspect::{
    Dialect,
    guardrails::{StatementKind, analyze},
};
use sluice_tests::{PG_SCRAM, PgServer, TestNet, require_root};

/// Characters that end or open something somewhere.
fn trap_char() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(";".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just("$".to_string()),
        Just("$$".to_string()),
        Just("--".to_string()),
        Just("/*".to_string()),
        Just("*/".to_string()),
        Just("\n".to_string()),
        Just(" ".to_string()),
        Just("é".to_string()),
        Just("日本".to_string()),
        Just("😀".to_string()),
        Just("\u{c3}".to_string()),
        Just("x".to_string()),
        Just("DROP TABLE t".to_string()),
    ]
}

fn content() -> impl Strategy<Value = String> {
    prop::collection::vec(trap_char(), 0..8).prop_map(|v| v.concat())
}

/// One value expression whose text holds traps, and what it must evaluate to is irrelevant:
/// only where the statement ends matters.
fn trap() -> impl Strategy<Value = String> {
    prop_oneof![
        // Standard string: a quote is doubled, a backslash is a character.
        content().prop_map(|c| format!("'{}'", c.replace('\'', "''"))),
        // Escape string: backslash escapes (only valid ones), quotes escaped either way.
        content().prop_map(|c| {
            let mut out = String::from("E'");
            for ch in c.chars() {
                match ch {
                    '\'' => out.push_str("\\'"),
                    '\\' => out.push_str("\\\\"),
                    c => out.push(c),
                }
            }
            out.push_str("\\n\\t\\x41\\101'");
            out
        }),
        // Dollar quotes, with and without a tag; the body must not close them.
        (content(), prop_oneof![Just(""), Just("a"), Just("tag_1")]).prop_map(|(c, tag)| {
            let close = format!("${tag}$");
            let body = c.replace(&close, "");
            // `$` at the end of the body would run into the closing tag.
            let body = body.trim_end_matches('$');
            format!("${tag}${body}${tag}$")
        }),
        // A quoted identifier (as a column alias of a constant).
        content().prop_map(|c| {
            let c = c.replace('\u{0}', "");
            let c = if c.is_empty() { "x".to_string() } else { c };
            format!("1 AS \"{}\"", c.replace('"', "\"\""))
        }),
        // Unicode escapes in a string (standard_conforming_strings on).
        Just("U&'\\0041\\+01F600 ;'".to_string()),
        // Casts and arithmetic, for tokens that are not strings.
        Just("1::int8 + 2".to_string()),
    ]
}

/// Whitespace or comments between tokens.
fn gap() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(" ".to_string()),
        Just("\n".to_string()),
        content().prop_map(|c| format!(" -- {}\n", c.replace('\n', " "))),
        // Block comments nest in PostgreSQL.
        content().prop_map(|c| format!(" /* {} */ ", c.replace("*/", "").replace("/*", ""))),
        content().prop_map(|c| {
            let c = c.replace("*/", "").replace("/*", "");
            format!(" /* outer /* {c} */ still a comment ; */ ")
        }),
    ]
}

/// A text of statements `SELECT i AS n, <trap>`, joined by `;` with gaps and maybe empty
/// statements.
fn text() -> impl Strategy<Value = (String, usize)> {
    prop::collection::vec((trap(), gap(), gap(), any::<bool>()), 1..6).prop_map(|stmts| {
        let n = stmts.len();
        let mut out = String::new();
        for (i, (t, g1, g2, extra_semicolon)) in stmts.into_iter().enumerate() {
            out.push_str(&format!("SELECT{g1}{i} AS n,{g2}{t};"));
            if extra_semicolon {
                out.push_str(" ; ");
            }
        }
        (out, n)
    })
}

#[test]
fn sluice_and_postgres_split_statements_alike() {
    require_root();
    let net = TestNet::new();
    let pg = PgServer::start(&net);
    let conninfo = pg.conninfo(PG_SCRAM.0, PG_SCRAM.1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
            .await
            .expect("connecting to the test server");
        tokio::spawn(conn);
        client
    });
    // The check has teeth: with standard_conforming_strings off (which sluice refuses), the
    // server splits a text otherwise than sluice does, and this comparison sees it.
    let divergent = r"SELECT 0 AS n, '\'; SELECT 1 AS n; --';";
    assert_eq!(analyze(divergent, Dialect::Postgres).statements.len(), 2);
    // (A SET in the same text would not do: the server reads the whole text first.)
    rt.block_on(client.simple_query("SET standard_conforming_strings = off"))
        .unwrap();
    let ran = rt
        .block_on(client.simple_query(divergent))
        .unwrap()
        .iter()
        .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::CommandComplete(_)))
        .count();
    assert_eq!(ran, 1, "the server saw one statement where sluice saw two");
    // The pinned settings, and each value of the lexing settings sluice leaves alone.
    let settings = [
        "SET backslash_quote = safe_encoding; SET escape_string_warning = on",
        "SET backslash_quote = off; SET escape_string_warning = off",
        "SET backslash_quote = on; SET escape_string_warning = on",
    ];
    for setting in settings {
        rt.block_on(client.simple_query(&format!(
            "SET standard_conforming_strings = on; SET client_encoding = 'UTF8'; {setting}"
        )))
        .unwrap();
        let mut runner = TestRunner::new(ProptestConfig {
            cases: 200,
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        runner
            .run(&text(), |(sql, n)| {
                let a = analyze(&sql, Dialect::Postgres);
                prop_assert!(
                    a.parse_error.is_none(),
                    "sluice did not parse {sql:?}: {a:?}"
                );
                prop_assert_eq!(
                    &a.statements,
                    &vec![StatementKind::Select; n],
                    "sluice split {:?} into {:?}",
                    sql,
                    a.statements
                );
                let answer = match rt.block_on(client.simple_query(&sql)) {
                    Ok(a) => a,
                    // The server reads the whole text before running any of it: a text it
                    // cannot read (`\'` with backslash_quote = off) runs nothing at all.
                    Err(e) => {
                        let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
                        prop_assert!(
                            code.starts_with("42") || code == "22P06",
                            "the server failed {:?} while running it: {}",
                            sql,
                            e
                        );
                        return Ok(());
                    }
                };
                let indices: Vec<String> = answer
                    .iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                        _ => None,
                    })
                    .collect();
                let ran = answer
                    .iter()
                    .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::CommandComplete(_)))
                    .count();
                let expected: Vec<String> = (0..n).map(|i| i.to_string()).collect();
                prop_assert_eq!(ran, n, "the server ran {} statements of {:?}", ran, sql);
                prop_assert_eq!(indices, expected, "the server split {:?} otherwise", sql);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("under `{setting}`: {e}"));
    }
}
