//! HTTP between the two hosts of a replica (C3). The passive host is
//! configured first, with the link's password; it serves the exchange on
//! its admin API (`/api/v1/replicas/NAME/exchange`, see `http::exchange`).
//! The active host, which needs no address of its own, connects with the
//! passive host's address and the password on its schedule: it pushes the
//! messages waiting in its outgoing folder and pulls those waiting for it.
//! A message is taken away on one side only once the other holds it whole,
//! so a cut mid-transfer loses nothing and sends at most once more (an
//! import of a copy applies nothing).

use std::path::Path;
use std::time::Duration;

use super::Replica;

/// Why the link did not work this time, and what to do.
#[derive(Debug, Clone)]
pub struct LinkError {
    pub message: String,
    pub fix: String,
}

/// What one round over the link moved.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Moved {
    pub pushed: usize,
    pub pulled: usize,
}

/// The file names a message may cross under: `REPLICA-SENDER-NUMBER.KIND.synchost`.
pub fn acceptable_name(name: &str, replica: &str, sender: &str) -> bool {
    let Some(rest) = name.strip_prefix(&format!("{replica}-{sender}-")) else { return false };
    let Some((number, kind)) = rest.split_once('.') else { return false };
    number.len() == 6 && number.bytes().all(|b| b.is_ascii_digit()) && matches!(kind, "data.synchost" | "ack.synchost")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().expect("an HTTP client")
}

/// What a round over the link needs, taken from the replica so that no
/// borrow of its store is held while the network is waited for.
pub struct Target {
    name: String,
    me: String,
    peer: String,
    url: String,
    password: String,
    outgoing: std::path::PathBuf,
    incoming: std::path::PathBuf,
}

/// The active end's target, or why this replica has none.
pub fn target(replica: &Replica<'_>) -> Result<Target, LinkError> {
    let Some(link) = &replica.config.http else {
        return Err(LinkError { message: format!("replica `{}` has no [http] link", replica.name), fix: "set [replicas.NAME.http]".into() });
    };
    let Some(url) = link.url.as_deref().map(|u| u.trim_end_matches('/').to_owned()) else {
        return Err(LinkError {
            message: format!("replica `{}` is the active end of its link but names no url", replica.name),
            fix: format!("set [replicas.{}.http] url to the passive host's admin API, e.g. \"https://hq.example.com:7878\"", replica.name),
        });
    };
    let (outgoing, incoming) = replica.folders.clone().expect("an HTTP link has folders of its own");
    Ok(Target {
        name: replica.name.clone(),
        me: replica.me.clone(),
        peer: replica.config.peer.clone(),
        url,
        password: crate::config::resolve_secret(&link.password),
        outgoing,
        incoming,
    })
}

/// One round, from the active host: push what waits here, pull what waits there.
pub async fn exchange(target: Target) -> Result<Moved, LinkError> {
    let Target { name, me, peer, url, password, outgoing, incoming } = target;
    let base = format!("{url}/api/v1/replicas/{name}/exchange");
    let client = client();
    let unreachable = |error: reqwest::Error| LinkError {
        message: format!("the passive host at {url} cannot be reached: {error}"),
        fix: "check that it runs and serves its admin API at that address; nothing is lost: messages wait here until the link is up".into(),
    };
    let refused = |status: reqwest::StatusCode, body: String| match status.as_u16() {
        401 => LinkError { message: format!("the passive host at {url} refused the link's password"), fix: format!("set the same [replicas.{name}.http] password on both hosts") },
        404 => LinkError {
            message: format!("the passive host at {url} serves no replica `{name}`: {body}"),
            fix: "check the replica's name and that the other host is its passive end".into(),
        },
        _ => LinkError { message: format!("the passive host at {url} answered {status}: {body}"), fix: "see the passive host's `synchost messages`".into() },
    };
    let mut moved = Moved::default();
    // Push: each message here, then taken away once the passive host holds it.
    for file in super::folder::waiting(&outgoing, &name, &me).map_err(|e| LinkError { message: e.to_string(), fix: String::new() })? {
        let file_name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let bytes = std::fs::read(&file).map_err(|e| LinkError { message: format!("cannot read {}: {e}", file.display()), fix: String::new() })?;
        let response = client.put(format!("{base}/{file_name}")).bearer_auth(&password).body(bytes).send().await.map_err(unreachable)?;
        if !response.status().is_success() {
            let status = response.status();
            return Err(refused(status, response.text().await.unwrap_or_default()));
        }
        let _ = std::fs::remove_file(&file);
        moved.pushed += 1;
    }
    // Pull: each message there, kept here whole, then taken away there.
    let response = client.get(&base).bearer_auth(&password).send().await.map_err(unreachable)?;
    let status = response.status();
    let text = response.text().await.map_err(unreachable)?;
    if !status.is_success() {
        return Err(refused(status, text));
    }
    let listing: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    for file_name in listing["messages"].as_array().into_iter().flatten().filter_map(|n| n.as_str()) {
        if !acceptable_name(file_name, &name, &peer) {
            continue;
        }
        let response = client.get(format!("{base}/{file_name}")).bearer_auth(&password).send().await.map_err(unreachable)?;
        if !response.status().is_success() {
            let status = response.status();
            return Err(refused(status, response.text().await.unwrap_or_default()));
        }
        let bytes = response.bytes().await.map_err(unreachable)?;
        keep(&incoming, file_name, &bytes).map_err(|e| LinkError { message: format!("cannot keep {file_name}: {e}"), fix: "check that the data folder is writable".into() })?;
        let _ = client.delete(format!("{base}/{file_name}")).bearer_auth(&password).send().await;
        moved.pulled += 1;
    }
    Ok(moved)
}

/// Notes a round's outcome in the activity log when the link goes down or
/// comes back (not at every try). Returns whether it went down just now.
pub fn note(replica: &Replica<'_>, outcome: &Result<Moved, LinkError>) -> bool {
    use super::store::Mark;
    let was_down = replica.store.mark(Mark::LinkDown).unwrap_or(0) == 1;
    match outcome {
        Ok(_) => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
            let _ = replica.store.set_mark(Mark::LinkUp, now);
            if was_down {
                let _ = replica.store.set_mark(Mark::LinkDown, 0);
                let _ = replica.store.log("info", "link", "the link to the passive host is up again", None);
            }
            false
        }
        Err(error) if !was_down => {
            let _ = replica.store.set_mark(Mark::LinkDown, 1);
            let _ = replica.store.log("error", "link", &error.message, Some(&error.fix));
            true
        }
        Err(_) => false,
    }
}

/// A message received over the link, written whole or not at all.
pub fn keep(folder: &Path, name: &str, bytes: &[u8]) -> std::io::Result<std::path::PathBuf> {
    let exported = super::Exported { number: 0, file_name: name.to_owned(), bytes: bytes.to_vec(), changes: 0, swap: false };
    super::folder::deliver(folder, &exported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_message_names_of_the_pair_cross() {
        assert!(acceptable_name("office-hq-000012.data.synchost", "office", "hq"));
        assert!(acceptable_name("office-hq-000012.ack.synchost", "office", "hq"));
        assert!(!acceptable_name("office-branch-000012.data.synchost", "office", "hq"), "the other sender");
        assert!(!acceptable_name("office-hq-../../etc.data.synchost", "office", "hq"));
        assert!(!acceptable_name("office-hq-000012.data.synchost.refused", "office", "hq"));
        assert!(!acceptable_name("office-hq-12.data.synchost", "office", "hq"));
    }
}

/// A transport this host reaches out to on each round: the active end of
/// an HTTP link, or an FTP server.
pub enum Remote {
    Http(Target),
    Ftp(super::ftp::FtpTarget),
}

/// The replica's remote transport, if it has one this host drives (not
/// local folders, nor the passive end of a link).
pub fn remote(replica: &Replica<'_>) -> Option<Result<Remote, LinkError>> {
    if let Some(target) = super::ftp::target(replica) {
        return Some(Ok(Remote::Ftp(target)));
    }
    let active = replica.config.http.as_ref().is_some_and(|l| l.role == super::LinkRole::Active);
    active.then(|| target(replica).map(Remote::Http))
}

/// One round over the remote transport.
pub async fn round(remote: Remote) -> Result<Moved, LinkError> {
    match remote {
        Remote::Http(target) => exchange(target).await,
        // The FTP client blocks: it runs beside the async threads.
        Remote::Ftp(target) => tokio::task::spawn_blocking(move || super::ftp::exchange(target))
            .await
            .unwrap_or_else(|e| Err(LinkError { message: format!("the FTP round stopped: {e}"), fix: "see the host's log".into() })),
    }
}
