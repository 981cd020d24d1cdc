//! Two hosts of a replica, through the real host, the real `replica` and
//! `sql-table` plugins and real message bytes: random edits on both sides,
//! exports, acknowledgements, swaps, resends, and messages lost, copied and
//! delivered out of order converge once every message is eventually
//! delivered; and the message parser holds against any bytes.

use proptest::prelude::*;
use synchost::engine::{Engine, Mode};
use synchost::replicas::roles::Role;
use synchost::replicas::{message, Replica};
use synchost_tests::Scene;

const TABLE: &str = "CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, phone TEXT,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    record_status TEXT NOT NULL DEFAULT 'active', origin TEXT UNIQUE);";

fn config(me: &str, peer: &str, side: &str, conflict: &str) -> String {
    format!(
        r#"[host]
name = "{me}"

[endpoints.crm]
plugin = "sql-table"
grants.sql.db = {{ dsn = "sqlite:crm.sqlite" }}
settings = {{ connection = "db", entities = {{ contacts = {{ updated_at = "updated_at", soft_delete = {{ column = "record_status" }}, origin = "origin" }} }} }}

[replicas.office]
side = "{side}"
peer = "{peer}"
secret = "swordfish"

[pipelines.contacts]
left = {{ endpoint = "crm", entity = "contacts" }}
right = {{ endpoint = "office", entity = "contacts" }}
conflict = "{conflict}"
fields = {{ name = {{}}, phone = {{}} }}
"#
    )
}

struct Office {
    scene: Scene,
    engine: Engine,
    clock: u32,
}

impl Office {
    fn new(me: &str, peer: &str, side: &str, conflict: &str) -> Office {
        let scene = Scene::new();
        scene.database("crm.sqlite", TABLE);
        let engine = scene.engine(&config(me, peer, side, conflict));
        Office { scene, engine, clock: 0 }
    }

    fn stamp(&mut self) -> String {
        self.clock += 1;
        format!("2030-01-01T{:02}:{:02}:{:02}Z", self.clock / 3600, self.clock / 60 % 60, self.clock % 60)
    }

    fn live(&self) -> Vec<String> {
        self.scene.rows("crm.sqlite", "SELECT id FROM contacts WHERE record_status = 'active' ORDER BY id")
    }

    fn contacts(&self) -> Vec<String> {
        self.scene.rows("crm.sqlite", "SELECT name, coalesce(phone, '') FROM contacts WHERE record_status = 'active' ORDER BY name, phone")
    }

    async fn sync(&self) {
        self.engine.run("contacts", "test", Mode::Apply).await.unwrap_or_else(|e| panic!("sync: {e}"));
    }

    fn replica(&self) -> Replica<'_> {
        Replica::open(&self.engine.config, "office").unwrap()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert { hq: bool, name: u8 },
    Edit { hq: bool, pick: u8, value: u8 },
    Delete { hq: bool, pick: u8 },
    Export { hq: bool, swap: bool },
    Ack { hq: bool },
    Resend { hq: bool },
    Deliver { to_hq: bool, pick: u8 },
    Copy { to_hq: bool, pick: u8 },
    Lose { to_hq: bool, pick: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (any::<bool>(), any::<u8>()).prop_map(|(hq, name)| Op::Insert { hq, name }),
        3 => (any::<bool>(), any::<u8>(), any::<u8>()).prop_map(|(hq, pick, value)| Op::Edit { hq, pick, value }),
        1 => (any::<bool>(), any::<u8>()).prop_map(|(hq, pick)| Op::Delete { hq, pick }),
        3 => (any::<bool>(), any::<bool>()).prop_map(|(hq, swap)| Op::Export { hq, swap }),
        2 => any::<bool>().prop_map(|hq| Op::Ack { hq }),
        1 => any::<bool>().prop_map(|hq| Op::Resend { hq }),
        4 => (any::<bool>(), any::<u8>()).prop_map(|(to_hq, pick)| Op::Deliver { to_hq, pick }),
        1 => (any::<bool>(), any::<u8>()).prop_map(|(to_hq, pick)| Op::Copy { to_hq, pick }),
        1 => (any::<bool>(), any::<u8>()).prop_map(|(to_hq, pick)| Op::Lose { to_hq, pick }),
    ]
}

/// Messages on their way, and those delivered (to copy), per receiving side.
#[derive(Default)]
struct Post {
    queued: [Vec<Vec<u8>>; 2],
    delivered: [Vec<Vec<u8>>; 2],
}

fn side(hq: bool) -> usize {
    usize::from(!hq)
}

async fn deliver(office: &Office, bytes: &[u8]) {
    // A refusal (a copy, a message whose role no longer fits) applies nothing; the log says why.
    let imported = office.replica().import(bytes, "post");
    if matches!(imported, Ok(synchost::replicas::Imported::Data { .. })) {
        office.sync().await;
    }
}

async fn check(ops: Vec<Op>) {
    // hq's values win a conflict on both sides, so both settle on one.
    let mut offices = [Office::new("hq", "branch", "parent", "left-wins"), Office::new("branch", "hq", "child", "right-wins")];
    let mut post = Post::default();
    for op in ops {
        match op {
            Op::Insert { hq, name } => {
                let office = &mut offices[side(hq)];
                let at = office.stamp();
                office.scene.sql("crm.sqlite", &format!("INSERT INTO contacts (name, phone, updated_at) VALUES ('{}{name}', 'p', '{at}')", if hq { "h" } else { "b" }));
            }
            Op::Edit { hq, pick, value } => {
                let office = &mut offices[side(hq)];
                let live = office.live();
                if !live.is_empty() {
                    let at = office.stamp();
                    office.scene.sql("crm.sqlite", &format!("UPDATE contacts SET phone = 'v{value}', updated_at = '{at}' WHERE id = {}", live[pick as usize % live.len()]));
                }
            }
            Op::Delete { hq, pick } => {
                let office = &mut offices[side(hq)];
                let live = office.live();
                if !live.is_empty() {
                    let at = office.stamp();
                    office.scene.sql("crm.sqlite", &format!("UPDATE contacts SET record_status = 'deleted', updated_at = '{at}' WHERE id = {}", live[pick as usize % live.len()]));
                }
            }
            Op::Export { hq, swap } => send(&offices[side(hq)], Some(swap), &mut post.queued[side(!hq)]).await,
            Op::Resend { hq } => send(&offices[side(hq)], None, &mut post.queued[side(!hq)]).await,
            Op::Ack { hq } => {
                if let Ok(exported) = offices[side(hq)].replica().acknowledge() {
                    post.queued[side(!hq)].push(exported.bytes);
                }
            }
            Op::Deliver { to_hq, pick } => {
                let queue = &mut post.queued[side(to_hq)];
                if !queue.is_empty() {
                    let bytes = queue.remove(pick as usize % queue.len());
                    deliver(&offices[side(to_hq)], &bytes).await;
                    post.delivered[side(to_hq)].push(bytes);
                }
            }
            Op::Copy { to_hq, pick } => {
                let delivered = &post.delivered[side(to_hq)];
                if !delivered.is_empty() {
                    let bytes = delivered[pick as usize % delivered.len()].clone();
                    deliver(&offices[side(to_hq)], &bytes).await;
                }
            }
            Op::Lose { to_hq, pick } => {
                let queue = &mut post.queued[side(to_hq)];
                if !queue.is_empty() {
                    queue.remove(pick as usize % queue.len());
                }
            }
        }
    }
    settle(&mut offices, &mut post).await;
    assert_eq!(offices[0].contacts(), offices[1].contacts(), "both offices hold the same contacts once every message is delivered");
}

/// Syncs, then exports (`Some(swap)`) or resends (`None`), if the office may.
async fn send(office: &Office, swap: Option<bool>, queue: &mut Vec<Vec<u8>>) {
    office.sync().await;
    let mut replica = office.replica();
    let made = match swap {
        Some(swap) => replica.export(swap),
        None => replica.resend(),
    };
    if let Ok(exported) = made {
        queue.push(exported.bytes);
    }
}

/// Every message on its way is delivered, in order; then each side in turn
/// sends what it holds and gives the role to the other, until both are quiet.
async fn settle(offices: &mut [Office; 2], post: &mut Post) {
    for to in 0..2 {
        for bytes in std::mem::take(&mut post.queued[to]) {
            deliver(&offices[to], &bytes).await;
        }
    }
    for _ in 0..3 {
        for from in [0, 1] {
            let to = 1 - from;
            offices[from].sync().await;
            let mut replica = offices[from].replica();
            let role = replica.store.role().unwrap();
            // A lost swap left both receivers: the side that swapped sends it again.
            let made = if role == Role::Sender { replica.export(true) } else { replica.resend() };
            drop(replica);
            if let Ok(exported) = made {
                deliver(&offices[to], &exported.bytes).await;
                if let Ok(ack) = offices[to].replica().acknowledge() {
                    let _ = offices[from].replica().import(&ack.bytes, "post");
                }
            }
        }
    }
    for office in offices.iter() {
        office.sync().await;
    }
}

proptest! {
    // PROPTEST_CASES raises the number of cases for a longer search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(6),
        ..ProptestConfig::default()
    })]

    // Covers: D1, D2, D3, D4, D6, D7, D11, C9
    #[test]
    fn random_edits_exports_losses_copies_and_swaps_converge_once_every_message_arrives(ops in prop::collection::vec(op(), 1..30)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(check(ops));
    }

    // Covers: D1, H1
    #[test]
    fn the_message_parser_refuses_any_bytes_it_did_not_make(bytes in prop::collection::vec(any::<u8>(), 0..2048), cut in any::<usize>(), flip in any::<usize>()) {
        // Random bytes, with and without the format's first line.
        prop_assert!(message::decode(&bytes, "s").is_err());
        let mut framed = message::MAGIC.to_vec();
        framed.extend_from_slice(&bytes);
        prop_assert!(message::decode(&framed, "s").is_err());
        // A real message cut anywhere, or with any one byte changed.
        let real = message::encode(&sample(), "s");
        prop_assert!(message::decode(&real[..cut % real.len()], "s").is_err());
        let mut changed = real.clone();
        let at = flip % changed.len();
        changed[at] ^= 1 + (flip / changed.len()) as u8 % 255;
        prop_assert!(message::decode(&changed, "s").is_err());
        prop_assert_eq!(message::decode(&real, "s").unwrap(), sample());
    }
}

fn sample() -> message::Message {
    message::Message {
        replica: "office".into(),
        replica_kind: synchost::replicas::ReplicaKind::TwoWay,
        sender: "hq".into(),
        receiver: "branch".into(),
        number: 1,
        kind: message::MessageKind::Data,
        swap: false,
        first_change: 1,
        last_change: 0,
        received: None,
        created_at: "2030-01-01T00:00:00Z".into(),
        changes: Vec::new(),
    }
}

// Covers: D2, D4, D7
#[test]
fn both_offices_edit_a_contact_the_other_sent_and_hq_wins_on_both() {
    use Op::*;
    let ops = vec![
        Insert { hq: true, name: 0 },
        Export { hq: true, swap: false },
        Deliver { to_hq: false, pick: 0 },
        Edit { hq: true, pick: 0, value: 0 },
        Edit { hq: false, pick: 0, value: 1 },
        Export { hq: false, swap: false },
    ];
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(check(ops));
}

// Covers: D3, D4, D6
#[test]
fn an_acknowledgement_that_overtakes_a_swap_does_not_make_the_swap_look_imported() {
    use Op::*;
    let ops = vec![
        Export { hq: true, swap: true },
        Ack { hq: true },
        Deliver { to_hq: false, pick: 1 },
        Ack { hq: false },
        Deliver { to_hq: false, pick: 0 },
        Insert { hq: false, name: 0 },
    ];
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(check(ops));
}
