//! `sluice audit replay --format psql` must print what psql printed. Real psql 15 runs a list of
//! statements against a real PostgreSQL 15; the same statements go through a minimal protocol
//! client in another session, whose answers are folded into [`ResultSet`]s by the gateway's own
//! capture and rendered. Both outputs are compared statement by statement, byte for byte.

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream,
    path::Path,
};

use sluice::{
    config::CaptureLimits,
    proto::postgres::{capture::Capture, codec},
    services::audit::{
        psql::{render_stderr, render_stdout},
        record::ResultSet,
    },
};
use sluice_tests::{PgServer, TestNet, pg_startup_packet, require_root};

/// Each statement runs alone (one `-c` each, all in one psql session). Temporary tables keep
/// the two sessions apart.
const STATEMENTS: &[&str] = &[
    // Numeric types are right-aligned, everything else left; NULL is empty.
    "select 1 as a, 'hello world'::text as bb, null::int as c, 1.5::numeric, 3::int8 * 1000000000 as big, \
     2::int2 as small, 42::oid as o, '12.50'::money as m, '5'::xid8 as x8, '7'::cid as c2",
    "select 1.0::float4 / 3 as f4, 'NaN'::float8 as nan, 1e100::float8 as huge, -0.0::float8 as zero, \
     array[1, 2, 3] as arr, '(1,2)'::point as pt, true as yes, false as no",
    "select n, n * 1.5 as half, repeat('x', n) as xs from generate_series(1, 12) n",
    "select ' lead' as a, 'trail ' as b, '' as empty, null::text as null, 'x' as \"Mixed Case\"",
    "select null::text as a, null::int as b union all select 'x', 1",
    // Values and a header spanning several lines.
    "select E'line1\\nline2\\n' as t, 7 as \"two\nlines\", E'\\nlast' as l, E'a\\nb\\nc' as abc",
    "select E'1\\n22\\n333' as l, 12345 as \"a\nbb\ncccccc\", E'x\\nyy' as last",
    // Display width: wide CJK, halfwidth kana, combining accents, emoji, control characters.
    "select '日本語テキスト' as jp, 'ｶﾀｶﾅ' as half, '한국어' as ko, 'naïve café' as latin, \
     E'e\\u0301te\\u0301' as combining, '😀 ok' as emoji",
    "select '表' as \"見出し\", 'abc' as \"ab\"",
    "select E'a\\tb\\tc' as tabs, E'tab\\there' as t2, E'x\\ry' as cr, E'bell\\x07' as bel, E'\\u0085' as c1",
    // No rows; no columns.
    "select oid, relname from pg_class where false",
    "select",
    // Command tags, with and without RETURNING rows.
    "create temp table t (id int primary key, name text, price numeric(10,2), ok bool, at timestamptz, doc jsonb)",
    "insert into t values (1, 'apple', 1.5, true, '2024-05-01 12:00:00+00', '{\"a\": [1, 2]}'), \
     (2, 'pear', null, false, null, 'null')",
    "insert into t values (3, 'fig', 10, null, null, '{\"k\": \"v\"}') returning id, name",
    "update t set price = price * 2 where price is not null",
    "update t set name = upper(name) where id > 1 returning *",
    "select * from t order by id",
    "select '{\"a\": {\"b\": [1, 2, 3]}}'::json as j, jsonb_pretty('{\"a\": {\"b\": [1, 2]}, \"c\": null}') as pretty",
    "select '2024-05-01 12:00:00+00'::timestamptz as ts, '2024-05-01'::date as d, '1 day 02:00'::interval as iv",
    "delete from t where id = 3 returning *",
    "delete from t where false",
    "begin",
    "set local work_mem = '8MB'",
    "show work_mem",
    "commit",
    "select 1 into temp t2",
    "create temp table t3 as select 1 as x",
    "table t3",
    // Notices and warnings go to stderr, the tag to stdout.
    "do $$begin raise notice 'hello %', 42; raise warning 'careful' using hint = 'h'; end$$",
    "drop table if exists nothere",
    "commit",
    // Errors without a cursor position (psql would add `LINE 1:` the record cannot rebuild).
    "select 1/0",
    "insert into t values (1, 'duplicate')",
    "set work_mem = '1 parsec'",
    // An empty statement prints nothing.
    ";",
];

/// Printed between statements, so both outputs can be cut into per-statement pieces.
const MARK: &str = "--8<-- sluice audit_psql --8<--";

#[test]
fn replayed_results_match_psql_byte_for_byte() {
    require_root();
    let net = TestNet::new();
    let pg = PgServer::start(&net);

    // psql as an agent would run it (no ~/.psqlrc, default output settings).
    let mut args = vec!["-X", "-U", "postgres", "-d", "postgres"];
    let echo = format!("\\echo {MARK}");
    let warn = format!("\\warn {MARK}");
    for sql in STATEMENTS {
        args.extend(["-c", sql, "-c", &echo, "-c", &warn]);
    }
    let out = pg.admin_cmd("psql", &args);
    let stdout = String::from_utf8(out.stdout).expect("psql stdout is UTF-8");
    let stderr = String::from_utf8(out.stderr).expect("psql stderr is UTF-8");
    let mark = format!("{MARK}\n");
    let psql_out: Vec<&str> = stdout.split(&mark).collect();
    let psql_err: Vec<&str> = stderr.split(&mark).collect();
    assert_eq!(
        psql_out.len(),
        STATEMENTS.len() + 1,
        "psql stdout:\n{stdout}"
    );
    assert_eq!(
        psql_err.len(),
        STATEMENTS.len() + 1,
        "psql stderr:\n{stderr}"
    );

    let dir = pg.admin_sql("show unix_socket_directories");
    let mut client = RawClient::connect(&Path::new(&dir).join(".s.PGSQL.5432"));
    let mut mismatches = Vec::new();
    for (i, sql) in STATEMENTS.iter().enumerate() {
        let sets = client.query(sql);
        let (rendered_out, rendered_err) = match sets.as_slice() {
            [] => (String::new(), String::new()),
            [set] => (render_stdout(set), render_stderr(set)),
            _ => panic!("{sql}: one statement, {} results", sets.len()),
        };
        if rendered_out != psql_out[i] {
            mismatches.push(format!(
                "stdout of `{sql}`:\n--- psql\n{}--- replay\n{rendered_out}",
                psql_out[i]
            ));
        }
        if rendered_err != psql_err[i] {
            mismatches.push(format!(
                "stderr of `{sql}`:\n--- psql\n{}--- replay\n{rendered_err}",
                psql_err[i]
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    // The statements did exercise what they are here for.
    assert!(stdout.contains("INSERT 0 1\n") && stdout.contains("--\n(1 row)\n"));
    assert!(stderr.contains("NOTICE:  hello 42\n") && stderr.contains("DETAIL:  Key (id)=(1)"));
}

/// The smallest simple-query client over the server's Unix socket (trust authentication as
/// `postgres`): it keeps what the gateway's audit records, the exact CommandComplete tags
/// included (tokio-postgres only reports row counts).
struct RawClient {
    sock: UnixStream,
}

impl RawClient {
    fn connect(path: &Path) -> RawClient {
        let mut sock = UnixStream::connect(path).expect("connect to PostgreSQL's socket");
        sock.write_all(&pg_startup_packet("postgres", "postgres"))
            .unwrap();
        let mut client = RawClient { sock };
        loop {
            let (tag, body) = client.read();
            match tag {
                b'R' => assert_eq!(body, [0, 0, 0, 0], "trust authentication expected"),
                b'E' => panic!("login failed: {:?}", codec::notice_fields(&body)),
                b'Z' => return client,
                _ => {}
            }
        }
    }

    fn read(&mut self) -> (u8, Vec<u8>) {
        let mut header = [0u8; 5];
        self.sock.read_exact(&mut header).unwrap();
        let len = u32::from_be_bytes(header[1..].try_into().unwrap()) as usize;
        let mut body = vec![0; len - 4];
        self.sock.read_exact(&mut body).unwrap();
        (header[0], body)
    }

    /// Runs one simple Query; its answer folded into result sets by the gateway's capture.
    fn query(&mut self, sql: &str) -> Vec<ResultSet> {
        let mut body = sql.as_bytes().to_vec();
        body.push(0);
        self.sock
            .write_all(&codec::Message::new(b'Q', &body).raw)
            .unwrap();
        let mut capture = Capture::new(CaptureLimits {
            rows: usize::MAX,
            bytes: usize::MAX,
            terminal_bytes: 0,
        });
        loop {
            let (tag, body) = self.read();
            if tag == b'Z' {
                return capture.take();
            }
            capture.observe(&codec::Message::new(tag, &body));
        }
    }
}
