//! FTP folders (C4): both hosts reach one FTP server with a login and a
//! password, and use two folders on it, crossed: this host's `upload` is the
//! other's `download`. A message is stored under a temporary name and
//! renamed when complete, so the other host never takes a half-stored file;
//! one taken is deleted on the server only once it is kept here whole.

use std::time::Duration;

use suppaftp::FtpStream;

use super::link::{acceptable_name, keep, LinkError, Moved};
use super::Replica;

/// What a round on the FTP server needs, taken from the replica.
pub struct FtpTarget {
    name: String,
    me: String,
    peer: String,
    address: String,
    user: String,
    password: String,
    upload: String,
    download: String,
    outgoing: std::path::PathBuf,
    incoming: std::path::PathBuf,
}

/// The FTP target of a replica with `[replicas.NAME.ftp]`.
pub fn target(replica: &Replica<'_>) -> Option<FtpTarget> {
    let ftp = replica.config.ftp.as_ref()?;
    let (outgoing, incoming) = replica.folders.clone()?;
    Some(FtpTarget {
        name: replica.name.clone(),
        me: replica.me.clone(),
        peer: replica.config.peer.clone(),
        address: format!("{}:{}", ftp.host, ftp.port),
        user: ftp.user.clone(),
        password: crate::config::resolve_secret(&ftp.password),
        upload: ftp.upload.clone(),
        download: ftp.download.clone(),
        outgoing,
        incoming,
    })
}

/// One round: store what waits here in the upload folder, take what waits in the download folder.
pub fn exchange(target: FtpTarget) -> Result<Moved, LinkError> {
    let FtpTarget { name, me, peer, address, user, password, upload, download, outgoing, incoming } = target;
    let failed = |what: &str, error: suppaftp::FtpError| LinkError {
        message: format!("the FTP server at {address}: {what}: {error}"),
        fix: "check that it runs, and the folders exist and may be written; nothing is lost: messages wait here until it answers".into(),
    };
    let socket: std::net::SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&address.as_str())
        .ok()
        .and_then(|mut found| found.next())
        .ok_or_else(|| LinkError { message: format!("the FTP server's address {address} cannot be resolved"), fix: format!("correct [replicas.{name}.ftp] host") })?;
    let mut ftp = FtpStream::connect_timeout(socket, Duration::from_secs(20)).map_err(|e| failed("cannot connect", e))?;
    ftp.get_ref().set_read_timeout(Some(Duration::from_secs(60))).ok();
    if let Err(error) = ftp.login(user.as_str(), password.as_str()) {
        return Err(LinkError {
            message: format!("the FTP server at {address} refused the login `{user}`: {error}"),
            fix: format!("set [replicas.{name}.ftp] user and password to an account of the FTP server"),
        });
    }
    ftp.transfer_type(suppaftp::types::FileType::Binary).map_err(|e| failed("binary mode", e))?;
    let mut moved = Moved::default();
    for file in super::folder::waiting(&outgoing, &name, &me).map_err(|e| LinkError { message: e.to_string(), fix: String::new() })? {
        let file_name = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let bytes = std::fs::read(&file).map_err(|e| LinkError { message: format!("cannot read {}: {e}", file.display()), fix: String::new() })?;
        let partial = format!("{upload}/.{file_name}.partial");
        ftp.put_file(partial.as_str(), &mut bytes.as_slice()).map_err(|e| failed(&format!("cannot store {partial}"), e))?;
        ftp.rename(partial.as_str(), format!("{upload}/{file_name}").as_str()).map_err(|e| failed(&format!("cannot rename {partial}"), e))?;
        let _ = std::fs::remove_file(&file);
        moved.pushed += 1;
    }
    let listed = ftp.nlst(Some(download.as_str())).map_err(|e| failed(&format!("cannot list {download}"), e))?;
    let mut names: Vec<String> = listed.iter().map(|n| n.rsplit('/').next().unwrap_or(n).to_owned()).filter(|n| acceptable_name(n, &name, &peer)).collect();
    names.sort();
    for file_name in names {
        let remote = format!("{download}/{file_name}");
        let bytes = ftp.retr_as_buffer(&remote).map_err(|e| failed(&format!("cannot fetch {remote}"), e))?.into_inner();
        keep(&incoming, &file_name, &bytes).map_err(|e| LinkError { message: format!("cannot keep {file_name}: {e}"), fix: "check that the data folder is writable".into() })?;
        ftp.rm(remote.as_str()).map_err(|e| failed(&format!("cannot delete {remote}"), e))?;
        moved.pulled += 1;
    }
    let _ = ftp.quit();
    Ok(moved)
}
