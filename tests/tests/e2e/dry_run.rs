//! A dry run says exactly what the real run then does: the same counts and
//! the same decisions per record, on random scenarios (a first sync that
//! matches records by `match_on`, then random inserts, edits and deletes on
//! both sides, under each conflict policy).

use proptest::prelude::*;
use synchost::engine::{Engine, Mode, RunReport};
use synchost::state::HistoryEntry;
use synchost_tests::Scene;

use crate::engine::{endpoints, TABLE};

#[derive(Debug, Clone)]
struct Row {
    name: u8,
    phone: u8,
    status: u8,
}

#[derive(Debug, Clone)]
enum Op {
    Insert { left: bool, row: (u8, u8, u8) },
    Edit { left: bool, pick: u8, field: u8, value: u8 },
    Delete { left: bool, pick: u8 },
}

fn row() -> impl Strategy<Value = Row> {
    // Few names, so that records match, and some names repeat (ambiguous).
    (0u8..8, 0u8..3, 0u8..3).prop_map(|(name, phone, status)| Row { name, phone, status })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<bool>(), (0u8..12, 0u8..3, 0u8..3)).prop_map(|(left, row)| Op::Insert { left, row }),
        (any::<bool>(), any::<u8>(), 0u8..2, 0u8..3).prop_map(|(left, pick, field, value)| Op::Edit { left, pick, field, value }),
        (any::<bool>(), any::<u8>()).prop_map(|(left, pick)| Op::Delete { left, pick }),
    ]
}

fn policy() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just("left-wins"), Just("right-wins"), Just("last-writer-wins"), Just("first-writer-wins"), Just("manual")]
}

/// What a run decided, comparable between a dry and a real run: per history
/// entry its action and the source record (the target id of a create is only
/// known once it is made), plus the counts.
fn decisions(report: &RunReport) -> (Vec<(String, String)>, [u64; 6]) {
    let source = |e: &HistoryEntry| match e.origin {
        Some(synchost::config::Side::Right) => format!("right {}", e.right_id.as_deref().unwrap_or("?")),
        _ => format!("left {}", e.left_id.as_deref().unwrap_or("?")),
    };
    let mut entries: Vec<(String, String)> = report.plan.iter().map(|e| (e.action.to_owned(), source(e))).collect();
    entries.sort();
    let c = &report.counts;
    (entries, [c.created, c.updated, c.deleted, c.conflicts, c.failed, c.queued])
}

async fn compare(engine: &Engine, what: &str) {
    let dry = engine.run("p", "test", Mode::DryRun).await.expect("dry run");
    let real = engine.run("p", "test", Mode::Apply).await.expect("real run");
    assert_eq!(decisions(&dry), decisions(&real), "{what}: the dry run must say what the real run does");
    // Every conflict counted is listed once where it is decided: an entry of
    // its own (parked, or a delete against an edit), or a field of an update
    // or delete the policy decided (the losing side's entry says it lost).
    let listed: usize = real
        .plan
        .iter()
        .map(|e| match e.action {
            "conflict" if !e.rule.contains("lost the conflict") => 1,
            _ => e.rule.matches(": conflict, policy").count(),
        })
        .sum();
    assert_eq!(listed as u64, real.counts.conflicts, "{what}: conflicts counted and listed: {:#?}", real.plan);
}

async fn check(policy: &str, left: Vec<Row>, right: Vec<Row>, edits: Vec<Op>) {
    let scene = Scene::new();
    scene.database("hq.sqlite", TABLE);
    scene.database("branch.sqlite", TABLE);
    let engine = scene.engine(&format!(
        "{}\n[pipelines.p]\nleft = {{ endpoint = \"hq\", entity = \"contacts\" }}\nright = {{ endpoint = \"branch\", entity = \"contacts\" }}\nconflict = \"{policy}\"\nmatch_on = [\"name\"]\nfields = {{ name = {{}}, phone = {{}}, status = {{}} }}\n",
        endpoints(true)
    ));
    let mut clock = 0u32;
    let mut stamp = || {
        clock += 1;
        format!("2030-01-01T00:{:02}:{:02}Z", clock / 60, clock % 60)
    };
    for (db, rows) in [("hq.sqlite", &left), ("branch.sqlite", &right)] {
        for r in rows {
            scene.sql(db, &format!("INSERT INTO contacts (name, phone, status, updated_at) VALUES ('n{}', 'p{}', 's{}', '{}')", r.name, r.phone, r.status, stamp()));
        }
    }
    compare(&engine, "first sync").await;
    for op in edits {
        match op {
            Op::Insert { left, row: (name, phone, status) } => {
                let db = if left { "hq.sqlite" } else { "branch.sqlite" };
                scene.sql(db, &format!("INSERT INTO contacts (name, phone, status, updated_at) VALUES ('n{name}', 'p{phone}', 's{status}', '{}')", stamp()));
            }
            Op::Edit { left, pick, field, value } => {
                let db = if left { "hq.sqlite" } else { "branch.sqlite" };
                let live = scene.rows(db, "SELECT id FROM contacts ORDER BY id");
                if !live.is_empty() {
                    let id = &live[pick as usize % live.len()];
                    let column = ["phone", "status"][field as usize];
                    scene.sql(db, &format!("UPDATE contacts SET {column} = 'v{value}', updated_at = '{}' WHERE id = {id}", stamp()));
                }
            }
            Op::Delete { left, pick } => {
                let db = if left { "hq.sqlite" } else { "branch.sqlite" };
                let live = scene.rows(db, "SELECT id FROM contacts WHERE record_status = 'active' ORDER BY id");
                if !live.is_empty() {
                    let id = &live[pick as usize % live.len()];
                    scene.sql(db, &format!("UPDATE contacts SET record_status = 'deleted', updated_at = '{}' WHERE id = {id}", stamp()));
                }
            }
        }
    }
    compare(&engine, "after edits").await;
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(16),
        ..ProptestConfig::default()
    })]

    // Covers: C8, P2, P7, T2
    #[test]
    fn a_dry_run_says_what_the_real_run_then_does(
        policy in policy(),
        left in prop::collection::vec(row(), 0..10),
        right in prop::collection::vec(row(), 0..10),
        edits in prop::collection::vec(op(), 0..10),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(check(policy, left, right, edits));
    }
}
