//! Red team: a hostile agent tries to read personal data out of PostgreSQL through sluice by
//! transforming it (reversed, base64, hex, bytea, halves, translated, zero-width spaces, code
//! lists, whole rows, aliases), by asking for binary results of every type, by protocol tricks
//! (Execute without Describe, a portal resumed after another query), and through side doors
//! (ParameterStatus, notifications, error and notice texts, COPY in every format, values
//! written into other columns).
//!
//! Ground truth is the table itself, read directly as the superuser. Every byte the agent's
//! client received is searched for each sensitive value and for its trivially reversible
//! forms, decoding what it finds (base64, hex, code lists, full-width digits, zero-width
//! spaces, letters for digits, reversal, halves).
//!
//! No masking rules are configured: sluice finds the sensitive columns by sampling them.
//!
//! One file past ~700 lines on purpose: it is one red-team list (every way out past masking)
//! with the decoders its checks share (a file is also a test binary to build).

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;
use sluice_tests::{
    Gateway, PG_SCRAM, PgServer, Policy, TestCgroup, TestNet, inject, pg_resource, pg_wire, probe,
    psql_in, require_root,
};

/// Everything allowed, so that only masking stands between the agent and the data.
const OPEN_POLICY: &str = "rules:
  - name: everything
    statements: [select, insert, update, delete, merge, copy, ddl, dcl, transaction, set, show, explain, call, prepare, execute, cursor, listen, notify, lock, do, maintenance, other]
    action: allow
  # Functions with effects and SQL run from a string (`query_to_xml`): allowed here so that
  # masking alone is tested (the guardrails refuse them otherwise).
  - name: functions
    guardrails: [dangerous-function, volatile-function, side-effect-function, sql-from-text]
    action: allow
guardrails:
  default: allow
";

/// A table of people whose every sensitive column is valid for its detector (Luhn cards,
/// SSA-valid SSNs, mod-97 IBANs), plus decoys that must come through unchanged.
const SEED: &str = r#"
CREATE TABLE people (id int PRIMARY KEY, name text, email text, card text, ssn text,
                     phone text, iban text, token text, dob date, nick text);
INSERT INTO people VALUES
 (1, 'Ada', 'ada.king@example.com', '4111 1111 1111 1111', '123-45-6789', '+1 415 555 0132', 'DE89370400440532013000', 'ghp_abcdefghijklmnopqrstuvwxyz0123456789', '1815-12-10', 'countess'),
 (2, 'Alan', 'alan.turing@bletchley.org', '5500-0000-0000-0004', '219-09-9999', '+44 20 7946 0958', 'GB82WEST12345698765432', 'AKIAIOSFODNN7EXAMPLE', '1912-06-23', 'prof'),
 (3, 'Grace', 'grace.hopper@navy.example.mil', '3782 822463 10005', '078-05-1120', '+1 212 555 0199', 'FR1420041010050500013M02606', 'glpat-abcdefghijklmnopqrst', '1906-12-09', 'amazing'),
 (4, 'Edsger', 'edsger@tue.example.nl', '6011111111111117', '457-55-5462', '+31 20 555 0147', 'NL91ABNA0417164300', 'npm_abcdefghijklmnopqrstuvwxyz0123456789', '1930-05-11', 'goto');
GRANT ALL ON people TO app;
CREATE TABLE decoys (id int PRIMARY KEY, kind text, val text);
INSERT INTO decoys VALUES
 (1, 'uuid', '3f2b8c1e-9a4d-4e6b-8f7a-2c1d0e9b8a76'),
 (2, 'uuid', '123e4567-e89b-12d3-a456-426614174000'),
 (3, 'invoice', 'INV-2024-000123'),
 (4, 'invoice', 'INV-2023-998877'),
 (5, 'reference', '4111111111111112'),
 (6, 'reference', '1234567890123456'),
 (7, 'tracking', '1Z999AA10123456784'),
 (8, 'tracking', '9400111899223344556677'),
 (9, 'isbn', '978-0-306-40615-7'),
 (10, 'isbn', '978-3-16-148410-0'),
 (11, 'unix', '1700000000'),
 (12, 'unix', '1712345678'),
 (13, 'sha256', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'),
 (14, 'sha1', 'da39a3ee5e6b4b0d3255bfef95601890afd80709'),
 (15, 'md5', 'd41d8cd98f00b204e9800998ecf8427e'),
 (16, 'version', 'v1.2.3.4'),
 (17, 'time', '2024-05-01T12:00:00Z'),
 (18, 'order', 'ORD-2024-000124'),
 (19, 'url', 'https://example.org/docs/page?id=42'),
 (20, 'money', 'USD 1,234,567.89'),
 (21, 'ssn-ish', '000-12-3456'),
 (22, 'phone-ish', '555-01'),
 (23, 'iban-ish', 'XX00NOTANIBAN'),
 (24, 'sentence', 'social media campaign 2024 reached 123 people'),
 (25, 'url', 'postgres://db.internal:5432/app');
GRANT ALL ON decoys TO app;
CREATE VIEW people_v AS SELECT id, reverse(email) AS liame, card FROM people;
GRANT ALL ON people_v TO app;
CREATE FUNCTION shout(t text) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE '%', t; RETURN 1; END $$;
CREATE FUNCTION fetch_email(i int) RETURNS text LANGUAGE sql AS $$ SELECT email FROM people WHERE id = i $$;
GRANT EXECUTE ON FUNCTION shout(text), fetch_email(int) TO app;
"#;

struct Lab {
    _net: TestNet,
    pg: PgServer,
    cg: TestCgroup,
    _gw: Gateway,
    secrets: Vec<String>,
}

fn lab(extra: &str) -> Lab {
    lab_with(&inject(PG_SCRAM), extra)
}

fn lab_with(credentials: &str, extra: &str) -> Lab {
    require_root();
    let net = TestNet::new();
    let pg = PgServer::start(&net);
    for stmt in SEED.split(";\n").filter(|s| !s.trim().is_empty()) {
        pg.admin_sql(stmt);
    }
    let cg = TestCgroup::new();
    let mut policy = Policy::new(Some(&cg), "deny");
    policy.raw_resources = pg_resource("db", &pg, credentials);
    policy.extra = format!("{OPEN_POLICY}{extra}");
    let gw = Gateway::start(&policy);
    // Ground truth, from the database itself.
    let mut secrets = Vec::new();
    for col in [
        "email",
        "card",
        "ssn",
        "phone",
        "iban",
        "token",
        "dob::text",
    ] {
        secrets.extend(
            pg.admin_sql(&format!("select {col} from people order by id"))
                .lines()
                .map(str::to_string),
        );
    }
    for col in ["email", "card", "ssn", "phone", "iban"] {
        for v in pg
            .admin_sql(&format!("select {col} from customers where id < 3"))
            .lines()
        {
            secrets.push(v.to_string());
        }
    }
    secrets.push(pg.admin_sql("select email from customers where id = 3"));
    Lab {
        _net: net,
        pg,
        cg,
        _gw: gw,
        secrets,
    }
}

impl Lab {
    /// psql in the cgroup (wrong password: sluice's credential logs in), text results.
    fn psql(&self, sql: &[&str]) -> String {
        let out = psql_in(
            &self.cg.dir,
            &self.pg.conninfo(PG_SCRAM.0, "not-the-password"),
            sql,
        );
        format!("{}\n{}", out.stdout, out.stderr)
    }

    /// The raw client in the cgroup; returns every message received.
    fn wire(&self, script: Value) -> Vec<Msg> {
        let (msgs, ok) = self.wire_maybe_closed(script);
        assert!(ok, "pg-wire failed: {msgs:?}");
        msgs
    }

    /// [`Lab::wire`] for a session sluice may end: every message received, and whether the
    /// script ran to its end.
    fn wire_maybe_closed(&self, script: Value) -> (Vec<Msg>, bool) {
        let out = pg_wire(&self.cg.dir, &self.pg.addr, PG_SCRAM.0, "postgres", &script);
        let ok = out["ok"].as_bool().unwrap_or(false);
        let msgs = out["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| Msg {
                tag: m["tag"].as_str().unwrap().as_bytes()[0],
                body: unhex(m["body"].as_str().unwrap()).unwrap(),
            })
            .collect();
        (msgs, ok)
    }

    /// tokio-postgres (binary results, extended protocol) in the cgroup.
    fn tokio_pg(&self, sql: &[&str]) -> Value {
        let conninfo = self.pg.conninfo(PG_SCRAM.0, "wrong");
        let mut args = vec!["pg", conninfo.as_str(), "extended"];
        args.extend_from_slice(sql);
        probe(Some(&self.cg.dir), &args)
    }

    /// Asserts that nothing the agent received reveals a sensitive value.
    #[track_caller]
    fn assert_no_leak(&self, what: &str, received: &[u8]) {
        let found = leaks(received, &self.secrets);
        assert!(
            found.is_empty(),
            "{what}: the agent recovered {found:?} from:\n{}",
            String::from_utf8_lossy(received)
        );
    }
}

#[derive(Debug, Clone)]
struct Msg {
    tag: u8,
    body: Vec<u8>,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn fields(body: &[u8]) -> Vec<Option<Vec<u8>>> {
    let n = i16::from_be_bytes([body[0], body[1]]) as usize;
    let mut at = 2;
    let mut out = Vec::new();
    for _ in 0..n {
        let len = i32::from_be_bytes(body[at..at + 4].try_into().unwrap());
        at += 4;
        if len < 0 {
            out.push(None);
        } else {
            out.push(Some(body[at..at + len as usize].to_vec()));
            at += len as usize;
        }
    }
    out
}

/// Everything a client could make of the messages: raw bytes, and every 2/4/8-byte field and
/// integer array element read as a number (a binary `int4` of a character code is a leak too).
fn render(msgs: &[Msg]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&m.body);
        out.push(b'\n');
        if m.tag == b'D' {
            for f in fields(&m.body).into_iter().flatten() {
                out.extend(numbers(&f).into_bytes());
                out.push(b'\n');
            }
        }
    }
    out
}

fn numbers(f: &[u8]) -> String {
    let int = |b: &[u8]| -> Option<i64> {
        Some(match b.len() {
            2 => i16::from_be_bytes(b.try_into().ok()?) as i64,
            4 => i32::from_be_bytes(b.try_into().ok()?) as i64,
            8 => i64::from_be_bytes(b.try_into().ok()?),
            _ => return None,
        })
    };
    if let Some(n) = int(f) {
        return n.to_string();
    }
    // A one-dimensional array of integers: header 20 bytes, then (len, value) pairs.
    if f.len() >= 20 && f[..4] == 1i32.to_be_bytes() {
        let elem = u32::from_be_bytes(f[8..12].try_into().unwrap());
        if matches!(elem, 20 | 21 | 23) {
            let mut at = 20;
            let mut v = Vec::new();
            while at + 4 <= f.len() {
                let len = i32::from_be_bytes(f[at..at + 4].try_into().unwrap());
                at += 4;
                if len > 0 && at + len as usize <= f.len() {
                    if let Some(n) = int(&f[at..at + len as usize]) {
                        v.push(n.to_string());
                    }
                    at += len as usize;
                }
            }
            return v.join(",");
        }
    }
    String::new()
}

/// The forms of `s` an agent can trivially turn back into `s`.
fn candidates(s: &str) -> Vec<String> {
    let mut c = vec![s.to_lowercase(), s.to_lowercase().chars().rev().collect()];
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    if digits.len() >= 9 {
        let letters: String = digits
            .chars()
            .map(|d| (b'a' + d.to_digit(10).unwrap() as u8) as char)
            .collect();
        c.push(letters.chars().rev().collect());
        c.push(letters);
        c.push(digits.chars().rev().collect());
        c.push(digits);
    }
    let alnum: String = s
        .to_lowercase()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    if alnum.len() >= 9 {
        c.push(alnum);
    }
    c
}

/// What a decoder would make of the text: zero-width characters dropped, full-width forms
/// folded, lower case; plus the same with every non-alphanumeric character dropped.
fn normalized(text: &str) -> [String; 2] {
    let folded: String = text
        .chars()
        .filter(|c| !matches!(*c, '\u{200b}'..='\u{200d}' | '\u{feff}' | '\u{2060}'))
        .map(|c| match c {
            '\u{ff01}'..='\u{ff5e}' => char::from_u32(c as u32 - 0xfee0).unwrap_or(c),
            _ => c,
        })
        .collect::<String>()
        .to_lowercase();
    let alnum = folded.chars().filter(|c| c.is_alphanumeric()).collect();
    [folded, alnum]
}

/// Texts hidden in `text`: base64 and hex runs decoded, runs of numbers read as character
/// codes, JSON/bytea escapes undone.
fn decoded(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b64: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < b64.len() {
        let is = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_');
        if is(b64[i]) {
            let start = i;
            while i < b64.len() && is(b64[i]) {
                i += 1;
            }
            let run: String = b64[start..i].iter().collect();
            if run.len() >= 12 {
                for e in [
                    &base64::engine::general_purpose::STANDARD,
                    &base64::engine::general_purpose::STANDARD_NO_PAD,
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                ] {
                    if let Ok(d) = e.decode(run.trim_end_matches('=')) {
                        out.push(String::from_utf8_lossy(&d).into_owned());
                    }
                    if let Ok(d) = e.decode(&run) {
                        out.push(String::from_utf8_lossy(&d).into_owned());
                    }
                }
                let hex = run.trim_start_matches("x");
                if hex.len() >= 14
                    && let Some(d) = unhex(&hex[..hex.len() / 2 * 2])
                {
                    out.push(String::from_utf8_lossy(&d).into_owned());
                }
            }
        } else {
            i += 1;
        }
    }
    // Character codes: runs of at least 5 numbers.
    let nums: Vec<Option<u32>> = text
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse().ok())
        .collect();
    let codes: String = nums
        .iter()
        .map(|n| n.and_then(char::from_u32).unwrap_or('\u{1}'))
        .collect();
    out.push(codes);
    out.push(text.replace("\\\\", "\\").replace("\\\"", "\""));
    out
}

/// The sensitive values (by the form found) the agent can recover from `received`.
fn leaks(received: &[u8], secrets: &[String]) -> Vec<String> {
    let text = String::from_utf8_lossy(received).into_owned();
    let mut haystacks: Vec<String> = normalized(&text).to_vec();
    for d in decoded(&text) {
        haystacks.extend(normalized(&d));
    }
    // A SHA-256 of a low-entropy value is reversed by enumeration: seeing one is a leak.
    let lower = text.to_lowercase();
    let mut found = Vec::new();
    for s in secrets {
        if s.is_empty() {
            continue;
        }
        let digest = hex_lower(&sha2::Sha256::digest(s.as_bytes()));
        if lower.contains(&digest) {
            found.push(format!("sha256({s})"));
            continue;
        }
        'cand: for c in candidates(s) {
            let chars: Vec<char> = c.chars().collect();
            // Halves and longer pieces: a window of half the value (at least 7 characters).
            let w = (chars.len().div_ceil(2)).max(7).min(chars.len());
            for start in 0..=chars.len() - w {
                let piece: String = chars[start..start + w].iter().collect();
                if haystacks.iter().any(|h| h.contains(&piece)) {
                    found.push(format!("{s} (as {c:?}, piece {piece:?})"));
                    break 'cand;
                }
            }
        }
    }
    found
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every exfiltration the red team tried, and variants: one SQL statement each.
const EXFIL: &[&str] = &[
    "select reverse(card) from people",
    "select encode(convert_to(email,'UTF8'),'base64') from people",
    "select email::bytea from people",
    "select replace(email,'@',' at ') from people",
    "select substr(card,1,9) as a, substr(card,10) as b from people",
    "select translate(card,'0123456789','abcdefghij') from people",
    "select translate(ssn,'0123456789','０１２３４５６７８９') from people",
    "select regexp_replace(email,'(.)','\\1' || chr(8203),'g') from people",
    "select (select string_agg(ascii(x)::text, ',') from regexp_split_to_table(email,'') x) from people",
    "select array(select ascii(x) from regexp_split_to_table(card,'') x) from people",
    "select dob as d from people",
    "select row_to_json(p) from people p",
    "select p::text from people p",
    "select to_jsonb(p.*) from people p",
    "select json_agg(p) from people p",
    "select row(p.*) from people p",
    "select array_agg(ssn) from people",
    "select string_agg(iban, ';') from people",
    "select max(token) from people",
    "select upper(x.e) from (select email as e from people) x",
    "with t(v) as (select phone from people) select lower(v) from t",
    "select v from (select card from people union all select 'x') u(v) where v <> 'x'",
    "select lower(email) from people union select 'zzz'",
    "select y.v || '' from people p, lateral (select p.email as v) y",
    "select encode(convert_to(card,'UTF8'),'hex') from people",
    "select encode(email::bytea,'escape') from people",
    "select quote_literal(iban) from people",
    "select format('%s|%s', email, ssn) from people",
    "select concat_ws(',', card, phone) from people",
    "select jsonb_build_object('k', token) from people",
    "select regexp_replace(email, '(.)(.)', '\\2\\1', 'g') from people",
    "select liame from people_v",
    "select reverse(liame) from people_v",
    "select fetch_email(1)",
    "select query_to_xml('select email from people', true, false, '')",
    "select split_part(email,'@',1) || ' at ' || split_part(email,'@',2) from people",
    "select md5(ssn), encode(sha256(convert_to(ssn,'UTF8')),'hex') from people",
    "select case when id > 0 then card end from people",
    "select coalesce(null, phone) from people",
    "select (select email from people p2 where p2.id = p.id) from people p",
    "select repeat(card, 2) from people",
    "select lpad(ssn, 20, '*') from people",
    "select email::varchar(200) from people",
    "select email::name from people",
    "select (email = email)::text || email from people",
    "select c.email || '' from customers c",
    "select reverse(c.card) from customers c",
    "select translate(c.ssn, '0123456789-', 'abcdefghij ') from customers c",
    "select row_to_json(c) from customers c",
    "select c::text from customers c",
    "select array_to_string(regexp_split_to_array(iban, ''), ' ') from people",
    "select overlay(card placing '#' from 1 for 1) from people",
    "select unnest(array[email, card]) from people",
    "prepare p1 as select reverse(email) from people ;; execute p1",
    "begin; declare c1 cursor for select translate(card, '0123456789', 'abcdefghij') from people; fetch all from c1; commit",
    "begin; declare c2 binary cursor for select reverse(ssn) from people; fetch all from c2; commit",
    "update people set name = name where id = 1 returning reverse(iban)",
    "select x from people p, lateral regexp_split_to_table(p.email, '') x",
    "select a from (select reverse(phone) from people) s(a)",
    "with recursive r(i, ch) as (select 1, substr((select email from people where id = 1), 1, 1) union all select i + 1, substr((select email from people where id = 1), i + 1, 1) from r where i < 30) select string_agg(ch, '') from r",
    "select (p).email from people p",
];

#[test]
fn transformed_values_never_reach_the_agent_in_text_results() {
    let lab = lab("");
    assert!(EXFIL.len() >= 52);
    let mut leaked = Vec::new();
    let mut unanswered = Vec::new();
    for sql in EXFIL {
        // ` ;; ` separates queries sent one after the other in one session (PREPARE must be
        // a query of its own through sluice).
        let queries: Vec<&str> = sql.split(" ;; ").collect();
        let out = lab.psql(&queries);
        let found = leaks(out.as_bytes(), &lab.secrets);
        if !found.is_empty() {
            leaked.push(format!("{sql}: {found:?}\n{out}"));
        }
        // Not vacuous: the statement ran and its rows came back, masked.
        if out.contains("ERROR") {
            leaked.push(format!("{sql}: failed instead of answering masked:\n{out}"));
        } else if !(out.contains('[') || out.contains("\\x5b")) {
            // A placeholder, or in a bytea its hex form (`\x5b...` is `[...`).
            unanswered.push(format!("{sql}: {out}"));
        }
    }
    assert!(
        unanswered.is_empty(),
        "every query answers with masked rows: {unanswered:#?}"
    );
    assert!(
        leaked.is_empty(),
        "{} of {} exfiltration queries leaked:\n{}",
        leaked.len(),
        EXFIL.len(),
        leaked.join("\n")
    );
    // Non-revealing roots still answer, and plain reads keep their decoys.
    let out = lab.psql(&[
        "select count(email) from people",
        "select length(card), ssn is null, email = 'nobody@example.com' from people where id = 1",
    ]);
    assert!(out.starts_with("4\n19|f|f"), "{out}");
    let out = lab.psql(&["select card from customers where id = 3"]);
    assert!(
        out.contains("4111111111111112"),
        "the decoy was masked: {out}"
    );
}

/// The same statements through the extended protocol with every result in binary format,
/// read back byte by byte (numbers decoded too).
#[test]
fn binary_results_of_every_type_are_masked_or_refused() {
    let lab = lab("");
    let mut script = Vec::new();
    let extra = [
        "select ascii(substr(card, 1, 1)) from people",
        "select replace(replace(card, ' ', ''), '-', '')::int8 from people where id = 1",
        "select replace(replace(card, ' ', ''), '-', '')::numeric from people where id = 1",
        "select dob from people",
        "select p from people p",
        "select array[email] from people",
        "select to_json(email) from people",
        "select email::bytea from people",
        "select jsonb_agg(card) from people",
    ];
    for sql in EXFIL.iter().chain(extra.iter()) {
        script.push(json!([
            {"P": ["", sql]},
            {"B": ["", "", [], [1]]},
            {"D": ["P", ""]},
            {"E": ["", 0]},
            {"S": null}
        ]));
    }
    let msgs = lab.wire(Value::Array(script));
    lab.assert_no_leak("binary results", &render(&msgs));
    // Refusals name the column and how to read it masked.
    let refusals: Vec<String> = msgs
        .iter()
        .filter(|m| m.tag == b'E')
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .filter(|t| t.contains("cannot hold a masked value"))
        .collect();
    assert!(
        !refusals.is_empty(),
        "an int4 of a character code cannot be masked in binary"
    );
    // tokio-postgres decodes every masked value it gets (they stay valid for their types).
    let r = lab.tokio_pg(&[
        "select email, to_jsonb(p) as j from people p where id = 1",
        "select email::bytea as b from people where id = 2",
    ]);
    assert_eq!(r["results"][0]["ok"], true, "{r}");
    assert_eq!(r["results"][0]["rows"][0][0], "[EMAIL]", "{r}");
    assert_eq!(r["results"][1]["ok"], true, "{r}");
}

/// Protocol tricks: an Execute without any Describe, and a portal resumed after another
/// binary query, must each be masked with their own statement's plan.
#[test]
fn every_portal_is_masked_with_its_own_statements_plan() {
    let lab = lab("");
    let msgs = lab.wire(json!([
        // Execute without Describe, binary and text.
        [
            {"P": ["s1", "select reverse(card), translate(ssn,'0123456789','abcdefghij') from people"]},
            {"B": ["p1", "s1", [], [1]]},
            {"E": ["p1", 0]},
            {"S": null}
        ],
        [
            {"P": ["", "select email from people order by id"]},
            {"B": ["", "", [], [0]]},
            {"E": ["", 0]},
            {"S": null}
        ],
        // A portal over plain emails in text, one row, left open in a transaction.
        [{"Q": "begin"}],
        [
            {"P": ["s2", "select email, reverse(email) from people order by id"]},
            {"B": ["p2", "s2", [], [0]]},
            {"D": ["P", "p2"]},
            {"E": ["p2", 1]},
            {"S": null}
        ],
        // Another query with binary integer columns in the same positions.
        [
            {"P": ["s3", "select 1::int4, 2::int4"]},
            {"B": ["p3", "s3", [], [1]]},
            {"D": ["P", "p3"]},
            {"E": ["p3", 0]},
            {"S": null}
        ],
        // Resume the first portal: no Describe, after the other RowDescription.
        [{"E": ["p2", 0]}, {"S": null}],
        [{"Q": "commit"}],
        // A statement prepared, described, then re-parsed under the same name (refused by
        // the server): the old statement is what runs.
        [{"P": ["s4", "select reverse(iban) from people"]}, {"D": ["S", "s4"]}, {"S": null}],
        [{"P": ["s4", "select 1"]}, {"S": null}],
        [{"B": ["p4", "s4", [], [1]]}, {"E": ["p4", 0]}, {"S": null}]
    ]));
    lab.assert_no_leak("portals", &render(&msgs));
    // The agent saw results (masked), not only errors.
    assert!(
        msgs.iter()
            .any(|m| m.tag == b'D' && String::from_utf8_lossy(&m.body).contains("[EMAIL]")),
        "{msgs:?}"
    );
}

/// A failing extended batch ended by Flush, then simple queries before its Sync: the server
/// skips them unanswered, so answers that follow would be paired with (and masked by the plan
/// of) a statement that never ran. sluice ends the session instead, and no value derived from
/// a sensitive column reaches the agent.
#[test]
fn a_query_inside_an_unfinished_extended_batch_ends_the_session() {
    let lab = lab("");
    let (msgs, _) = lab.wire_maybe_closed(json!([
        [{"P": ["", "select 1/0"]}, {"B": ["", "", [], []]}, {"E": ["", 0]}, {"H": null},
         {"Q": "select 'harmless'"}, {"S": null},
         {"Q": "select reverse(email), reverse(card) from people"}]
    ]));
    lab.assert_no_leak("a query inside an extended batch", &render(&msgs));
    assert!(
        msgs.iter()
            .any(|m| m.tag == b'E' && String::from_utf8_lossy(&m.body).contains("before its Sync")),
        "{msgs:?}"
    );
    assert!(!msgs.iter().any(|m| m.tag == b'D'), "{msgs:?}");
}

#[test]
fn settings_and_notifications_carry_no_sensitive_value() {
    let lab = lab("");
    let msgs = lab.wire(json!([
        [{"Q": "listen ch"}],
        [{"Q": "select set_config('application_name', email, false) from people where id = 1"}],
        [{"Q": "select set_config('application_name', reverse(card), false) from people where id = 2"}],
        [{"Q": "select pg_notify('ch', email) from people where id = 1"}],
        [{"Q": "select pg_notify('ch', reverse(ssn)) from people where id = 2"}],
        [{"Q": "select current_setting('application_name')"}],
        [{"Q": "show application_name"}],
        [{"Q": "select setting from pg_settings where name = 'application_name'"}],
        [{"Q": "select 1"}]
    ]));
    lab.assert_no_leak("settings and notifications", &render(&msgs));
    assert!(
        msgs.iter().any(|m| m.tag == b'A'),
        "notifications were delivered"
    );
    assert!(
        msgs.iter()
            .any(|m| m.tag == b'S' && m.body.starts_with(b"application_name\0")),
        "the setting change was reported"
    );
}

#[test]
fn errors_and_notices_that_quote_a_value_are_masked() {
    let lab = lab("");
    let out = lab.psql(&[
        "select email::int from people where id = 1",
        "select reverse(email)::int from people where id = 2",
        "select reverse(card)::numeric from people where id = 1",
        "select (select translate(ssn, '0123456789', 'abcdefghij') from people where id = 1)::date",
        "select shout(email) from people",
        "select shout(reverse(iban)) from people",
        "select to_date(reverse(phone), 'YYYY') from people where id = 1",
        "select jsonb_path_query(to_jsonb(email), '$.x', '{}', false)::int from people where id = 1",
        "insert into people (id, email) select 100 + id, reverse(email) from people; insert into people (id, email) select 100 + id, reverse(email) from people",
    ]);
    lab.assert_no_leak("errors and notices", out.as_bytes());
    assert!(out.contains("invalid input syntax"), "{out}");
}

#[test]
fn copy_out_in_every_format_masks_what_is_derived() {
    let lab = lab("");
    let out = lab.psql(&[
        "copy (select reverse(card), email, translate(ssn,'0123456789','abcdefghij') from people) to stdout",
        "copy (select reverse(card), email from people) to stdout with (format csv, header)",
        "copy (select row_to_json(p) from people p) to stdout",
        "copy people to stdout",
        "copy people (email, token) to stdout with (format csv, delimiter '|')",
        "copy people_v to stdout",
        "copy (select * from people_v) to stdout",
    ]);
    lab.assert_no_leak("copy text/csv", out.as_bytes());
    // Binary COPY: the raw bytes on the wire.
    let msgs = lab.wire(json!([
        [{"Q": "copy (select reverse(card), email::bytea, p::text from people p) to stdout with (format binary)"}],
        [{"Q": "copy people to stdout with (format binary)"}]
    ]));
    lab.assert_no_leak("copy binary", &render(&msgs));
    // Plain, non-sensitive columns are untouched.
    let out = lab.psql(&["copy (select name from people order by id) to stdout"]);
    assert!(out.starts_with("Ada\nAlan\nGrace\nEdsger"), "{out}");
}

/// Values derived from a sensitive column and written elsewhere stay sensitive there.
#[test]
fn sensitive_values_written_into_other_columns_stay_masked() {
    let lab = lab("");
    let out = lab.psql(&[
        "update people set nick = reverse(email) where id > 0",
        "select nick from people",
        "create table stash as select id, translate(card, '0123456789', 'abcdefghij') as t from people",
        "select t from stash",
        "select * from stash",
        "insert into decoys (id, kind, val) select 100 + id, 'copied', reverse(ssn) from people",
        "select val from decoys where kind = 'copied'",
        "select id, reverse(reverse(nick)) from people",
        "merge into decoys d using people p on d.id = p.id + 200 \
         when not matched then insert (id, kind, val) values (p.id + 200, 'merged', reverse(p.card))",
        "select val from decoys where kind = 'merged'",
        "select v from (select val as v from decoys where kind = 'merged') x",
    ]);
    lab.assert_no_leak("written values", out.as_bytes());
}

/// Rules name columns sampling cannot recognise; derived values of them are masked too.
#[test]
fn rules_by_table_column_and_type_mask_their_derivations() {
    let lab = lab("masking:
  columns:
    - { table: people, column: nick, as: email }
    - { column: name, full: true }
");
    let secrets: Vec<String> = lab
        .pg
        .admin_sql("select nick from people union all select name from people")
        .lines()
        .map(str::to_string)
        .collect();
    let out = lab.psql(&[
        "select nick, reverse(nick), upper(name) from people",
        "select name as n from people",
        "select row_to_json(p) from people p",
    ]);
    let found = leaks(out.as_bytes(), &secrets);
    assert!(found.is_empty(), "{found:?} in {out}");
    assert!(
        out.contains("[EMAIL]") && out.contains("[REDACTED]"),
        "{out}"
    );
}

/// With passthrough credentials sluice has no login of its own (no catalog, no sampling): the
/// policy's rules, matched by the names statements use, still mask derived values.
#[test]
fn passthrough_sessions_mask_what_rules_name() {
    let lab = lab_with(
        "{ mode: passthrough }",
        "masking:
  columns:
    - { table: people, column: email, as: email }
    - { table: people, column: card, as: card }
",
    );
    let out = psql_in(
        &lab.cg.dir,
        &lab.pg.conninfo(PG_SCRAM.0, PG_SCRAM.1),
        &[
            "select email, reverse(email), translate(card, '0123456789', 'abcdefghij') from people",
            "select row_to_json(p) from people p",
            "select x.e || '' from (select email as e from people) x",
        ],
    );
    assert!(out.status.success(), "{}", out.stderr);
    let text = format!("{}{}", out.stdout, out.stderr);
    let secrets: Vec<String> = lab
        .pg
        .admin_sql("select email from people union all select card from people")
        .lines()
        .map(str::to_string)
        .collect();
    let found = leaks(text.as_bytes(), &secrets);
    assert!(found.is_empty(), "{found:?} in {text}");
    assert!(
        text.contains("[EMAIL]") && text.contains("[CARD]"),
        "{text}"
    );
}

/// Transformations applied to each sensitive column: the recall corpus.
const CORPUS: &[&str] = &[
    "{c}",
    "reverse({c})",
    "upper({c})",
    "lower({c})",
    "{c}::bytea",
    "encode(convert_to({c},'UTF8'),'base64')",
    "encode(convert_to({c},'UTF8'),'hex')",
    "encode({c}::bytea,'escape')",
    "replace({c},'@',' at ')",
    "replace({c},'-','')",
    "replace({c},' ','')",
    "translate({c},'0123456789','abcdefghij')",
    "translate({c},'0123456789','０１２３４５６７８９')",
    "regexp_replace({c},'(.)','\\1' || chr(8203),'g')",
    "array_to_string(regexp_split_to_array({c},''),' ')",
    "(select string_agg(ascii(x)::text, ',') from regexp_split_to_table({c},'') x)",
    "substr({c},1,length({c})/2) || '|' || substr({c},length({c})/2+1)",
    "left({c},9)",
    "right({c},9)",
    "substring({c} from 3)",
    "overlay({c} placing 'X' from 1 for 1)",
    "lpad({c},60,'*')",
    "rpad({c},60,'*')",
    "concat('x',{c},'y')",
    "'<' || {c} || '>'",
    "format('%s', {c})",
    "quote_literal({c})",
    "quote_ident({c})",
    "to_json({c})::text",
    "json_build_object('v',{c})::text",
    "jsonb_build_array({c})",
    "array[{c}]",
    "row({c})::text",
    "(select {c})",
    "coalesce(null, {c})",
    "nullif({c}, 'x')",
    "greatest({c}, '')",
    "case when true then {c} end",
    "encode(sha256(convert_to({c},'UTF8')),'hex')",
    "initcap({c})",
    "btrim(' ' || {c} || ' ')",
    "split_part({c}, '@', 1) || '#' || split_part({c}, '@', 2)",
    "repeat({c}, 2)",
    "convert_from(convert_to({c},'UTF8'),'UTF8')",
    "{c} || ''",
    "encode(decode(encode(convert_to({c},'UTF8'),'base64'),'base64'),'escape')",
    "(array[{c}])[1]",
    "jsonb_path_query_first(to_jsonb({c}), '$')",
    "regexp_replace({c}, '(.)(.)', '\\2\\1', 'g')",
    "{c}::varchar(100)",
    "ltrim({c}, 'a')",
    "chr(ascii({c})) || substr({c},2)",
    "(select x from (values ({c})) v(x))",
    "regexp_replace({c}, '([0-9])', '\\1 ', 'g')",
    "string_to_array({c}, '')::text",
    "(select {c} from people p2 where p2.id = people.id)",
    "translate(upper({c}), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'zyxwvutsrqponmlkjihgfedcba')",
];

const CORPUS_COLUMNS: &[&str] = &["email", "card", "ssn", "phone", "iban", "token"];

/// Recall on the transformation corpus (text and binary results) and the false-positive
/// rate on decoys; printed for the closing report, asserted at 100% and 0.
#[test]
fn transformation_corpus_recall_and_decoy_false_positives() {
    let lab = lab("");
    assert!(CORPUS.len() >= 50);
    let mut results: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut leaked = Vec::new();
    for col in CORPUS_COLUMNS {
        let secrets: Vec<String> = lab
            .pg
            .admin_sql(&format!("select {col} from people order by id"))
            .lines()
            .map(str::to_string)
            .collect();
        let queries: Vec<String> = CORPUS
            .iter()
            .map(|t| format!("select {} from people order by id", t.replace("{c}", col)))
            .collect();
        for (format, label) in [(0, "text"), (1, "binary")] {
            let script: Vec<Value> = queries
                .iter()
                .map(|q| {
                    json!([{"P": ["", q]}, {"B": ["", "", [], [format]]}, {"D": ["P", ""]},
                           {"E": ["", 0]}, {"S": null}])
                })
                .collect();
            let msgs = lab.wire(Value::Array(script));
            // Split the answers per query at each ReadyForQuery.
            let mut per_query: Vec<Vec<Msg>> = vec![Vec::new()];
            for m in msgs {
                let z = m.tag == b'Z';
                per_query.last_mut().unwrap().push(m);
                if z {
                    per_query.push(Vec::new());
                }
            }
            for (q, answer) in queries.iter().zip(&per_query) {
                // Every transformation is valid SQL: the answer is rows, or sluice's refusal
                // of a binary type that cannot hold a placeholder.
                let rows = answer.iter().any(|m| m.tag == b'D');
                let refused = answer.iter().any(|m| {
                    m.tag == b'E'
                        && String::from_utf8_lossy(&m.body).contains("cannot hold a masked value")
                });
                assert!(rows || refused, "[{label}] {q} did not answer: {answer:?}");
                let e = results.entry(label).or_default();
                e.1 += 1;
                let found = leaks(&render(answer), &secrets);
                if found.is_empty() {
                    e.0 += 1;
                } else {
                    leaked.push(format!("[{label}] {q}: {found:?}"));
                }
            }
        }
    }
    // Decoys: read plainly and through a few transformations, nothing may change.
    let decoys: Vec<String> = lab
        .pg
        .admin_sql("select val from decoys order by id")
        .lines()
        .map(str::to_string)
        .collect();
    let out = lab.psql(&["select val from decoys order by id"]);
    let got: Vec<&str> = out.lines().take(decoys.len()).collect();
    let changed: Vec<(&String, &&str)> = decoys.iter().zip(&got).filter(|(a, b)| a != b).collect();
    let out = lab.psql(&["select upper(val) from decoys order by id"]);
    let upper_changed = decoys
        .iter()
        .zip(out.lines())
        .filter(|(a, b)| a.to_uppercase() != *b)
        .count();
    for (label, (masked, total)) in &results {
        println!(
            "RECALL {label}: {masked}/{total} = {:.1}% ({} transformations x {} columns)",
            100.0 * *masked as f64 / *total as f64,
            CORPUS.len(),
            CORPUS_COLUMNS.len()
        );
    }
    println!(
        "DECOYS: {} of {} changed when read plainly, {} of {} through upper()",
        changed.len(),
        decoys.len(),
        upper_changed,
        decoys.len()
    );
    assert!(
        leaked.is_empty(),
        "{} leaks:\n{}",
        leaked.len(),
        leaked.join("\n")
    );
    assert!(changed.is_empty(), "decoys masked: {changed:?}");
    assert_eq!(upper_changed, 0, "{out}");
}

/// Detectors that need context: SSNs with spaces or dots next to a label, passwords in URLs
/// and connection strings, GitLab/Google/npm tokens, in free text a column sampling did not
/// flag.
#[test]
fn context_detectors_find_labelled_ssns_url_passwords_and_tokens() {
    let lab = lab("");
    let notes = [
        ("ssn=123 45 6789 on file", "123 45 6789"),
        ("SSN: 219.09.9999", "219.09.9999"),
        ("social security no. 078 05 1120", "078 05 1120"),
        (
            "dsn postgres://app:S3cr3t-Pa55@db.internal:5432/app",
            "S3cr3t-Pa55",
        ),
        (
            "host=db user=app password=hunter2-long sslmode=require",
            "hunter2-long",
        ),
        (
            "token glpat-abcdefghijklmnopqrst leaked",
            "glpat-abcdefghijklmnopqrst",
        ),
        (
            "key AIzaSyA1234567890abcdefghijklmnopqrstuv here",
            "AIzaSyA1234567890abcdefghijklmnopqrstuv",
        ),
        (
            "npm_abcdefghijklmnopqrstuvwxyz0123456789",
            "npm_abcdefghijklmnopqrstuvwxyz0123456789",
        ),
    ];
    lab.pg
        .admin_sql("create table notes (id serial, body text)");
    lab.pg.admin_sql("grant all on notes to app");
    for (n, _) in notes {
        lab.pg
            .admin_sql(&format!("insert into notes (body) values ('{n}')"));
    }
    // Decoys in the same column.
    for d in [
        "call 321 54 9876 tomorrow",
        "https://example.org:8443/path",
        "postgres://db.internal:5432/app",
        "order 978-0-306-40615-7",
    ] {
        lab.pg
            .admin_sql(&format!("insert into notes (body) values ('{d}')"));
    }
    let out = lab.psql(&["select body from notes order by id"]);
    for (_, secret) in notes {
        assert!(!out.contains(secret), "{secret} leaked: {out}");
    }
    for d in [
        "call 321 54 9876 tomorrow",
        "https://example.org:8443/path",
        "postgres://db.internal:5432/app",
        "order 978-0-306-40615-7",
    ] {
        assert!(out.contains(d), "decoy {d} was masked: {out}");
    }
    assert!(
        out.contains("postgres://app:[PASSWORD]@db.internal"),
        "{out}"
    );
}
