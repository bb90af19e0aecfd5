//! An in-process server on 127.0.0.1:0 with a fresh SQLite data dir (or a fresh
//! PostgreSQL schema), and helpers to talk to it.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use allot_api::*;
use allot_server::client::Client;
use allot_server::config::{Limits, SchedulerConfig};
use allot_server::store::{PgStore, SqliteStore, Store};
use allot_server::{Options, Running};

pub const CLUSTER: &str = r#"
version = 1
flavors = [{ name = "H100" }]

[[nodes]]
name = "n{i}"
count = 2
at = "site/block/leaf"
flavor = "H100"
gpus = 8
cpus = 64
memory_gib = 512

[[tenants]]
path = "org-a"
quota = [{ flavor = "H100", nominal = 8 }]

[[tenants]]
path = "org-a/proj"

[[tenants]]
path = "org-a/other"

[[tenants]]
path = "org-b"
quota = [{ flavor = "H100", nominal = 8 }]

[[tenants]]
path = "org-b/proj"
"#;

pub struct TestServer {
    pub running: Option<Running>,
    pub base: String,
    pub admin: String,
    pub dir: Option<tempfile::TempDir>,
    /// PostgreSQL URL and schema, when on PostgreSQL.
    pub pg: Option<(String, String)>,
}

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

pub fn options(store: Arc<dyn Store>, limits: Limits) -> Options {
    Options {
        store,
        cluster: allot_core::Config::from_toml(CLUSTER).unwrap(),
        listen: "127.0.0.1:0".parse().unwrap(),
        scheduler: SchedulerConfig { min_pass_interval_ms: 2, max_pass_interval_ms: 50 },
        limits,
        tls: None,
        agents: Default::default(),
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(Limits::default()).await
    }

    pub async fn start_with(limits: Limits) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_dir(dir.path()).await.unwrap();
        let running = allot_server::start(options(Arc::new(store), limits)).await.unwrap();
        let admin = running.admin_token.clone().expect("a fresh store creates an admin token");
        TestServer { base: format!("http://{}", running.addr), running: Some(running), admin, dir: Some(dir), pg: None }
    }

    /// A server on a fresh schema of `ALLOT_TEST_DATABASE_URL`; `None` (saying so)
    /// when the variable is unset.
    pub async fn start_pg() -> Option<TestServer> {
        let Ok(url) = std::env::var("ALLOT_TEST_DATABASE_URL") else {
            eprintln!("ALLOT_TEST_DATABASE_URL is not set: skipping the PostgreSQL server test");
            return None;
        };
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let schema = format!("allot_api_{}_{}_{}", std::process::id(), SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed), nanos);
        let store = PgStore::connect(&url, Some(&schema)).await.unwrap();
        let running = allot_server::start(options(Arc::new(store), Limits::default())).await.unwrap();
        let admin = running.admin_token.clone().expect("a fresh store creates an admin token");
        Some(TestServer { base: format!("http://{}", running.addr), running: Some(running), admin, dir: None, pg: Some((url, schema)) })
    }

    /// Stops the server and starts another on the same data dir.
    pub async fn restart(&mut self) -> Option<String> {
        self.running.take().unwrap().shutdown().await;
        let store: Arc<dyn Store> = match &self.pg {
            Some((url, schema)) => Arc::new(PgStore::connect(url, Some(schema)).await.unwrap()),
            None => Arc::new(SqliteStore::open_dir(self.dir.as_ref().unwrap().path()).await.unwrap()),
        };
        let running = allot_server::start(options(store, Limits::default())).await.unwrap();
        let token = running.admin_token.clone();
        self.base = format!("http://{}", running.addr);
        self.running = Some(running);
        token
    }

    pub fn client(&self, token: &str) -> Client {
        Client::new(&self.base, Some(token)).unwrap()
    }

    pub fn anon(&self) -> Client {
        Client::new(&self.base, None).unwrap()
    }

    pub fn admin(&self) -> Client {
        self.client(&self.admin)
    }

    /// Creates a token and returns its secret.
    pub async fn token(&self, role: Role, tenant: Option<&str>, name: &str) -> String {
        let req = TokenCreate { name: name.into(), role, tenant: tenant.map(String::from), user: None };
        let r = self.admin().post("/v1/tokens", &req).await.unwrap();
        assert_eq!(r.status, 201, "{}", r.text());
        r.json::<TokenCreated>().unwrap().token
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
        if let Some((url, schema)) = &self.pg {
            PgStore::drop_schema(url, schema).await.unwrap();
        }
    }
}

pub fn job(tenant: &str, gpus: u32) -> JobSubmit {
    JobSubmit { tenant: tenant.into(), gpus: Some(gpus), walltime_s: Some(3600), ..Default::default() }
}

pub async fn submit(c: &mut Client, j: &JobSubmit) -> u64 {
    let r = c.post("/v1/jobs", j).await.unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    r.json::<SubmitResponse>().unwrap().id
}

pub async fn get_job(c: &mut Client, id: u64) -> JobView {
    let r = c.get(&format!("/v1/jobs/{id}")).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().unwrap()
}

/// Waits (bounded) until a job reaches `state`; returns its view.
pub async fn wait_state(c: &mut Client, id: u64, state: JobState) -> JobView {
    for _ in 0..3000 {
        let v = get_job(c, id).await;
        if v.state == state {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} never reached {state:?}: {:?}", get_job(c, id).await);
}
