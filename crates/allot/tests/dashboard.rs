//! The dashboard in a real browser: headless Chromium driven through WebDriver
//! (chromedriver) at phone width: 390 px, by Chromium's mobile emulation (a headless
//! window is at least 500 px wide), and no page scrolls sideways. `allot up` with
//! one emulated node; sign in with the admin token, see the overview, submit a job
//! through the API and watch it in the queue go pending or running, see the
//! tenant's use, read its log on the job page, see it done, and the nodes page.
//!
//! Needs `chromium` and `chromium-driver` (Debian packages; `.ci/run` installs
//! them). Without them the test fails in CI (`CI=true`) and is skipped elsewhere.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use allot_api::{JobSubmit, SubmitResponse};
use fantoccini::{Client, ClientBuilder, Locator};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn find(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find(|n| Command::new("sh").args(["-c", &format!("command -v {n}")]).output().is_ok_and(|o| o.status.success()))
        .map(|n| n.to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `f` until it is true (at most a minute: a slow machine is not a failure).
async fn until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Phone width, in CSS pixels.
const PHONE: u64 = 390;

/// The page is laid out for the phone's width and nothing in it is wider.
async fn fits_the_phone(c: &Client, page: &str) {
    let v = c
        .execute("return [document.documentElement.clientWidth, document.documentElement.scrollWidth];", vec![])
        .await
        .unwrap_or_else(|e| panic!("{page}: cannot measure the page: {e}"));
    let (width, scroll) = (v[0].as_u64().unwrap_or(0), v[1].as_u64().unwrap_or(u64::MAX));
    assert_eq!(width, PHONE, "{page}: the page is not laid out at phone width");
    assert!(scroll <= PHONE, "{page}: the page is {scroll} px wide at a {PHONE} px phone width (it scrolls sideways)");
}

async fn text(c: &Client, css: &str) -> Option<String> {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.ok(),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_watch_a_job_run_and_read_its_log() {
    let (Some(chrome), Some(driver)) = (find(&["chromium", "chromium-browser", "google-chrome"]), find(&["chromedriver"])) else {
        let msg = "chromium and chromedriver are needed for the dashboard browser test (apt-get install -y chromium chromium-driver)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{msg}");
        }
        eprintln!("skipping: {msg}");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut up = Command::new(env!("CARGO_BIN_EXE_allot"))
        .args(["up", "--emulate", "1x8xH200", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .env_remove("XDG_CONFIG_HOME")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(up.stdout.take().unwrap()).lines();
    let up = Kill(up);
    let (mut url, mut token) = (String::new(), String::new());
    while url.is_empty() || token.is_empty() {
        let line = lines.next().expect("allot up prints its URL and token").unwrap();
        if let Some(u) = line.trim().strip_prefix("dashboard:") {
            url = u.trim().trim_end_matches('/').to_string();
        }
        if let Some(t) = line.trim().strip_prefix("admin token:") {
            token = t.trim().to_string();
        }
    }
    std::thread::spawn(move || for _ in lines {});

    let port = free_port();
    let driver = Kill(Command::new(driver).arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap());
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chrome_binary(&chrome),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            "mobileEmulation": { "deviceMetrics": { "width": PHONE, "height": 844, "pixelRatio": 1.0 } }
        }),
    );
    let mut browser = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while browser.is_none() {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => browser = Some(c),
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot start a browser session: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    }
    let c = browser.unwrap();

    // sign in
    c.goto(&format!("{url}/")).await.unwrap();
    let field = c.wait().for_element(Locator::Css("#token")).await.unwrap();
    field.send_keys(&token).await.unwrap();
    c.find(Locator::Css("#signin")).await.unwrap().click().await.unwrap();
    // the overview: the node's 8 GPUs
    until("the overview shows 8 GPUs", || async { text(&c, "#gpus-total").await.as_deref() == Some("8") }).await;
    assert!(text(&c, "#capacity").await.unwrap_or_default().contains("H200-141G"));
    assert!(c.find(Locator::Css("#heatmap div[data-node='node-0']")).await.is_ok(), "the heat map shows the node");
    fits_the_phone(&c, "the overview").await;

    // the queue, then a job submitted through the API appears there live
    c.goto(&format!("{url}/#/queue")).await.unwrap();
    until("the queue page", || async { c.find(Locator::Css("#pending")).await.is_ok() }).await;
    let mut api = allot_server::client::Client::new(&url, Some(&token)).unwrap();
    let job = JobSubmit {
        tenant: "local".into(),
        name: Some("browser-job".into()),
        gpus: Some(8),
        command: vec!["sh".into(), "-c".into(), "echo hello-from-the-browser-test; sleep 8; echo bye".into()],
        ..Default::default()
    };
    let id = api.post("/v1/jobs", &job).await.unwrap().ok::<SubmitResponse>().unwrap().id;
    let row = format!("tr[data-job='{id}']");
    until("the job in the queue", || async { c.find(Locator::Css(&row)).await.is_ok() }).await;
    let running = format!("#running tr[data-job='{id}']");
    until("the job running", || async { c.find(Locator::Css(&running)).await.is_ok() }).await;
    fits_the_phone(&c, "the queue").await;

    // the tenant's use: its 8 GPUs
    c.goto(&format!("{url}/#/tenants")).await.unwrap();
    until("the tenant using 8 GPUs", || async { text(&c, "tr[data-tenant='local'] td.used").await.is_some_and(|t| t.starts_with("8 /")) })
        .await;
    fits_the_phone(&c, "the tenants").await;

    // the job page: its log, then done
    c.goto(&format!("{url}/#/job/{id}")).await.unwrap();
    until("the job's log", || async { text(&c, "#logs").await.is_some_and(|t| t.contains("hello-from-the-browser-test")) }).await;
    fits_the_phone(&c, "the job page").await;
    until("the job completed", || async {
        match c.find(Locator::Css("#job-state")).await {
            Ok(e) => e.attr("data-state").await.ok().flatten().as_deref() == Some("completed"),
            Err(_) => false,
        }
    })
    .await;
    c.goto(&format!("{url}/#/tenants")).await.unwrap();
    until("the tenant's use back to 0", || async {
        text(&c, "tr[data-tenant='local'] td.used").await.is_some_and(|t| t.starts_with("0 /"))
    })
    .await;
    c.goto(&format!("{url}/#/nodes")).await.unwrap();
    until("the nodes page", || async { c.find(Locator::Css("#nodes tr[data-node='node-0']")).await.is_ok() }).await;
    fits_the_phone(&c, "the nodes").await;
    c.close().await.unwrap();
    drop(driver);
    drop(up);
}

/// The browser binary itself (Debian's `chromium` is a wrapper script in /usr/bin
/// that chromedriver can run too).
fn chrome_binary(name: &str) -> String {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| name.to_string())
}
