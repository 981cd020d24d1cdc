//! A real headless Chromium for the dashboard tests, driven over WebDriver:
//! Debian's `chromium` and `chromium-driver` (`scripts/browser install`,
//! which `scripts/test` runs). Used by the end-to-end tests here and by the
//! host's own dashboard test (which includes this file).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// A chromedriver on a free port, ended with the test.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver ({e}): install Debian's chromium and chromium-driver (`scripts/browser install`; `scripts/test` does)"));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, port }
    }

    /// A new headless browser window, 1280 pixels wide.
    pub async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"] }),
        );
        // The WebDriver is on loopback: plain HTTP, no TLS.
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a headless Chromium session")
    }
}

/// Saves a screenshot as `target/screenshots/NAME.png`, and in the folder
/// `SYNCHOST_SCREENSHOTS` names (relative to the repository), if set.
pub async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut folders = vec![root.join("target/screenshots")];
    if let Ok(folder) = std::env::var("SYNCHOST_SCREENSHOTS") {
        folders.push(root.join(folder));
    }
    for folder in folders {
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join(format!("{name}.png")), &png).unwrap();
    }
}

/// Waits until the page shows `text` somewhere (as rendered: case aside,
/// since headings are set in capitals by style).
pub async fn shows(browser: &Client, text: &str) {
    let started = Instant::now();
    loop {
        let body = browser.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
        if body.to_lowercase().contains(&text.to_lowercase()) {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the page never showed `{text}`; it shows:\n{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Clicks the first element `css` selects, once it is there. A page that
/// keeps itself current may draw the element anew between finding and
/// clicking it: then it is found again.
pub async fn click(browser: &Client, css: &str) {
    for attempt in 0.. {
        let element = browser.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        match element.click().await {
            Ok(()) => return,
            Err(error) if attempt < 5 => {
                eprintln!("{css}: {error}; once more");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("{css}: {error}"),
        }
    }
}

/// Types into the first element `css` selects (found again if the page drew it anew).
pub async fn type_into(browser: &Client, css: &str, text: &str) {
    for attempt in 0.. {
        let element = browser.wait().at_most(Duration::from_secs(20)).for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}"));
        match element.send_keys(text).await {
            Ok(()) => return,
            Err(error) if attempt < 5 => {
                eprintln!("{css}: {error}; once more");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("{css}: {error}"),
        }
    }
}

/// Signs in to the dashboard at `base` with `token`, and waits for the user's name.
pub async fn sign_in(browser: &Client, base: &str, token: &str, shown_as: &str) {
    browser.goto(base).await.unwrap();
    shows(browser, "Paste the token").await;
    type_into(browser, "#token", token).await;
    click(browser, "#signin button").await;
    shows(browser, shown_as).await;
}
