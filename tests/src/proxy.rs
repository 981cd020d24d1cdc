//! An HTTP proxy on loopback that can hold back one answer: the request
//! reaches the server and is carried out, but the client never hears of it,
//! as when a network drops the answer or a server stalls after its commit.
//! One request per connection (each is forwarded with `Connection: close`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Which answer to hold back, and for how long before the connection is dropped.
struct Hold {
    request_prefix: String,
    skip: usize,
    stall: Duration,
}

pub struct HoldingProxy {
    pub port: u16,
    hold: Arc<Mutex<Option<Hold>>>,
    held: Arc<std::sync::atomic::AtomicUsize>,
}

impl HoldingProxy {
    /// A proxy to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> HoldingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let port = listener.local_addr().expect("bound address").port();
        let hold: Arc<Mutex<Option<Hold>>> = Arc::default();
        let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let upstream = upstream.to_owned();
        let (rule, count) = (hold.clone(), held.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, rule, count) = (upstream.clone(), rule.clone(), count.clone());
                tokio::spawn(async move {
                    let _ = forward(client, &upstream, &rule, &count).await;
                });
            }
        });
        HoldingProxy { port, hold, held }
    }

    /// Holds back the answer to the request after the first `skip` ones whose
    /// first line starts with `request_prefix` (e.g. `POST /time_entries.json`).
    pub fn hold_answer(&self, request_prefix: &str, skip: usize, stall: Duration) {
        *self.hold.lock().unwrap() = Some(Hold { request_prefix: request_prefix.to_owned(), skip, stall });
    }

    /// How many answers were held back.
    pub fn held(&self) -> usize {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn forward(mut client: TcpStream, upstream: &str, rule: &Mutex<Option<Hold>>, held: &std::sync::atomic::AtomicUsize) -> std::io::Result<()> {
    let request = read_request(&mut client).await?;
    let first_line = String::from_utf8_lossy(&request[..request.iter().position(|b| *b == b'\r').unwrap_or(0)]).into_owned();
    let stall = {
        let mut rule = rule.lock().unwrap();
        match rule.as_mut() {
            Some(hold) if first_line.starts_with(&hold.request_prefix) && hold.skip > 0 => {
                hold.skip -= 1;
                None
            }
            Some(hold) if first_line.starts_with(&hold.request_prefix) => rule.take().map(|h| h.stall),
            _ => None,
        }
    };
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(&request).await?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).await?;
    if let Some(stall) = stall {
        held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(stall).await;
        return Ok(());
    }
    client.write_all(&answer).await?;
    client.shutdown().await
}

/// One request: its head (with `Connection: close` in place of any
/// connection header) and its body by Content-Length.
async fn read_request(client: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        let n = client.read(&mut buffer).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        data.extend_from_slice(&buffer[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    while data.len() < head_end + length {
        let n = client.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buffer[..n]);
    }
    let mut lines: Vec<&str> = head.trim_end().split("\r\n").filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    lines.push("Connection: close");
    let mut request = format!("{}\r\n\r\n", lines.join("\r\n")).into_bytes();
    request.extend_from_slice(&data[head_end..]);
    Ok(request)
}
