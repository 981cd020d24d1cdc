//! The admin API over HTTPS (`[host.admin.tls]`): served with the configured
//! certificate, refused in plain HTTP, reached by the command line, which
//! trusts that certificate and no other; a key that does not fit keeps the
//! API off with the reason while syncing goes on.

mod common;

use std::time::Duration;

use common::{table_endpoint, Host};

fn config() -> String {
    format!(
        "[host.admin]\nlisten = \"127.0.0.1:0\"\ntls = {{ cert = \"admin.crt\", key = \"admin.key\" }}\n{}{}\n[pipelines.p]\nleft = {{ endpoint = \"hq\", entity = \"contacts\" }}\nright = {{ endpoint = \"branch\", entity = \"contacts\" }}\nschedule = \"1s\"\nfields = {{ name = {{}} }}\n",
        table_endpoint("hq", "sql-table", "sqlite:hq.sqlite"),
        table_endpoint("branch", "sql-table", "sqlite:branch.sqlite"),
    )
}

/// A self-signed certificate and its key, as docs/admin.md makes them.
fn certificate(host: &Host, cert: &str, key: &str) {
    let output = std::process::Command::new("openssl")
        .current_dir(host.dir.path())
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "365", "-subj", "/CN=synchost admin"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-keyout", key, "-out", cert])
        .output()
        .expect("openssl (Debian package openssl) makes the test certificate");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

fn address(host: &Host) -> String {
    let path = host.path("synchost-data/admin.address");
    host.wait_for("the admin API's address", Duration::from_secs(60), || path.exists());
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

// Covers: T2, T4
#[test]
fn the_admin_api_serves_https_with_its_certificate_and_the_command_line_trusts_that_one_only() {
    let mut host = Host::new(2);
    certificate(&host, "admin.crt", "admin.key");
    std::fs::write(host.path("synchost.toml"), config()).unwrap();
    let (ok, text) = host.synchost(&["users", "add", "ada", "--role", "admin"]);
    assert!(ok, "{text}");
    let (_, text) = host.synchost(&["tokens", "create", "ada"]);
    let token = text.lines().find(|l| l.starts_with("synchost_")).unwrap().to_owned();
    host.start();
    let address = address(&host);

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let trusted = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(host.path("admin.crt")).unwrap()).unwrap())
        .no_proxy()
        .build()
        .unwrap();
    runtime.block_on(async {
        let health = trusted.get(format!("https://{address}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let status = trusted.get(format!("https://{address}/api/v1/status")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(status.status(), 200);
        let body: serde_json::Value = serde_json::from_str(&status.text().await.unwrap()).unwrap();
        assert_eq!(body["pipelines"][0]["pipeline"], "p");
        // Plain HTTP gets no answer: tokens never cross the network in the clear.
        let plain = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build().unwrap();
        match plain.get(format!("http://{address}/healthz")).send().await {
            Ok(response) => panic!("plain HTTP was answered: {}", response.status()),
            Err(_) => {}
        }
        // A client that does not trust the certificate is refused in the handshake.
        assert!(plain.get(format!("https://{address}/healthz")).send().await.is_err());
    });

    // The command line reaches the running host over HTTPS.
    let (ok, text) = host.synchost(&["pause", "p", "--by", "grace"]);
    assert!(ok, "{text}");
    let (_, text) = host.synchost(&["status"]);
    assert!(text.contains("paused by grace (command line)"), "{text}");

    // Another certificate in the config's place: the command line does not talk to what it cannot trust.
    std::fs::rename(host.path("admin.crt"), host.path("served.crt")).unwrap();
    certificate(&host, "admin.crt", "other.key");
    let (ok, text) = host.synchost(&["resume", "p"]);
    assert!(!ok, "{text}");
    assert!(text.contains(&format!("admin API at https://{address} does not answer")), "{text}");
    host.stop();
}

// Covers: T4
#[test]
fn a_key_that_does_not_fit_the_certificate_keeps_the_api_off_with_the_reason_and_syncing_goes_on() {
    let mut host = Host::new(2);
    certificate(&host, "admin.crt", "admin.key");
    certificate(&host, "other.crt", "other.key");
    std::fs::write(host.path("synchost.toml"), config().replace("key = \"admin.key\"", "key = \"other.key\"")).unwrap();
    host.start();
    host.wait_for("the first sync", Duration::from_secs(60), || host.count("branch.sqlite", "SELECT count(*) FROM contacts") == 2);
    let (_, text) = host.synchost(&["messages"]);
    assert!(text.contains("the admin API cannot serve HTTPS: the certificate and the key do not go together"), "{text}");
    assert!(text.contains("give the key the certificate was made for"), "{text}");
    assert!(!host.path("synchost-data/admin.address").exists() || std::fs::read_to_string(host.path("synchost-data/admin.address")).unwrap().trim().is_empty());
    host.stop();
}
