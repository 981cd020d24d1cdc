//! Versioned migrations of the state database. Each step runs once, in order,
//! inside a transaction; the applied version is in `PRAGMA user_version`.
//! Most steps are SQL; a step that needs what SQL cannot do (digests, the
//! base's blob) is code.

use rusqlite::Transaction;

/// One migration step.
pub enum Step {
    Sql(&'static str),
    Code(fn(&Transaction<'_>) -> rusqlite::Result<()>),
}

pub const MIGRATIONS: &[(&str, Step)] = &[(
    "links, base values, cursors, runs, history, failed items, conflicts, events, health",
    Step::Sql(r#"
CREATE TABLE links (
    link_id INTEGER PRIMARY KEY,
    pipeline TEXT NOT NULL,
    left_id TEXT NOT NULL,
    right_id TEXT NOT NULL,
    left_version TEXT,
    right_version TEXT,
    -- active | left-deleted | right-deleted | deleted
    state TEXT NOT NULL DEFAULT 'active',
    created_run INTEGER,
    updated_at TEXT NOT NULL,
    UNIQUE (pipeline, left_id),
    UNIQUE (pipeline, right_id)
);

-- The last values both sides agreed on, per link and side: a JSON object of
-- field (that side's own name) -> value, each value a JSON array [type, value].
CREATE TABLE base (
    link_id INTEGER NOT NULL REFERENCES links (link_id) ON DELETE CASCADE,
    side TEXT NOT NULL CHECK (side IN ('left', 'right')),
    fields TEXT NOT NULL,
    PRIMARY KEY (link_id, side)
) WITHOUT ROWID;

CREATE TABLE cursors (
    pipeline TEXT NOT NULL,
    side TEXT NOT NULL,
    cursor TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (pipeline, side)
) WITHOUT ROWID;

CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY,
    pipeline TEXT NOT NULL,
    trigger TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    -- running | ok | failed
    status TEXT NOT NULL,
    read_left INTEGER NOT NULL DEFAULT 0,
    read_right INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    conflicts INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    hint TEXT
);
CREATE INDEX runs_by_pipeline ON runs (pipeline, run_id);

-- Every change the engine made or decided, and why.
CREATE TABLE history (
    id INTEGER PRIMARY KEY,
    run_id INTEGER,
    pipeline TEXT NOT NULL,
    at TEXT NOT NULL,
    left_id TEXT,
    right_id TEXT,
    -- create | update | delete | conflict | resolve | fail | unlink | skip
    action TEXT NOT NULL,
    -- the side that was written, if any
    target TEXT,
    -- the side the change came from
    origin TEXT,
    -- JSON: {field: {"from": value, "to": value}}
    fields TEXT NOT NULL DEFAULT '{}',
    -- which rule decided: "direction both", "policy left-wins", ...
    rule TEXT NOT NULL,
    message TEXT
);
CREATE INDEX history_by_left ON history (pipeline, left_id);
CREATE INDEX history_by_right ON history (pipeline, right_id);

CREATE TABLE failed_items (
    id INTEGER PRIMARY KEY,
    pipeline TEXT NOT NULL,
    side TEXT NOT NULL,
    source_id TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_failed_at TEXT NOT NULL,
    last_failed_at TEXT NOT NULL,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    hint TEXT,
    retryable INTEGER NOT NULL,
    UNIQUE (pipeline, side, source_id)
);

CREATE TABLE conflicts (
    id INTEGER PRIMARY KEY,
    pipeline TEXT NOT NULL,
    link_id INTEGER NOT NULL REFERENCES links (link_id) ON DELETE CASCADE,
    -- the field's left name, or `*` for a delete against an edit
    field TEXT NOT NULL,
    left_value TEXT NOT NULL,
    right_value TEXT NOT NULL,
    detected_run INTEGER,
    detected_at TEXT NOT NULL,
    -- open | resolved
    status TEXT NOT NULL DEFAULT 'open',
    resolution TEXT,
    resolved_by TEXT,
    resolved_at TEXT
);
CREATE UNIQUE INDEX one_open_conflict ON conflicts (pipeline, link_id, field) WHERE status = 'open';

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    level TEXT NOT NULL,
    pipeline TEXT,
    run_id INTEGER,
    message TEXT NOT NULL,
    hint TEXT
);

CREATE TABLE health (
    pipeline TEXT PRIMARY KEY,
    -- ok | degraded | paused
    state TEXT NOT NULL,
    reason TEXT,
    hint TEXT,
    since TEXT NOT NULL,
    paused_by TEXT,
    last_run_at TEXT,
    last_success_at TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE heartbeat (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at TEXT NOT NULL,
    beat_at TEXT NOT NULL
);
"#),
),
(
    "intents: creates written but not yet committed",
    Step::Sql(r#"
-- A create is recorded here before it is written to the target and removed in
-- the commit that stores its link. One left behind by a crash is driven again
-- (idempotently, by origin) at the start of the next run, so the row it made is
-- linked before either side's changes are read.
CREATE TABLE intents (
    pipeline TEXT NOT NULL,
    side TEXT NOT NULL,
    source_id TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (pipeline, side, source_id)
) WITHOUT ROWID;
"#),
), (
    "approval queue",
    Step::Sql(r#"
-- Changes of a pipeline's approval side waiting for (or given) a decision.
-- `change` holds what the engine would have written, with the base values and
-- history entry to commit once it is; `status` is pending, approved, rejected;
-- `applied_at` is set once the decision was carried out (the change written,
-- or the rejection noted on the source record).
CREATE TABLE approvals (
    id INTEGER PRIMARY KEY,
    pipeline TEXT NOT NULL,
    side TEXT NOT NULL,
    source_id TEXT NOT NULL,
    target_id TEXT,
    summary TEXT NOT NULL,
    change TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    submitted_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    comment TEXT,
    applied_at TEXT,
    outcome TEXT
);
CREATE INDEX approvals_by_source ON approvals (pipeline, side, source_id);
ALTER TABLE runs ADD COLUMN queued INTEGER NOT NULL DEFAULT 0;
"#),
), (
    "approval revisions and withdrawals",
    Step::Sql(r#"
-- Each time the change under an approval is replaced by a newer one, its
-- revision goes up: a decision names the revision the person saw. A pending
-- approval whose source record is deleted is `withdrawn`. (SQLite cannot
-- change a CHECK: the table is built anew.)
CREATE TABLE approvals_new (
    id INTEGER PRIMARY KEY,
    pipeline TEXT NOT NULL,
    side TEXT NOT NULL,
    source_id TEXT NOT NULL,
    target_id TEXT,
    summary TEXT NOT NULL,
    change TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected', 'withdrawn')),
    submitted_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    comment TEXT,
    applied_at TEXT,
    outcome TEXT,
    revision INTEGER NOT NULL DEFAULT 1
);
INSERT INTO approvals_new (id, pipeline, side, source_id, target_id, summary, change, status, submitted_at, decided_at, decided_by, comment, applied_at, outcome)
    SELECT id, pipeline, side, source_id, target_id, summary, change, status, submitted_at, decided_at, decided_by, comment, applied_at, outcome FROM approvals;
DROP TABLE approvals;
ALTER TABLE approvals_new RENAME TO approvals;
CREATE INDEX approvals_by_source ON approvals (pipeline, side, source_id);
"#),
), (
    "intents: written or only queued",
    Step::Sql(r#"
-- `written`: the create was sent (or about to be) and its outcome is not yet
-- committed; sent again, it must be found by its origin. `queued`: nothing was
-- sent yet (a record to make anew, a pair linked by hand to compare). Intents
-- from before this column were written ones.
ALTER TABLE intents ADD COLUMN state TEXT NOT NULL DEFAULT 'written' CHECK (state IN ('written', 'queued'));
"#),
), (
    "link birth marks",
    Step::Sql(r#"
-- A system that gives a deleted record's id to a new one (Redmine) marks each
-- record's creation; a link keeps the marks it has seen, so that a new record
-- under a linked id is never taken for the one linked.
ALTER TABLE links ADD COLUMN left_born TEXT;
ALTER TABLE links ADD COLUMN right_born TEXT;
"#),
), (
    "repeated events",
    Step::Sql(r#"
-- The same event again (an outage failing run after run) is counted on the
-- last one instead of pushing everything else out of view.
ALTER TABLE events ADD COLUMN repeats INTEGER NOT NULL DEFAULT 1;
ALTER TABLE events ADD COLUMN last_at TEXT;
"#),
), (
    "failed item labels",
    Step::Sql(r#"
-- What a person calls the record (name, title, subject), shown beside its id.
ALTER TABLE failed_items ADD COLUMN label TEXT;
ALTER TABLE approvals ADD COLUMN label TEXT;
"#),
), (
    "presence checks",
    Step::Sql(r#"
-- When the linked records of a side without tombstones were last looked up
-- (deletes that leave no trace): kept across processes, so that each
-- `synchost sync` does not look every linked record up again.
CREATE TABLE presence_checks (
    pipeline TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('left', 'right')),
    at TEXT NOT NULL,
    PRIMARY KEY (pipeline, side)
);
"#),
), (
    "lean links: base digests in the link's row, ids and pipelines as numbers, history per batch",
    Step::Code(lean_links),
), (
    "config reloads",
    Step::Sql(r#"
-- Every config a running host loaded: at start, and each reload with its
-- outcome, what it changed, or every reason it was rejected.
CREATE TABLE reloads (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    -- start | file | signal
    trigger TEXT NOT NULL,
    -- loaded | applied | rejected | unchanged
    outcome TEXT NOT NULL,
    -- a digest of the config text and the plugins' bytes, of the config now serving
    revision TEXT NOT NULL,
    summary TEXT NOT NULL,
    -- JSON: the config diff (applied) or [{message, hint}] (rejected)
    detail TEXT
);
"#),
), (
    "users and tokens of the admin API",
    Step::Sql(r#"
-- The people and services the admin API answers, with what they may do.
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    -- viewer | operator | approver | admin
    role TEXT NOT NULL,
    -- JSON list of the pipelines an operator or approver acts on; NULL: all
    pipelines TEXT,
    created_at TEXT NOT NULL
);
-- Bearer tokens, kept as SHA-256 digests: a copy of the state gives no access.
CREATE TABLE tokens (
    id INTEGER PRIMARY KEY,
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    digest TEXT NOT NULL UNIQUE,
    label TEXT,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT
);
"#),
), (
    "identities of the endpoints and of the host",
    Step::Sql(r#"
-- What each endpoint was, and which host ran the state, when first synced or
-- last confirmed: a system that answers as another stops its pipelines.
CREATE TABLE identities (
    -- `host`, or `endpoint:NAME`
    subject TEXT PRIMARY KEY,
    -- JSON (see `engine::identity::Identity`)
    identity TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    -- who confirmed it (`endpoints rebind`); NULL: recorded at the first sync
    confirmed_by TEXT
);
"#),
), (
    "scope locks, changes held back by them, undone runs",
    Step::Sql(r#"
-- Who holds each locked scope (L2): one row per locked scope.
CREATE TABLE scope_locks (
    scope TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    -- the endpoint whose changes are the holder's
    endpoint TEXT NOT NULL,
    since TEXT NOT NULL,
    -- the holder's last change in the scope (for the idle timeout)
    last_activity TEXT NOT NULL,
    -- lock | auto-lock
    how TEXT NOT NULL
);
-- Every lock, release and refusal, with who and why (L4).
CREATE TABLE lock_log (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    at TEXT NOT NULL,
    -- lock | auto-lock | release | idle-release | forced-unlock | refused
    action TEXT NOT NULL,
    holder TEXT,
    by TEXT NOT NULL,
    why TEXT NOT NULL
);
-- Changes from others than the holder, held while the scope is locked;
-- driven through the engine again once it is not.
CREATE TABLE held_changes (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    pipeline TEXT NOT NULL,
    side TEXT NOT NULL,
    source_id TEXT NOT NULL,
    target_id TEXT,
    summary TEXT NOT NULL,
    -- JSON: the change as the engine would have written it
    change TEXT NOT NULL,
    holder TEXT NOT NULL,
    held_at TEXT NOT NULL,
    label TEXT,
    UNIQUE (pipeline, side, source_id)
);
ALTER TABLE runs ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
-- Runs taken back (`synchost undo RUN`) and made again (`redo`) (L5).
CREATE TABLE run_undos (
    run_id INTEGER PRIMARY KEY,
    -- undone | redone
    state TEXT NOT NULL,
    by TEXT NOT NULL,
    at TEXT NOT NULL,
    -- the run that recorded the undo or redo
    by_run INTEGER
);
"#),
)];

/// The layout of `docs/state.md`: a link row holds its base as digests (see
/// `state::base`), its versions as digests, ids that are whole numbers as
/// integers, and its pipeline by number; history rows carry the record's
/// label (named by the row, no longer looked up in the base) and a batch of
/// creates may be one row (`records`, `first_link`..`last_link`). Existing
/// links keep every pairing, state and birth mark; their base values become
/// digests.
fn lean_links(transaction: &Transaction<'_>) -> rusqlite::Result<()> {
    transaction.execute_batch(
        r#"
CREATE TABLE pipelines (
    pipe INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
INSERT INTO pipelines (name) SELECT DISTINCT pipeline FROM links ORDER BY pipeline;

CREATE TABLE base_shapes (
    shape_id INTEGER PRIMARY KEY,
    -- JSON: [[left name, right name], ...], either may be null
    pairs TEXT NOT NULL UNIQUE
);

ALTER TABLE history ADD COLUMN label TEXT;
ALTER TABLE history ADD COLUMN records INTEGER;
ALTER TABLE history ADD COLUMN first_link INTEGER;
ALTER TABLE history ADD COLUMN last_link INTEGER;
UPDATE history SET label = (
    SELECT coalesce(json_extract(b.fields, '$.name[1]'), json_extract(b.fields, '$.title[1]'), json_extract(b.fields, '$.subject[1]'),
        json_extract(b.fields, '$.summary[1]'), json_extract(b.fields, '$.comments[1]'), json_extract(b.fields, '$.comment[1]'), json_extract(b.fields, '$.login[1]'))
    FROM links l JOIN base b ON b.link_id = l.link_id
    WHERE l.pipeline = history.pipeline AND (l.left_id = history.left_id OR l.right_id = history.right_id)
    ORDER BY b.side LIMIT 1);

-- Ids have no column type: a whole number is stored as an integer (the
-- host binds it as one), anything else as text.
CREATE TABLE links_lean (
    link_id INTEGER PRIMARY KEY,
    pipe INTEGER NOT NULL REFERENCES pipelines (pipe),
    left_id NOT NULL,
    right_id NOT NULL,
    -- 32-bit digests of each record's version when last synced
    left_version INTEGER,
    right_version INTEGER,
    -- active | left-deleted | right-deleted | deleted
    state TEXT NOT NULL DEFAULT 'active',
    created_run INTEGER,
    -- when the state last changed (null: linked and never changed since)
    updated_at TEXT,
    left_born TEXT,
    right_born TEXT,
    -- the base values' digests (see state::base)
    base BLOB
);
"#,
    )?;
    let mut shapes = super::base::Shapes::default();
    {
        let mut links = transaction.prepare(
            "SELECT l.link_id, p.pipe, l.left_id, l.right_id, l.left_version, l.right_version, l.state, l.created_run, l.updated_at,
                    l.left_born, l.right_born,
                    (SELECT fields FROM base WHERE link_id = l.link_id AND side = 'left'),
                    (SELECT fields FROM base WHERE link_id = l.link_id AND side = 'right')
             FROM links l JOIN pipelines p ON p.name = l.pipeline ORDER BY l.link_id",
        )?;
        let mut insert = transaction.prepare(
            "INSERT INTO links_lean (link_id, pipe, left_id, right_id, left_version, right_version, state, created_run, updated_at, left_born, right_born, base)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        let mut rows = links.query([])?;
        while let Some(row) = rows.next()? {
            let ids: (String, String) = (row.get(2)?, row.get(3)?);
            let versions: (Option<String>, Option<String>) = (row.get(4)?, row.get(5)?);
            let mut base = super::base::Base::default();
            for (index, side) in [(11, crate::config::Side::Left), (12, crate::config::Side::Right)] {
                let Some(text) = row.get::<_, Option<String>>(index)? else { continue };
                let fields: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
                for (name, stored) in &fields {
                    // Kept whole, as before: the next write of the link keeps only what its pipeline needs.
                    base.side_mut(side).set(name, &super::decode(stored), true);
                }
            }
            let blob = shapes.encode(transaction, "", &base)?;
            insert.execute(rusqlite::params![
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                super::StoredId(&ids.0),
                super::StoredId(&ids.1),
                versions.0.as_deref().map(super::base::version_digest),
                versions.1.as_deref().map(super::base::version_digest),
                row.get::<_, String>(6)?,
                row.get::<_, Option<i64>>(7)?,
                row.get::<_, Option<String>>(8)?,
                row.get::<_, Option<String>>(9)?,
                row.get::<_, Option<String>>(10)?,
                blob,
            ])?;
        }
    }
    transaction.execute_batch(
        "DROP TABLE base;
         DROP TABLE links;
         ALTER TABLE links_lean RENAME TO links;
         CREATE UNIQUE INDEX links_by_left ON links (pipe, left_id);
         CREATE UNIQUE INDEX links_by_right ON links (pipe, right_id);",
    )
}
