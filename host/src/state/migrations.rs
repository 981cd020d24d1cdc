//! Versioned migrations of the state database. Each step runs once, in order,
//! inside a transaction; the applied version is in `PRAGMA user_version`.

pub const MIGRATIONS: &[(&str, &str)] = &[(
    "links, base values, cursors, runs, history, failed items, conflicts, events, health",
    r#"
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
"#,
),
(
    "intents: creates written but not yet committed",
    r#"
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
"#,
), (
    "approval queue",
    r#"
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
"#,
), (
    "approval revisions and withdrawals",
    r#"
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
"#,
), (
    "intents: written or only queued",
    r#"
-- `written`: the create was sent (or about to be) and its outcome is not yet
-- committed; sent again, it must be found by its origin. `queued`: nothing was
-- sent yet (a record to make anew, a pair linked by hand to compare). Intents
-- from before this column were written ones.
ALTER TABLE intents ADD COLUMN state TEXT NOT NULL DEFAULT 'written' CHECK (state IN ('written', 'queued'));
"#,
), (
    "link birth marks",
    r#"
-- A system that gives a deleted record's id to a new one (Redmine) marks each
-- record's creation; a link keeps the marks it has seen, so that a new record
-- under a linked id is never taken for the one linked.
ALTER TABLE links ADD COLUMN left_born TEXT;
ALTER TABLE links ADD COLUMN right_born TEXT;
"#,
), (
    "repeated events",
    r#"
-- The same event again (an outage failing run after run) is counted on the
-- last one instead of pushing everything else out of view.
ALTER TABLE events ADD COLUMN repeats INTEGER NOT NULL DEFAULT 1;
ALTER TABLE events ADD COLUMN last_at TEXT;
"#,
), (
    "failed item labels",
    r#"
-- What a person calls the record (name, title, subject), shown beside its id.
ALTER TABLE failed_items ADD COLUMN label TEXT;
ALTER TABLE approvals ADD COLUMN label TEXT;
"#,
), (
    "presence checks",
    r#"
-- When the linked records of a side without tombstones were last looked up
-- (deletes that leave no trace): kept across processes, so that each
-- `synchost sync` does not look every linked record up again.
CREATE TABLE presence_checks (
    pipeline TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('left', 'right')),
    at TEXT NOT NULL,
    PRIMARY KEY (pipeline, side)
);
"#,
)];
