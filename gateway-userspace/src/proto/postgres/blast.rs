//! The blast radius of a write, measured: what `pg_stat_xact_user_tables` says a statement
//! changed, and whether that is more than the resource allows (see [`super::enforce`]).

use super::settings::BlastRadius;

/// Rows changed by this transaction so far, per table (what `pg_stat_xact_user_tables` says,
/// read from its functions directly: the view's joins cost four times as much per write).
/// They are the session's counts since it last reported to the statistics system (at most once
/// a second, between transactions), so a delta needs a "before" from the same transaction;
/// within one they only grow (an aborted subtransaction's changes stay counted), so an older
/// answer of the same transaction taken as "before" can only make a delta larger.
pub const STATS: &str = "SELECT c.oid::regclass::text, \
     pg_stat_get_xact_tuples_updated(c.oid) + pg_stat_get_xact_tuples_deleted(c.oid), \
     pg_stat_get_xact_tuples_inserted(c.oid), pg_stat_get_xact_tuples_deleted(c.oid) \
     FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'p', 'm') \
     AND c.relnamespace <> ALL ('{pg_catalog,information_schema}'::regnamespace[]) \
     AND pg_stat_get_xact_tuples_inserted(c.oid) + pg_stat_get_xact_tuples_updated(c.oid) \
     + pg_stat_get_xact_tuples_deleted(c.oid) > 0";

/// What one table's rows did during a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    pub table: String,
    /// Updated plus deleted.
    pub changed: u64,
    pub inserted: u64,
    pub deleted: u64,
}

/// The change between two [`STATS`] answers (rows of text: table, changed, inserted, deleted).
pub fn deltas(before: &[Vec<Option<String>>], after: &[Vec<Option<String>>]) -> Vec<Delta> {
    let parse = |rows: &[Vec<Option<String>>]| -> Vec<Delta> {
        rows.iter()
            .filter_map(|r| {
                let n = |i: usize| -> u64 {
                    r.get(i)
                        .cloned()
                        .flatten()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0)
                };
                Some(Delta {
                    table: r.first()?.clone()?,
                    changed: n(1),
                    inserted: n(2),
                    deleted: n(3),
                })
            })
            .collect()
    };
    let before = parse(before);
    parse(after)
        .into_iter()
        .filter_map(|a| {
            let b = before.iter().find(|b| b.table == a.table);
            let sub = |x: u64, f: fn(&Delta) -> u64| x.saturating_sub(b.map_or(0, f));
            let d = Delta {
                changed: sub(a.changed, |b| b.changed),
                inserted: sub(a.inserted, |b| b.inserted),
                deleted: sub(a.deleted, |b| b.deleted),
                table: a.table,
            };
            (d.changed + d.inserted > 0).then_some(d)
        })
        .collect()
}

/// What a statement that changes one table without triggers did, by its command tag
/// (`UPDATE n`, `DELETE n`, `MERGE n`, `INSERT 0 n`): `table` as written in it.
pub fn tag_delta(table: &str, tags: &[String]) -> Vec<Delta> {
    let Some(tag) = tags.last() else {
        return Vec::new();
    };
    let n: u64 = tag
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    let (changed, inserted, deleted) = match tag.split(' ').next() {
        Some("UPDATE") => (n, 0, 0),
        Some("DELETE") => (n, 0, n),
        // Some of a MERGE's rows may have been inserted: counted as changed (more, not less).
        Some("MERGE") => (n, 0, 0),
        Some("INSERT") => (0, n, 0),
        // Anything else is not what the tag of such a statement is: the most it could be.
        _ => (u64::MAX, 0, 0),
    };
    vec![Delta {
        table: table.to_string(),
        changed,
        inserted,
        deleted,
    }]
}

/// A table whose size decides: `over` if fewer than `limit` rows are left in it.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeCheck {
    pub delta: Delta,
    /// Rows counted at most (enough to know the bound is kept).
    pub limit: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Judgement {
    Within,
    /// Over the bound: why, for the agent and the log.
    Over(String),
    /// Needs the size of these tables (a bounded count each).
    Count(Vec<SizeCheck>),
}

fn over_rows(d: &Delta, max: u64) -> String {
    format!(
        "the statement changed {} rows of {} (updated or deleted, triggers included), more than the {max} allowed at once",
        d.changed, d.table
    )
}

/// Is the change within the bound? Only updated and deleted rows count: inserts destroy
/// nothing. One changed row is never "more than half" of a table with more than one row.
pub fn judge(bounds: &BlastRadius, deltas: &[Delta]) -> Judgement {
    let mut checks = Vec::new();
    for d in deltas {
        if d.changed > bounds.max_rows {
            return Judgement::Over(over_rows(d, bounds.max_rows));
        }
        if d.changed >= 2 {
            let need = (d.changed as f64 / bounds.max_fraction).ceil() as u64;
            checks.push(SizeCheck {
                delta: d.clone(),
                limit: need + d.inserted,
            });
        }
    }
    if checks.is_empty() {
        Judgement::Within
    } else {
        Judgement::Count(checks)
    }
}

/// One query counting each table's rows now, up to its limit (`ONLY`: the statistics are per
/// table, partitions included as their own tables).
pub fn count_query(checks: &[SizeCheck]) -> String {
    checks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            format!(
                "SELECT {i}, count(*) FROM (SELECT FROM ONLY {} LIMIT {}) s",
                c.delta.table, c.limit
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// The verdict once the tables were counted (rows: index, count).
pub fn judge_counts(
    bounds: &BlastRadius,
    checks: &[SizeCheck],
    rows: &[Vec<Option<String>>],
) -> Judgement {
    for (i, c) in checks.iter().enumerate() {
        let now: Option<u64> = rows
            .iter()
            .find(|r| r.first().cloned().flatten().as_deref() == Some(&i.to_string()))
            .and_then(|r| r.get(1).cloned().flatten())
            .and_then(|v| v.parse().ok());
        let Some(now) = now else {
            return Judgement::Over(format!("the size of {} could not be read", c.delta.table));
        };
        if now >= c.limit {
            continue;
        }
        let before = (now + c.delta.deleted).saturating_sub(c.delta.inserted);
        if before > 1 && c.delta.changed as f64 > bounds.max_fraction * before as f64 {
            return Judgement::Over(format!(
                "the statement changed {} of the {before} rows of {} (updated or deleted, triggers included), more than {}% of the table",
                c.delta.changed,
                c.delta.table,
                (bounds.max_fraction * 100.0).round()
            ));
        }
    }
    Judgement::Within
}

// --- The session side: how the frontend runs what it allowed. ---

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|x| Some(x.to_string())).collect()
    }

    const B: BlastRadius = BlastRadius {
        max_rows: 1000,
        max_fraction: 0.5,
    };

    #[test]
    fn deltas_subtract_what_the_transaction_had_done_before() {
        let before = [row(&["customers", "1", "0", "1"])];
        let after = [
            row(&["customers", "4", "0", "4"]),
            row(&["orders", "0", "2", "0"]),
        ];
        let d = deltas(&before, &after);
        assert_eq!(
            d[0],
            Delta {
                table: "customers".into(),
                changed: 3,
                inserted: 0,
                deleted: 3
            }
        );
        assert_eq!(d[1].inserted, 2);
        assert!(deltas(&after, &after).is_empty());
    }

    #[test]
    fn a_command_tag_is_a_delta() {
        let d = |t: &str| tag_delta("public.t", &[t.to_string()])[0].clone();
        assert_eq!((d("UPDATE 3").changed, d("UPDATE 3").deleted), (3, 0));
        assert_eq!((d("DELETE 2").changed, d("DELETE 2").deleted), (2, 2));
        assert_eq!((d("INSERT 0 7").changed, d("INSERT 0 7").inserted), (0, 7));
        assert_eq!(d("MERGE 4").changed, 4);
        assert_eq!(d("SELECT 1").changed, u64::MAX);
        assert!(matches!(judge(&B, &[d("UPDATE 1")]), Judgement::Within));
        assert!(matches!(judge(&B, &[d("WHAT")]), Judgement::Over(_)));
    }

    #[test]
    fn the_bound_is_rows_and_half_of_a_table() {
        let d = |changed, inserted, deleted| Delta {
            table: "t".into(),
            changed,
            inserted,
            deleted,
        };
        assert!(matches!(judge(&B, &[d(1001, 0, 0)]), Judgement::Over(_)));
        assert_eq!(judge(&B, &[d(1, 0, 1)]), Judgement::Within);
        assert_eq!(judge(&B, &[d(0, 500, 0)]), Judgement::Within);
        let Judgement::Count(checks) = judge(&B, &[d(3, 0, 3)]) else {
            panic!()
        };
        assert_eq!(checks[0].limit, 6);
        assert_eq!(
            count_query(&checks),
            "SELECT 0, count(*) FROM (SELECT FROM ONLY t LIMIT 6) s"
        );
        // All 3 rows of a 3-row table deleted: 0 left.
        assert!(matches!(
            judge_counts(&B, &checks, &[row(&["0", "0"])]),
            Judgement::Over(_)
        ));
        // 3 of 10 deleted: 7 left (capped at 6 counted): within.
        assert_eq!(
            judge_counts(&B, &checks, &[row(&["0", "6"])]),
            Judgement::Within
        );
        // 3 of 5: 2 left.
        assert!(matches!(
            judge_counts(&B, &checks, &[row(&["0", "2"])]),
            Judgement::Over(_)
        ));
        // 3 updated of 6: exactly half is not more than half.
        let Judgement::Count(upd) = judge(&B, &[d(3, 0, 0)]) else {
            panic!()
        };
        assert_eq!(
            judge_counts(&B, &upd, &[row(&["0", "6"])]),
            Judgement::Within
        );
        assert!(matches!(
            judge_counts(&B, &upd, &[row(&["0", "5"])]),
            Judgement::Over(_)
        ));
        // A table of 2 rows with both updated is over, one of 2 is fine.
        let Judgement::Count(two) = judge(&B, &[d(2, 0, 0)]) else {
            panic!()
        };
        assert!(matches!(
            judge_counts(&B, &two, &[row(&["0", "2"])]),
            Judgement::Over(_)
        ));
        assert!(
            matches!(judge_counts(&B, &two, &[]), Judgement::Over(_)),
            "unknown size"
        );
    }
}
