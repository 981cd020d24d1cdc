//! The web dashboard of a real `synchost run`, used in a real headless
//! Chromium (Debian's `chromium` and `chromium-driver`, which `scripts/test`
//! installs) as a plan owner would: sign in with a token, see a failed
//! item's countermeasure, resolve a conflict, approve and reject changes,
//! pause and resume a pipeline. Screenshots of the main pages go to
//! `target/screenshots` (and to `docs/screenshots` with
//! `SYNCHOST_SCREENSHOTS=docs/screenshots`).

mod common;
#[path = "../../tests/src/browser.rs"]
mod browser;

use std::time::Duration;

use browser::{click, screenshot, shows, sign_in, type_into, Driver};
use common::{table_endpoint, Host, TABLE};

fn config() -> String {
    format!(
        r#"
[host.admin]
listen = "127.0.0.1:0"
{}{}{}{}
[pipelines.contacts-to-branch]
category = "master data"
left = {{ endpoint = "hq", entity = "contacts" }}
right = {{ endpoint = "branch", entity = "contacts" }}
schedule = "2s"
fields = {{ name = {{}}, phone = {{}} }}
required = ["phone"]
approval = {{ direction = "left-to-right" }}

[pipelines.price-list]
category = "projects"
left = {{ endpoint = "east", entity = "contacts" }}
right = {{ endpoint = "west", entity = "contacts" }}
schedule = "2s"
conflict = "manual"
fields = {{ name = {{}}, phone = {{}} }}
"#,
        table_endpoint("hq", "sql-table", "sqlite:hq.sqlite"),
        table_endpoint("branch", "sql-table", "sqlite:branch.sqlite"),
        table_endpoint("east", "sql-table", "sqlite:east.sqlite"),
        table_endpoint("west", "sql-table", "sqlite:west.sqlite"),
    )
}

fn token(host: &Host, user: &str, role: &str) -> String {
    let (ok, text) = host.synchost(&["users", "add", user, "--role", role]);
    assert!(ok, "{text}");
    let (ok, text) = host.synchost(&["tokens", "create", user]);
    assert!(ok, "{text}");
    text.lines().find(|l| l.starts_with("synchost_")).unwrap().to_owned()
}

async fn sign_in_refused(browser: &fantoccini::Client, base: &str) {
    browser.goto(base).await.unwrap();
    shows(browser, "Paste the token").await;
    type_into(browser, "#token", "synchost_wrong").await;
    click(browser, "#signin button").await;
    shows(browser, "Your token was not accepted").await;
}

// Covers: T2, C10, P2
#[test]
fn a_plan_owner_uses_the_dashboard_without_a_terminal() {
    let mut host = Host::new(0);
    for db in ["east.sqlite", "west.sqlite"] {
        host.db(db).execute_batch(TABLE).unwrap();
    }
    // Besides the row `Host` makes ("hq 1"): three more, one without the phone the pipeline requires.
    host.db("hq.sqlite")
        .execute_batch("INSERT INTO contacts (name, phone) VALUES ('Ada King', '030 1'), ('Grace Hopper', '030 2'), ('No Phone Ltd', NULL);")
        .unwrap();
    host.db("east.sqlite").execute_batch("INSERT INTO contacts (name, phone) VALUES ('Price list 2027', 'v1');").unwrap();
    std::fs::write(host.path("synchost.toml"), config()).unwrap();
    let owner = token(&host, "paula", "admin");
    host.start();
    let address = host.path("synchost-data/admin.address");
    host.wait_for("the admin API", Duration::from_secs(60), || address.exists());
    let base = format!("http://{}/", std::fs::read_to_string(&address).unwrap().trim());
    // The price list synced once; then both sides edit the same field.
    host.wait_for("the price list synced", Duration::from_secs(30), || host.count("west.sqlite", "SELECT count(*) FROM contacts") == 1);
    host.db("east.sqlite").execute("UPDATE contacts SET phone = 'v2-east', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')", []).unwrap();
    host.db("west.sqlite").execute("UPDATE contacts SET phone = 'v2-west', updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')", []).unwrap();
    host.wait_for("the conflict parked", Duration::from_secs(30), || {
        host.count("synchost-data/state.sqlite", "SELECT count(*) FROM conflicts WHERE status = 'open'") == 1
    });

    let driver = Driver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let browser = driver.browser().await;

        // Signing in: a wrong token is refused, the right one shows who is in.
        sign_in_refused(&browser, &base).await;
        sign_in(&browser, &base, &owner, "paula · admin").await;

        // The overview, grouped by category.
        shows(&browser, "master data").await;
        shows(&browser, "1 failed item").await;
        shows(&browser, "1 conflict").await;
        shows(&browser, "3 waiting for approval").await;
        screenshot(&browser, "dashboard-overview").await;

        // A failed item with its countermeasure.
        browser.goto(&format!("{base}#/pipeline/contacts-to-branch")).await.unwrap();
        shows(&browser, "What to do:").await;
        shows(&browser, "fill in `phone` on the left side").await;
        screenshot(&browser, "dashboard-failed-item").await;

        // A conflict, side by side: keep the left value.
        browser.goto(&format!("{base}#/pipeline/price-list")).await.unwrap();
        shows(&browser, "v2-east").await;
        shows(&browser, "v2-west").await;
        screenshot(&browser, "dashboard-conflict").await;
        click(&browser, "button[data-take='left']").await;
        shows(&browser, "No open conflicts.").await;

        // Approvals: the values side by side; approve one, reject one with a comment.
        browser.goto(&format!("{base}#/approvals")).await.unwrap();
        shows(&browser, "After approval").await;
        screenshot(&browser, "dashboard-approvals").await;
        click(&browser, "button[data-approve]").await;
        shows(&browser, "approved").await;
        browser.refresh().await.unwrap();
        shows(&browser, "After approval").await;
        type_into(&browser, "textarea[data-comment]", "This contact left the company").await;
        click(&browser, "button[data-reject]").await;
        shows(&browser, "rejected by paula").await;
        browser.refresh().await.unwrap();
        shows(&browser, "Grace Hopper").await;

        // Pause and resume.
        browser.goto(&base).await.unwrap();
        click(&browser, "button[data-act='pause'][data-pipeline='price-list']").await;
        shows(&browser, "paused by paula").await;
        click(&browser, "button[data-act='resume'][data-pipeline='price-list']").await;
        shows(&browser, "resumed by paula").await;
        browser.close().await.unwrap();
    });

    // What the clicks did, seen from outside.
    host.wait_for("the left value kept on both sides", Duration::from_secs(30), || host.count("west.sqlite", "SELECT count(*) FROM contacts WHERE phone = 'v2-east'") == 1);
    host.wait_for("the approved contact written", Duration::from_secs(30), || host.count("branch.sqlite", "SELECT count(*) FROM contacts") == 1);
    let (ok, decided) = host.synchost(&["approvals", "list", "--all"]);
    assert!(ok && decided.contains("rejected") && decided.contains("paula"), "{decided}");
    let (_, history) = host.synchost(&["history", "contacts-to-branch"]);
    assert!(history.contains("This contact left the company") || decided.contains("This contact left the company"), "the comment is kept: {history}\n{decided}");
    host.stop();
}
