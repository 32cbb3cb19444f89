use super::*;

fn parse(name: &str, sql: &str) -> Message {
    let mut b = Vec::new();
    b.extend_from_slice(name.as_bytes());
    b.push(0);
    b.extend_from_slice(sql.as_bytes());
    b.extend_from_slice(&[0, 0, 0]);
    Message::new(b'P', &b)
}

fn bind(portal: &str, stmt: &str, formats: &[i16]) -> Message {
    let mut b = Vec::new();
    b.extend_from_slice(portal.as_bytes());
    b.push(0);
    b.extend_from_slice(stmt.as_bytes());
    b.push(0);
    b.extend_from_slice(&[0, 0, 0, 0]);
    b.extend_from_slice(&(formats.len() as i16).to_be_bytes());
    for f in formats {
        b.extend_from_slice(&f.to_be_bytes());
    }
    Message::new(b'B', &b)
}

fn execute(portal: &str) -> Message {
    let mut b = portal.as_bytes().to_vec();
    b.extend_from_slice(&[0, 0, 0, 0, 0]);
    Message::new(b'E', &b)
}

fn row_desc(names: &[&str]) -> Message {
    let mut b = (names.len() as i16).to_be_bytes().to_vec();
    for n in names {
        b.extend_from_slice(n.as_bytes());
        b.push(0);
        b.extend_from_slice(&[0; 4]); // table oid
        b.extend_from_slice(&[0; 2]); // attnum
        b.extend_from_slice(&25u32.to_be_bytes());
        b.extend_from_slice(&[0xff, 0xff]);
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        b.extend_from_slice(&[0, 0]);
    }
    Message::new(b'T', &b)
}

fn m(tag: u8) -> Message {
    Message::new(tag, b"")
}

#[test]
fn an_execute_without_describe_gets_sluices_own_describe_and_its_own_plan() {
    let t = PlanTracker::default();
    assert!(
        t.on_forward(&parse("s1", "select reverse(card) from customers"))
            .is_none()
    );
    assert!(t.on_forward(&bind("p1", "s1", &[1])).is_none());
    let injected = t
        .on_forward(&execute("p1"))
        .expect("a Describe of p1 is sent first");
    assert_eq!(injected.tag, b'D');
    t.on_forward(&m(b'S'));
    assert!(matches!(t.on_backend(&m(b'1')), Event::Other));
    assert!(matches!(t.on_backend(&m(b'2')), Event::Other));
    // The injected Describe's answer is kept from the agent but recorded for the portal.
    assert!(matches!(
        t.on_backend(&row_desc(&["reverse"])),
        Event::Swallow
    ));
    let Event::PortalStart { portal: Some(p) } = t.on_backend(&m(b'D')) else {
        panic!("rows of p1")
    };
    assert_eq!(&*p.statement.sql, "select reverse(card) from customers");
    assert_eq!(p.result_columns().unwrap()[0].name, "reverse");
    assert!(matches!(t.on_backend(&m(b'C')), Event::Complete { .. }));
    assert!(matches!(t.on_backend(&m(b'Z')), Event::Ready));
}

#[test]
fn a_resumed_portal_keeps_its_own_statement_after_another_query() {
    let t = PlanTracker::default();
    for msg in [parse("a", "select card from customers"), m(b'S')] {
        t.on_forward(&msg);
    }
    let d = {
        let mut b = vec![b'S'];
        b.extend_from_slice(b"a\0");
        Message::new(b'D', &b)
    };
    t.on_forward(&d);
    t.on_forward(&m(b'S'));
    for msg in [m(b'1'), m(b'Z')] {
        t.on_backend(&msg);
    }
    t.on_backend(&Message::new(b't', b""));
    t.on_backend(&row_desc(&["card"]));
    t.on_backend(&m(b'Z'));
    // Bind a portal, run one row (suspended), run another query, resume the portal.
    assert!(
        t.on_forward(&bind("pa", "a", &[1])).is_none(),
        "statement was described"
    );
    t.on_forward(&execute("pa"));
    t.on_forward(&m(b'S'));
    t.on_backend(&m(b'2'));
    t.on_backend(&m(b'D'));
    t.on_backend(&m(b's'));
    t.on_backend(&m(b'Z'));
    t.on_forward(&Message::new(b'Q', b"select 1\0"));
    assert!(matches!(
        t.on_backend(&row_desc(&["?column?"])),
        Event::ResultSet { .. }
    ));
    assert!(matches!(t.on_backend(&m(b'D')), Event::Rows));
    t.on_backend(&m(b'C'));
    t.on_backend(&m(b'Z'));
    t.on_forward(&execute("pa"));
    t.on_forward(&m(b'S'));
    let Event::PortalStart { portal: Some(p) } = t.on_backend(&m(b'D')) else {
        panic!()
    };
    let cols = p.result_columns().unwrap();
    assert_eq!((cols[0].name.as_str(), cols[0].format), ("card", 1));
}

#[test]
fn an_error_skips_to_sync_and_a_refused_parse_replaces_nothing() {
    let t = PlanTracker::default();
    t.on_forward(&parse("s", "select email from customers"));
    t.on_forward(&m(b'S'));
    t.on_backend(&m(b'1'));
    t.on_backend(&m(b'Z'));
    // Parse `s` again (the server refuses: it exists), then bind and execute `s`.
    t.on_forward(&parse("s", "select 1"));
    t.on_forward(&bind("", "s", &[]));
    t.on_forward(&execute(""));
    t.on_forward(&m(b'S'));
    t.on_backend(&m(b'E'));
    t.on_backend(&m(b'Z'));
    t.on_forward(&bind("", "s", &[]));
    t.on_forward(&execute(""));
    t.on_forward(&m(b'S'));
    t.on_backend(&m(b'2'));
    t.on_backend(&m(b'T'));
    let Event::PortalStart { portal: Some(p) } = t.on_backend(&m(b'D')) else {
        panic!()
    };
    assert_eq!(&*p.statement.sql, "select email from customers");
}

fn query(sql: &str) -> Message {
    let mut b = sql.as_bytes().to_vec();
    b.push(0);
    Message::new(b'Q', &b)
}

/// A lone SQL `EXECUTE` is planned as the statement it runs; anything else around it, or
/// a name the session cannot pin to one statement, stays unattributed (masked whole).
#[test]
fn a_lone_sql_execute_is_planned_as_its_prepared_statement() {
    let t = PlanTracker::default().with_prepared(Box::new(|name| {
        (name == "q").then(|| Arc::from("select count(*) from customers where id = $1"))
    }));
    let result_of = |sql: &str| {
        t.on_forward(&query(sql));
        let e = t.on_backend(&row_desc(&["x"]));
        t.on_backend(&m(b'Z'));
        match e {
            Event::ResultSet { sql, index } => (sql.to_string(), index),
            other => panic!("{other:?}"),
        }
    };
    let prepared = "select count(*) from customers where id = $1".to_string();
    assert_eq!(result_of("EXECUTE q(2)"), (prepared.clone(), 0));
    assert_eq!(result_of("  execute Q (2);"), (prepared, 0));
    assert_eq!(result_of("execute \"Q\"(2)").0, "execute \"Q\"(2)");
    assert_eq!(result_of("execute other").0, "execute other");
    assert_eq!(
        result_of("execute q(2); select 1").0,
        "execute q(2); select 1"
    );
}

/// sluice's own queries pass masking as they are, and the agent's answers around them keep
/// their own plans.
#[test]
fn sluices_own_queries_are_internal_and_do_not_shift_the_agents_answers() {
    let t = PlanTracker::default();
    let mut own = Vec::new();
    own.extend_from_slice(&query("BEGIN READ WRITE").raw);
    t.on_forward_internal(&own);
    t.on_forward(&query("select email from customers"));
    assert!(matches!(t.on_backend(&m(b'C')), Event::Internal));
    assert!(matches!(t.on_backend(&m(b'Z')), Event::Internal));
    assert!(matches!(
        t.on_backend(&row_desc(&["email"])),
        Event::ResultSet { index: 0, .. }
    ));
}

/// After an error in the extended protocol the server ignores every message up to Sync,
/// simple queries included. A hostile agent pipelines a failing batch ended by Flush, then a
/// harmless query, a Sync, and a query reading a sensitive column: the harmless query's plan
/// must not be the one the sensitive rows are masked with (its columns would pass as clean).
#[test]
fn queries_the_server_skips_after_an_extended_error_are_not_planned() {
    let t = PlanTracker::default();
    t.on_forward(&parse("", "select 1/0"));
    t.on_forward(&bind("", "", &[]));
    t.on_forward(&execute(""));
    t.on_forward(&m(b'H'));
    t.on_forward(&query("select 'harmless'"));
    // The server's error for the Parse comes before the agent's next messages go out.
    assert!(matches!(t.on_backend(&m(b'E')), Event::Other));
    t.on_forward(&query("select 'also skipped'"));
    t.on_forward(&m(b'S'));
    t.on_forward(&query("select reverse(email) from people"));
    assert!(matches!(t.on_backend(&m(b'Z')), Event::Ready));
    match t.on_backend(&row_desc(&["reverse"])) {
        Event::ResultSet { sql, index } => {
            assert_eq!((&*sql, index), ("select reverse(email) from people", 0));
        }
        other => panic!("{other:?}"),
    }
}
