use super::*;

fn one(sql: &str) -> StatementLineage {
    let l = analyze(sql, &[]);
    let mut s = l.statements.expect("parses");
    assert_eq!(s.len(), 1, "{sql}");
    s.remove(0)
}

fn col(rel: &str, c: &str) -> Source {
    Source::Column {
        rel: RelName {
            schema: None,
            name: rel.into(),
        },
        column: c.into(),
    }
}

#[test]
fn relations_and_columns_are_named_as_postgresql_folds_them() {
    let s = one(r#"select "Email", Card from Public.Customers c join orders o on o.cid = c.id"#);
    let names: Vec<String> = s.relations.iter().map(|r| r.to_string()).collect();
    assert_eq!(names, ["orders", "public.customers"]);
    let Output::Rows(slots) = &s.output else {
        panic!()
    };
    let Slot::One(d) = &slots[1] else { panic!() };
    assert!(d.direct);
    // Unqualified: a candidate column of both relations.
    assert!(d.sources.contains(&Source::Column {
        rel: RelName {
            schema: Some("public".into()),
            name: "customers".into()
        },
        column: "card".into()
    }));
    assert!(d.sources.contains(&col("orders", "card")));
}

#[test]
fn stars_and_set_operations_keep_positions_where_they_can() {
    let s = one("select id, * , reverse(email) from customers");
    let Output::Rows(slots) = &s.output else {
        panic!()
    };
    assert!(matches!(slots[0], Slot::One(_)));
    assert!(matches!(slots[1], Slot::Star(_)));
    let s = one("select a from t union all select b from u");
    let Output::Rows(slots) = &s.output else {
        panic!()
    };
    let Slot::One(d) = &slots[0] else { panic!() };
    assert!(d.sources.contains(&col("t", "a")) && d.sources.contains(&col("u", "b")));
}

#[test]
fn ctes_subqueries_and_lateral_carry_lineage() {
    let s = one("with x as (select email as e from customers) \
         select upper(y.v) from x, lateral (select x.e as v) y");
    let Output::Rows(slots) = &s.output else {
        panic!()
    };
    let Slot::One(d) = &slots[0] else { panic!() };
    assert!(d.sources.contains(&col("customers", "email")), "{d:?}");
    assert!(!d.direct);
}

#[test]
fn dml_returning_and_writes() {
    let s = one("update customers set notes = reverse(email) where id = 1 returning notes");
    assert_eq!(s.writes.len(), 1);
    assert!(
        s.writes[0]
            .from
            .sources
            .contains(&col("customers", "email"))
    );
    assert!(matches!(s.output, Output::Rows(_)));
    let s = one("insert into audit (v) select card from customers");
    assert_eq!(s.writes[0].column.as_deref(), Some("v"));
    assert!(s.writes[0].from.sources.contains(&col("customers", "card")));
    assert!(matches!(s.output, Output::NoData));
}

#[test]
fn copy_reads_its_format_and_its_source() {
    let s = one("copy customers (email, card) to stdout with (format csv, delimiter '|')");
    let Output::Copy { table, format, .. } = &s.output else {
        panic!()
    };
    assert_eq!(table.as_ref().unwrap().1, ["email", "card"]);
    assert_eq!(format.kind, CopyKind::Csv);
    assert_eq!(format.delimiter, b'|');
    let s = one("copy (select reverse(card) from customers) to stdout (format binary)");
    let Output::Copy { slots, format, .. } = &s.output else {
        panic!()
    };
    assert_eq!(format.kind, CopyKind::Binary);
    assert_eq!(slots.len(), 1);
    assert!(analyze("copy t to stdout", &[]).literal_dependent);
}

#[test]
fn state_exports_and_unparseable_texts() {
    assert!(
        one("select set_config('application_name', email, false) from customers").exports_state
    );
    assert!(one("select 1 from customers where pg_notify('c', email) is null").exports_state);
    assert!(!one("select set_config('application_name', 'x', false)").exports_state);
    let l = analyze("select (((", &[]);
    assert!(l.statements.is_none());
    assert!(l.all().opaque);
    assert!(matches!(one("execute p").output, Output::Unknown));
    assert!(matches!(
        one("explain select email from customers").output,
        Output::NoData
    ));
}

#[test]
fn trusted_functions_are_not_opaque() {
    let l = analyze("select my_mask(email) from customers", &["my_mask".into()]);
    let s = &l.statements.unwrap()[0];
    let Output::Rows(slots) = &s.output else {
        panic!()
    };
    let Slot::One(d) = &slots[0] else { panic!() };
    assert!(!d.opaque && d.sources.contains(&col("customers", "email")));
}

#[test]
fn merge_writes_its_target_from_its_source() {
    let s = one("merge into audit a using customers c on a.id = c.id \
         when matched then update set note = reverse(c.email) \
         when not matched then insert (id, note) values (c.id, c.card)");
    let note: Vec<&Write> = s
        .writes
        .iter()
        .filter(|w| w.column.as_deref() == Some("note"))
        .collect();
    assert_eq!(note.len(), 2, "{:?}", s.writes);
    assert!(note[0].from.sources.contains(&col("customers", "email")));
    assert!(note[1].from.sources.contains(&col("customers", "card")));
}
