//! The client commands of `allot`: submit, jobs, show, explain, cancel, hold,
//! release, logs, nodes, drain, quota, usage, tenants, tokens, completion, and
//! `allot up` (a local all-in-one cluster).
//!
//! Exit codes (also in `allot --help`):
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | done |
//! | 1 | any other error (a file that cannot be read, a bad job file) |
//! | 2 | bad command line (usage) |
//! | 3 | no server configured, or it cannot be reached |
//! | 4 | the token is missing, unknown, or not allowed to do that (401, 403) |
//! | 5 | no such job, node or token (404) |
//! | 6 | the server refused the request as invalid (400, 413, 415) |
//! | 7 | conflicts with the current state, e.g. cancelling a finished job (409) |
//! | 8 | the server failed or is unavailable (5xx) |
//! | 9 | TLS: the server's certificate is not trusted, or the handshake failed |

pub mod config;
pub mod output;
pub mod submit;
pub mod time;
pub mod tls;
pub mod up;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use allot_api::*;
use allot_server::client::{Client, ClientError};
use clap::Subcommand;

use self::config::ClientConfig;
use self::output::{Output, Table, clock, gpus};
use self::time::human;

/// The exit codes, for `allot --help`.
pub const EXIT_CODES: &str = "Exit codes: 0 done; 1 other error; 2 bad command line; 3 no server configured or unreachable; \
4 token missing or not allowed; 5 not found; 6 request refused as invalid; 7 conflicts with the current state; 8 server error; \
9 TLS: the server's certificate is not trusted or the handshake failed.";

/// Options every client command takes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Global {
    /// The server, http://HOST:PORT (default: the client config; `allot up` writes one).
    #[arg(long, env = "ALLOT_SERVER", global = true)]
    pub server: Option<String>,
    /// API token (default: the client config).
    #[arg(long, env = "ALLOT_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// Client config file (default: .allot/client.toml here or above, then ~/.config/allot/client.toml).
    #[arg(long, env = "ALLOT_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// table (default), json, or quiet (ids only).
    #[arg(long, value_enum, global = true)]
    pub output: Option<Output>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start a local all-in-one cluster: server, agents (real or emulated GPUs), dashboard.
    Up(up::Args),
    /// Submit a job from flags, a TOML job file, or a script with #SBATCH directives.
    #[command(
        after_help = "Examples:\n  allot submit --gpus 8 -- python train.py\n  allot submit --nodes 4 --gpus-per-node 8 --time 2:00:00 -- torchrun train.py\n  allot submit job.toml\n  allot submit train.sbatch          # #SBATCH --nodes, --gpus-per-node, --time, --job-name ..."
    )]
    Submit {
        #[command(flatten)]
        args: Box<submit::SubmitArgs>,
        #[command(flatten)]
        g: Global,
    },
    /// List jobs: pending (with reasons and estimated start), running, and recently ended.
    Jobs {
        /// Only jobs in this state (pending, held, running, stopping, completed, cancelled, failed).
        #[arg(long)]
        state: Option<String>,
        /// Every job, ended ones included.
        #[arg(long, short = 'a')]
        all: bool,
        /// Only jobs of this tenant's subtree.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this user's jobs.
        #[arg(long)]
        user: Option<String>,
        /// At most this many jobs.
        #[arg(long, default_value_t = 200)]
        limit: u32,
        #[command(flatten)]
        g: Global,
    },
    /// Show one job (with --output json: the job as one JSON object).
    Show {
        id: String,
        #[command(flatten)]
        g: Global,
    },
    /// Why a job is not running: reason, position in the queue, estimated start.
    Explain {
        id: String,
        #[command(flatten)]
        g: Global,
    },
    /// Cancel jobs (running ones are stopped).
    Cancel {
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        g: Global,
    },
    /// Hold pending jobs: they wait until released.
    Hold {
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        g: Global,
    },
    /// Release held jobs.
    Release {
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        g: Global,
    },
    /// Print a job's output; -f follows it until the job ends.
    Logs {
        id: String,
        /// Keep printing as the job writes (waiting first for a pending job to start).
        #[arg(long, short = 'f')]
        follow: bool,
        #[command(flatten)]
        g: Global,
    },
    /// List the GPU servers: flavor, place, free GPUs, health, jobs.
    Nodes {
        #[command(flatten)]
        g: Global,
    },
    /// Drain a node (admin): nothing new starts there and its jobs are requeued.
    Drain {
        node: String,
        /// Only cordon: nothing new starts, running jobs stay.
        #[arg(long)]
        cordon: bool,
        /// Undo: the node takes work again.
        #[arg(long)]
        undo: bool,
        #[command(flatten)]
        g: Global,
    },
    /// Quotas: nominal, used, borrowed, lent, budget left.
    Quota {
        /// Only this tenant's subtree.
        tenant: Option<String>,
        #[command(flatten)]
        g: Global,
    },
    /// GPU-hours by tenant, project, user or flavor over a time range.
    Usage {
        /// Group by tenant (default), project, user or flavor.
        #[arg(long, default_value = "tenant")]
        by: String,
        /// From (2026-01-01, RFC 3339, or ms since the epoch; default: the beginning).
        #[arg(long)]
        from: Option<String>,
        /// To (default: now).
        #[arg(long)]
        to: Option<String>,
        /// Only this tenant's subtree.
        #[arg(long)]
        tenant: Option<String>,
        /// CSV on standard output.
        #[arg(long)]
        csv: bool,
        #[command(flatten)]
        g: Global,
    },
    /// The tenant tree: weights, fair share, use, jobs, budgets; create, update, delete.
    Tenants {
        #[command(subcommand)]
        cmd: Option<TenantsCmd>,
        #[command(flatten)]
        g: Global,
    },
    /// API tokens (admins and tenant admins): list, create, revoke.
    Tokens {
        #[command(subcommand)]
        cmd: Option<TokensCmd>,
        #[command(flatten)]
        g: Global,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion { shell: clap_complete::Shell },
}

#[derive(Subcommand, Debug)]
pub enum TokensCmd {
    /// List tokens (never their secrets).
    List,
    /// Create a token; its secret is printed once.
    Create {
        /// A name for the token (listed by `allot tokens`).
        name: String,
        /// What the token may do.
        #[arg(long, value_enum, default_value_t = RoleArg::User)]
        role: RoleArg,
        /// The tenant a tenant_admin or user token belongs to.
        #[arg(long)]
        tenant: Option<String>,
        /// The user it acts as (default: NAME).
        #[arg(long)]
        user: Option<String>,
    },
    /// Revoke a token at once.
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
pub enum TenantsCmd {
    /// The tenant tree (the default).
    List,
    /// Create a tenant under an existing one (admins; tenant admins inside their tenant).
    Create {
        /// Its path, e.g. `nation/ai-centre/new-lab`: the parent must exist.
        path: String,
        /// Fair-share weight among its siblings (default 1).
        #[arg(long)]
        weight: Option<f64>,
        /// A quota, FLAVOR=NOMINAL[,borrow=GPUS][,lend=GPUS]; repeat for more flavors.
        #[arg(long = "quota", value_name = "QUOTA")]
        quotas: Vec<String>,
    },
    /// Change a tenant's weight or quotas (what is not given stays).
    Update {
        path: String,
        #[arg(long)]
        weight: Option<f64>,
        /// A quota, FLAVOR=NOMINAL[,borrow=GPUS][,lend=GPUS]; repeat for more flavors.
        #[arg(long = "quota", value_name = "QUOTA")]
        quotas: Vec<String>,
    },
    /// Delete a tenant with no child tenants and no live jobs; its tokens are revoked.
    Delete { path: String },
}

/// Parses `FLAVOR=NOMINAL[,borrow=GPUS][,lend=GPUS]`.
fn parse_quota(raw: &str) -> Result<TenantQuota> {
    let bad = |why: &str| CliError::new(2, format!("--quota `{raw}`: {why} (FLAVOR=NOMINAL[,borrow=GPUS][,lend=GPUS])"));
    let num = |v: &str| v.trim().parse::<f64>().map_err(|_| bad(&format!("`{v}` is not a number of GPUs")));
    let mut parts = raw.split(',');
    let (flavor, nominal) = parts.next().and_then(|p| p.split_once('=')).ok_or_else(|| bad("no FLAVOR=NOMINAL"))?;
    if flavor.trim().is_empty() {
        return Err(bad("no flavor"));
    }
    let mut q = TenantQuota { flavor: flavor.trim().to_string(), nominal: num(nominal)?, borrowing_limit: None, lending_limit: None };
    for p in parts {
        match p.split_once('=') {
            Some(("borrow", v)) => q.borrowing_limit = Some(num(v)?),
            Some(("lend", v)) => q.lending_limit = Some(num(v)?),
            _ => return Err(bad(&format!("`{p}` is neither borrow=GPUS nor lend=GPUS"))),
        }
    }
    Ok(q)
}

/// An error a person can act on, and its exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(code: u8, message: impl Into<String>) -> CliError {
        CliError { code, message: message.into(), hint: None }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> CliError {
        self.hint = Some(hint.into());
        self
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> CliError {
        CliError::new(1, e.to_string())
    }
}

/// The role of a new token.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleArg {
    /// Everything.
    Admin,
    /// Jobs, tokens, quotas and budgets inside its tenant's subtree (needs --tenant).
    #[value(name = "tenant_admin", alias = "tenant-admin")]
    TenantAdmin,
    /// Its tenant's jobs (needs --tenant).
    User,
    /// A node agent (`allot agent`): the agent link only.
    Node,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::TenantAdmin => Role::TenantAdmin,
            RoleArg::User => Role::User,
            RoleArg::Node => Role::Node,
        }
    }
}

type Result<T, E = CliError> = std::result::Result<T, E>;

/// Runs a client command. `command` builds the whole CLI (for completions).
pub fn run(cmd: Command, command: fn() -> clap::Command) -> ExitCode {
    let r = match cmd {
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut command(), "allot", &mut std::io::stdout());
            Ok(())
        }
        Command::Up(args) => up::run(args),
        other => match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt.block_on(dispatch(other)),
            Err(e) => Err(CliError::new(1, format!("cannot start: {e}"))),
        },
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A closed pipe (`allot jobs | head`) is not an error.
            if e.message.contains("Broken pipe") {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {}", e.message);
            if let Some(h) = e.hint {
                eprintln!("  hint: {h}");
            }
            ExitCode::from(e.code)
        }
    }
}

/// A connected client and what the config says.
pub struct Ctx {
    pub client: Client,
    pub server: String,
    /// The CA certificate file trusted for an https server (named in TLS errors).
    pub ca: Option<PathBuf>,
    pub output: Output,
    pub tenant: Option<String>,
}

pub fn connect(g: &Global) -> Result<Ctx> {
    let path = config::discover(g.config.as_deref());
    let file = match &path {
        Some(p) if p.is_file() || g.config.is_some() => ClientConfig::load(p).map_err(|e| CliError::new(1, e))?,
        _ => ClientConfig::default(),
    };
    let server = g.server.clone().or(file.server.clone()).ok_or_else(|| {
        CliError::new(3, "no allot server configured")
            .hint("start a local one with `allot up` (it writes .allot/client.toml), or give --server URL (or ALLOT_SERVER)")
    })?;
    let token = g.token.clone().or(file.token.clone());
    let mut ca_used = None;
    let client = if server.starts_with("https://") {
        let ca = file.ca_cert.clone().or_else(|| std::env::var_os("ALLOT_CA_CERT").map(PathBuf::from)).ok_or_else(|| {
            CliError::new(3, format!("{server} is https: allot needs the CA certificate that signed it"))
                .hint("set ca_cert in the client config, or ALLOT_CA_CERT=FILE.pem")
        })?;
        let pem = std::fs::read(&ca).map_err(|e| CliError::new(1, format!("cannot read {}: {e}", ca.display())))?;
        let tls = ca_config(&ca, &pem)?;
        ca_used = Some(ca);
        Client::with_tls(&server, token.as_deref(), tls)
    } else {
        Client::new(&server, token.as_deref())
    }
    .map_err(|e| CliError::new(3, e.to_string()).hint("a server URL looks like http://127.0.0.1:7070"))?;
    Ok(Ctx { client, server, ca: ca_used, output: g.output.unwrap_or_default(), tenant: file.tenant })
}

/// The TLS client config trusting the CA certificates of `pem` (read from `path`).
fn ca_config(path: &std::path::Path, pem: &[u8]) -> Result<std::sync::Arc<rustls::ClientConfig>> {
    let bad = |why: &str| {
        CliError::new(1, format!("{}: {why}", path.display()))
            .hint("ca_cert (or ALLOT_CA_CERT) names the PEM file of the CA certificate that signed the server's certificate")
    };
    if !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(bad("holds no PEM certificate (-----BEGIN CERTIFICATE-----)"));
    }
    allot_server::tls::client_config(pem).map_err(|e| match e {
        allot_server::tls::TlsError::Pem { message, .. } => bad(&format!("a certificate in it cannot be read ({message})")),
        _ => bad("a certificate in it is not usable as a trusted CA certificate"),
    })
}

/// Maps a client error to a message and an exit code (`Ctx::err` also names the
/// trusted CA file in TLS errors).
pub fn api_error(server: &str, e: ClientError) -> CliError {
    match e {
        ClientError::Connect { addr, source } => CliError::new(3, format!("cannot reach the allot server at {addr}: {source}"))
            .hint(format!("is it running? `allot up` starts one; the client uses {server} (--server, ALLOT_SERVER, or the client config)")),
        ClientError::Tls(io) => tls::failure(server, None, &io),
        ClientError::Url(u) => CliError::new(3, format!("`{u}` is not a server URL")).hint("a server URL looks like http://127.0.0.1:7070"),
        ClientError::Status { status, body } => {
            let (msg, field) = match serde_json::from_str::<ErrorBody>(&body) {
                Ok(b) => (b.message, b.field),
                Err(_) => (body.trim().chars().take(300).collect(), None),
            };
            let msg = match field {
                Some(f) if !f.is_empty() => format!("{f}: {msg}"),
                _ => msg,
            };
            let (code, hint) = match status {
                401 => (4, Some("check the token: --token, ALLOT_TOKEN, or the client config (`allot up` prints the admin token)")),
                403 => (4, None),
                404 => (5, None),
                409 => (7, None),
                400 | 413 | 415 | 422 => (6, None),
                s if s >= 500 => (8, None),
                _ => (1, None),
            };
            let e = CliError::new(code, msg);
            match hint {
                Some(h) => e.hint(h),
                None => e,
            }
        }
        ClientError::Http(e) => CliError::new(8, format!("the connection to {server} broke: {e}")),
        ClientError::Decode(e) => CliError::new(8, format!("{server} answered with something this allot does not understand ({e})"))
            .hint("is the server the same version of allot as this client (`allot --version`)?"),
        ClientError::Request(e) => CliError::new(1, format!("cannot make the request: {e}")),
    }
}

impl Ctx {
    pub fn err(&self, e: ClientError) -> CliError {
        match e {
            ClientError::Tls(io) => tls::failure(&self.server, self.ca.as_ref().map(|p| p.display().to_string()).as_deref(), &io),
            other => api_error(&self.server, other),
        }
    }

    pub async fn get<T: serde::de::DeserializeOwned>(&mut self, path: &str) -> Result<T> {
        let r = self.client.get(path).await.map_err(|e| self.err(e))?;
        r.ok().map_err(|e| self.err(e))
    }

    pub async fn post<B: serde::Serialize, T: serde::de::DeserializeOwned>(&mut self, path: &str, body: &B) -> Result<T> {
        let r = self.client.post(path, body).await.map_err(|e| self.err(e))?;
        r.ok().map_err(|e| self.err(e))
    }

    pub async fn post_empty<T: serde::de::DeserializeOwned>(&mut self, path: &str) -> Result<T> {
        let r = self.client.post_empty(path).await.map_err(|e| self.err(e))?;
        r.ok().map_err(|e| self.err(e))
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let s = serde_json::to_string_pretty(v).map_err(|e| CliError::new(1, e.to_string()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}")?;
    Ok(())
}

fn print(s: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(s.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// A job id as typed: `42` or `job-42`... only digits name a job.
fn job_id(raw: &str) -> Result<u64> {
    let t = raw.trim().trim_start_matches('#');
    t.parse().map_err(|_| CliError::new(2, format!("`{raw}` is not a job id (a number, as `allot jobs` shows)")))
}

async fn dispatch(cmd: Command) -> Result<()> {
    match cmd {
        Command::Submit { args, g } => submit_cmd(*args, &g).await,
        Command::Jobs { state, all, tenant, user, limit, g } => jobs_cmd(&g, state, all, tenant, user, limit).await,
        Command::Show { id, g } => show_cmd(&g, &id).await,
        Command::Explain { id, g } => explain_cmd(&g, &id).await,
        Command::Cancel { ids, g } => act_cmd(&g, &ids, "cancel").await,
        Command::Hold { ids, g } => act_cmd(&g, &ids, "hold").await,
        Command::Release { ids, g } => act_cmd(&g, &ids, "release").await,
        Command::Logs { id, follow, g } => logs_cmd(&g, &id, follow).await,
        Command::Nodes { g } => nodes_cmd(&g).await,
        Command::Drain { node, cordon, undo, g } => drain_cmd(&g, &node, cordon, undo).await,
        Command::Quota { tenant, g } => quota_cmd(&g, tenant).await,
        Command::Usage { by, from, to, tenant, csv, g } => usage_cmd(&g, by, from, to, tenant, csv).await,
        Command::Tenants { cmd: None | Some(TenantsCmd::List), g } => tenants_cmd(&g).await,
        Command::Tenants { cmd: Some(cmd), g } => tenant_change_cmd(&g, cmd).await,
        Command::Tokens { cmd, g } => tokens_cmd(&g, cmd.unwrap_or(TokensCmd::List)).await,
        Command::Up(_) | Command::Completion { .. } => Ok(()),
    }
}

// ----- submit -----

async fn submit_cmd(args: submit::SubmitArgs, g: &Global) -> Result<()> {
    let mut warnings = vec![];
    let spec = match &args.file {
        None => submit::Spec::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| CliError::new(1, format!("cannot read {}: {e}", path.display())))?;
            if path.extension().is_some_and(|e| e == "toml") {
                submit::parse_job_file(&text).map_err(|e| CliError::new(1, format!("{}: {e}", path.display())))?
            } else {
                let (spec, w) = submit::parse_sbatch(&text);
                warnings = w.into_iter().map(|w| format!("{}: {w}", path.display())).collect();
                spec
            }
        }
    };
    let spec = submit::merge(&args, spec).map_err(|e| CliError::new(2, e))?;
    if spec.command.is_empty() {
        return Err(CliError::new(2, "nothing to run")
            .hint("put the command after `--` (allot submit --gpus 1 -- python train.py), or give a job file or script"));
    }
    let mut ctx = connect(g)?;
    let tenant = spec.tenant.clone().or(ctx.tenant.clone()).ok_or_else(|| {
        CliError::new(2, "no tenant to charge the job to")
            .hint("give --tenant PATH (or ALLOT_TENANT), or set `tenant` in the client config")
    })?;
    // `--gpus N` alone is split over whole nodes when one node cannot hold it.
    let node_gpus = if spec.gpus.is_some_and(|g| g > 1) && spec.nodes.is_none() && spec.gpus_per_node.is_none() {
        let nodes: NodeList = ctx.get("/v1/nodes").await?;
        nodes.nodes.iter().filter(|n| spec.flavors.is_empty() || spec.flavors.contains(&n.flavor)).map(|n| n.gpus).max()
    } else {
        None
    };
    let shape = submit::shape(spec.gpus, spec.nodes, spec.gpus_per_node, spec.gpu_fraction, node_gpus).map_err(|e| CliError::new(2, e))?;
    let job = submit::to_submit(spec, shape, tenant);
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let r: SubmitResponse = ctx.post("/v1/jobs", &job).await?;
    match ctx.output {
        Output::Quiet => print(&format!("{}\n", r.id)),
        Output::Json => print_json(&r),
        Output::Table => print(&format!("submitted job {}\n", r.id)),
    }
}

// ----- jobs -----

fn shape_of(j: &JobView) -> String {
    let s = &j.spec;
    match (s.gpus, s.gpu_milli) {
        (_, Some(m)) => gpus(f64::from(m) / 1000.0),
        (Some(g), _) if s.replicas > 1 => format!("{}x{}", s.replicas, g),
        (Some(g), _) => g.to_string(),
        _ => "-".into(),
    }
}

fn flavor_of(j: &JobView) -> String {
    match &j.placement {
        Some(p) => p.flavor.clone(),
        None if j.spec.flavors.is_empty() => "any".into(),
        None => j.spec.flavors.join(","),
    }
}

/// `waited 5m` or `ran 2h10m`.
fn times_of(j: &JobView, now: i64) -> String {
    match (j.started_at_ms, j.ended_at_ms) {
        (Some(s), Some(e)) => format!("ran {}", human(e - s)),
        (Some(s), None) => format!("ran {}", human(now - s)),
        (None, Some(e)) => format!("waited {}", human(e - j.submitted_at_ms)),
        (None, None) => format!("waited {}", human(now - j.submitted_at_ms)),
    }
}

fn start_of(ms: Option<i64>, now: i64) -> String {
    match ms {
        None => "-".into(),
        Some(t) if t <= now => "now".into(),
        Some(t) if t - now < 86_400_000 => format!("in {}", human(t - now)),
        Some(t) => clock(t),
    }
}

fn job_row(j: &JobView, now: i64, start: String, reason: String) -> Vec<String> {
    vec![
        j.id.to_string(),
        j.spec.name.clone().unwrap_or_else(|| "-".into()),
        j.tenant.clone(),
        j.state.as_str().to_string(),
        shape_of(j),
        flavor_of(j),
        times_of(j, now),
        start,
        reason,
    ]
}

const JOB_HEAD: &[&str] = &["ID", "NAME", "TENANT", "STATE", "GPUS", "FLAVOR", "WAITED/RAN", "EST.START", "REASON"];

async fn jobs_cmd(g: &Global, state: Option<String>, all: bool, tenant: Option<String>, user: Option<String>, limit: u32) -> Result<()> {
    let mut ctx = connect(g)?;
    let now = allot_server::sched::now_ms();
    if let Some(s) = &state
        && JobState::parse(s).is_none()
    {
        return Err(CliError::new(2, format!("unknown state `{s}` (pending, held, running, stopping, completed, cancelled, failed)")));
    }
    if all || state.is_some() || user.is_some() {
        // The plain listing, page by page.
        let mut jobs: Vec<JobView> = vec![];
        let mut cursor: Option<String> = None;
        while (jobs.len() as u32) < limit {
            let mut q = vec![format!("limit={}", (limit - jobs.len() as u32).min(1000))];
            for (k, v) in [("state", &state), ("tenant", &tenant), ("user", &user), ("cursor", &cursor)] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", urlencode(v)));
                }
            }
            let page: JobList = ctx.get(&format!("/v1/jobs?{}", q.join("&"))).await?;
            jobs.extend(page.jobs);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        return match ctx.output {
            Output::Json => print_json(&jobs),
            Output::Quiet => print(&jobs.iter().map(|j| format!("{}\n", j.id)).collect::<String>()),
            Output::Table => {
                let mut t = Table::new(JOB_HEAD);
                for j in &jobs {
                    t.row(job_row(j, now, "-".into(), String::new()));
                }
                print(&t.render())
            }
        };
    }
    let q: QueueView = ctx.get("/v1/queue").await?;
    let keep = |j: &JobView| tenant.as_deref().is_none_or(|t| allot_server::auth::in_subtree(&j.tenant, t.trim_matches('/')));
    let pending: Vec<&QueuedJob> = q.pending.iter().filter(|p| keep(&p.job)).collect();
    let running: Vec<&JobView> = q.running.iter().filter(|j| keep(j)).collect();
    let recent: Vec<&JobView> = q.recent.iter().filter(|j| keep(j)).take(10).collect();
    match ctx.output {
        Output::Json => print_json(&serde_json::json!({ "pending": pending, "running": running, "recent": recent })),
        Output::Quiet => {
            print(&pending.iter().map(|p| p.job.id).chain(running.iter().map(|j| j.id)).map(|id| format!("{id}\n")).collect::<String>())
        }
        Output::Table => {
            let mut t = Table::new(JOB_HEAD);
            for j in &running {
                t.row(job_row(j, now, "-".into(), String::new()));
            }
            for p in &pending {
                t.row(job_row(&p.job, now, start_of(p.estimated_start_ms, now), p.reason.clone()));
            }
            for j in &recent {
                t.row(job_row(j, now, "-".into(), j.message.clone().unwrap_or_default()));
            }
            if t.is_empty() {
                return print("no jobs (submit one: allot submit --gpus 1 -- COMMAND)\n");
            }
            print(&t.render())
        }
    }
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn show_cmd(g: &Global, raw: &str) -> Result<()> {
    let id = job_id(raw)?;
    let mut ctx = connect(g)?;
    let j: JobView = ctx.get(&format!("/v1/jobs/{id}")).await?;
    match ctx.output {
        Output::Json => print_json(&j),
        Output::Quiet => print(&format!("{}\n", j.state.as_str())),
        Output::Table => {
            let now = allot_server::sched::now_ms();
            let mut s = String::new();
            let mut kv = |k: &str, v: String| s.push_str(&format!("{k:<12} {v}\n"));
            kv("id", j.id.to_string());
            kv("name", j.spec.name.clone().unwrap_or_else(|| "-".into()));
            kv("state", j.state.as_str().into());
            kv("tenant", j.tenant.clone());
            kv("project", j.project.clone());
            kv("user", j.user.clone());
            // A job submitted without --priority names no class: the server runs it
            // in the cluster's default class, whose name this job record does not hold.
            kv("class", j.spec.class.clone().unwrap_or_else(|| "(the cluster's default class)".into()));
            kv("gpus", shape_of(&j));
            kv("flavor", flavor_of(&j));
            kv("walltime", j.spec.walltime_s.map_or("-".into(), |w| human(w as i64 * 1000)));
            kv("submitted", clock(j.submitted_at_ms));
            if let Some(t) = j.started_at_ms {
                kv("started", clock(t));
            }
            if let Some(t) = j.ended_at_ms {
                kv("ended", clock(t));
            }
            kv("time", times_of(&j, now));
            if let Some(p) = &j.placement {
                let nodes: Vec<String> = p.slots.iter().map(|s| s.node.clone()).collect();
                kv("nodes", nodes.join(","));
            }
            kv("command", shell_words(&j.spec.command));
            if let Some(m) = &j.message {
                kv("message", m.clone());
            }
            if matches!(j.state, JobState::Pending | JobState::Held) {
                let e: ExplainView = ctx.get(&format!("/v1/jobs/{id}/explain")).await?;
                kv("waiting", format!("{}: {}", e.reason, e.message));
                kv("est. start", start_of(e.estimated_start_ms, now));
            }
            print(&s)
        }
    }
}

fn shell_words(argv: &[String]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|a| {
            let a = if a.len() > 80 { format!("{}...", a.chars().take(77).collect::<String>()) } else { a.clone() };
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c)) {
                a
            } else {
                format!("'{}'", a.replace('\'', "'\\''").replace('\n', "\\n"))
            }
        })
        .collect();
    if words.is_empty() { "-".into() } else { words.join(" ") }
}

async fn explain_cmd(g: &Global, raw: &str) -> Result<()> {
    let id = job_id(raw)?;
    let mut ctx = connect(g)?;
    let e: ExplainView = ctx.get(&format!("/v1/jobs/{id}/explain")).await?;
    match ctx.output {
        Output::Json => print_json(&e),
        Output::Quiet => print(&format!("{}\n", e.reason)),
        Output::Table => {
            let now = allot_server::sched::now_ms();
            let mut s = format!("job {} is {}: {}\n", e.id, e.state.as_str(), e.message);
            if let Some(p) = e.position {
                s.push_str(&format!("position in the queue: {}\n", p + 1));
            }
            if e.estimated_start_ms.is_some() {
                s.push_str(&format!("estimated start: {}\n", start_of(e.estimated_start_ms, now)));
            }
            if let Some(h) = what_would_help(&e.reason) {
                s.push_str(&format!("what would help: {h}\n"));
            }
            print(&s)
        }
    }
}

/// What would let a job with this pending reason start.
pub fn what_would_help(reason: &str) -> Option<&'static str> {
    Some(match reason {
        "new" => "nothing: the next scheduling pass considers it",
        "held" => "`allot release ID`",
        "budget" => "a new GPU-hour budget for the tenant (an admin: POST /v1/budgets), or running in another project",
        "quota" => "running jobs of the tenant ending, a larger quota, or idle capacity that siblings lend",
        "no_capacity" => "running jobs ending, fewer GPUs, or another flavor (--flavor)",
        "topology" => "a looser topology constraint, or fewer replicas",
        "reserved" => "nothing: it holds a reservation and starts when the room frees",
        "behind_reservation" => "a shorter --time, so that it fits before the reservation starts",
        _ => return None,
    })
}

async fn act_cmd(g: &Global, ids: &[String], action: &str) -> Result<()> {
    let ids: Vec<u64> = ids.iter().map(|r| job_id(r)).collect::<Result<_>>()?;
    let mut ctx = connect(g)?;
    let mut first_err = None;
    for id in ids {
        match ctx.post_empty::<JobView>(&format!("/v1/jobs/{id}/{action}")).await {
            Ok(j) => match ctx.output {
                Output::Json => print_json(&j)?,
                Output::Quiet => print(&format!("{}\n", j.id))?,
                Output::Table => print(&format!("job {} {}\n", j.id, j.state.as_str()))?,
            },
            Err(e) => {
                eprintln!("error: job {id}: {}", e.message);
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        None => Ok(()),
        // Already said; keep the code.
        Some(e) => Err(CliError { message: format!("{action} failed for some jobs"), ..e }),
    }
}

async fn logs_cmd(g: &Global, raw: &str, follow: bool) -> Result<()> {
    use http_body_util::BodyExt;
    let id = job_id(raw)?;
    let mut ctx = connect(g)?;
    if follow {
        wait_until_started(&mut ctx, id).await?;
    }
    let path = format!("/v1/jobs/{id}/logs{}", if follow { "?follow=true" } else { "" });
    let (status, mut body) = ctx.client.stream(&path).await.map_err(|e| ctx.err(e))?;
    if !(200..300).contains(&status) {
        let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let e = ctx.err(ClientError::Status { status, body: text });
        if status == 404 && e.message.contains("no such route") {
            return Err(CliError::new(5, "this server keeps no job logs (it has no agent link)"));
        }
        return Err(e);
    }
    let mut out = std::io::stdout().lock();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CliError::new(8, format!("the log stream broke: {e}")))?;
        if let Ok(data) = frame.into_data() {
            out.write_all(&data)?;
            out.flush()?;
        }
    }
    Ok(())
}

/// `logs -f` right after `submit`: a job that has not started yet has no log, so
/// wait for it (saying why it waits) rather than fail.
async fn wait_until_started(ctx: &mut Ctx, id: u64) -> Result<()> {
    let mut told = false;
    loop {
        let e: ExplainView = ctx.get(&format!("/v1/jobs/{id}/explain")).await?;
        if !matches!(e.state, JobState::Pending | JobState::Held) {
            return Ok(());
        }
        if !told {
            eprintln!("job {id} is {} ({}): waiting for it to start; Ctrl-C stops waiting", e.state.as_str(), e.reason);
            told = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

// ----- nodes -----

async fn nodes_cmd(g: &Global) -> Result<()> {
    let mut ctx = connect(g)?;
    let list: NodeList = ctx.get("/v1/nodes").await?;
    match ctx.output {
        Output::Json => print_json(&list.nodes),
        Output::Quiet => print(&list.nodes.iter().map(|n| format!("{}\n", n.name)).collect::<String>()),
        Output::Table => {
            let mut t = Table::new(&["NODE", "FLAVOR", "AT", "GPUS", "FREE", "STATE", "JOBS"]);
            for n in &list.nodes {
                let state = if !n.up {
                    "down"
                } else if n.drained && n.running_jobs.is_empty() {
                    "drained"
                } else if n.drained {
                    "draining"
                } else if n.gpus_free == n.gpus {
                    "idle"
                } else if n.gpus_free == 0 {
                    "full"
                } else {
                    "mixed"
                };
                let jobs: Vec<String> = n.running_jobs.iter().map(u64::to_string).collect();
                t.row(vec![
                    n.name.clone(),
                    n.flavor.clone(),
                    n.at.clone(),
                    n.gpus.to_string(),
                    n.gpus_free.to_string(),
                    state.into(),
                    if jobs.is_empty() { "-".into() } else { jobs.join(",") },
                ]);
            }
            print(&t.render())
        }
    }
}

async fn drain_cmd(g: &Global, node: &str, cordon: bool, undo: bool) -> Result<()> {
    let mut ctx = connect(g)?;
    let action = match (undo, cordon) {
        (true, _) => "undrain",
        (false, true) => "cordon",
        (false, false) => "drain",
    };
    let n: NodeView = ctx.post_empty(&format!("/v1/nodes/{}/{action}", urlencode(node))).await?;
    match ctx.output {
        Output::Json => print_json(&n),
        Output::Quiet => print(&format!("{}\n", n.name)),
        Output::Table => {
            let what = match action {
                "undrain" => "takes work again".to_string(),
                "cordon" => "is cordoned: nothing new starts there".to_string(),
                _ => format!("is drained: nothing new starts there; {} running job(s) requeued", n.running_jobs.len()),
            };
            print(&format!("node {} {what}\n", n.name))
        }
    }
}

// ----- tenants, quotas, usage -----

async fn quota_cmd(g: &Global, tenant: Option<String>) -> Result<()> {
    let mut ctx = connect(g)?;
    let list: TenantUseList = ctx.get("/v1/tenants/use").await?;
    let rows: Vec<&TenantUse> = list
        .tenants
        .iter()
        .filter(|t| tenant.as_deref().is_none_or(|root| allot_server::auth::in_subtree(&t.path, root.trim_matches('/'))))
        .collect();
    match ctx.output {
        Output::Json => print_json(&rows),
        Output::Quiet => print(&rows.iter().map(|t| format!("{}\n", t.path)).collect::<String>()),
        Output::Table => {
            let mut t = Table::new(&["TENANT", "FLAVOR", "NOMINAL", "USED", "BORROWED", "LENT", "LENDABLE", "BUDGET LEFT"]);
            for u in rows {
                let budget = u.budget_remaining_gpu_hours.map_or("-".into(), |b| format!("{} GPU-h", gpus(b.round())));
                for f in &u.flavors {
                    t.row(vec![
                        u.path.clone(),
                        f.flavor.clone(),
                        gpus(f.nominal),
                        gpus(f.used),
                        gpus(f.borrowed),
                        gpus(f.lent),
                        gpus(f.lendable),
                        budget.clone(),
                    ]);
                }
                if u.flavors.is_empty() {
                    t.row(vec![u.path.clone(), "-".into(), "-".into(), "-".into(), "-".into(), "-".into(), "-".into(), budget]);
                }
            }
            print(&t.render())
        }
    }
}

async fn tenants_cmd(g: &Global) -> Result<()> {
    let mut ctx = connect(g)?;
    let list: TenantUseList = ctx.get("/v1/tenants/use").await?;
    match ctx.output {
        Output::Json => print_json(&list.tenants),
        Output::Quiet => print(&list.tenants.iter().map(|t| format!("{}\n", t.path)).collect::<String>()),
        Output::Table => {
            let mut t = Table::new(&["TENANT", "WEIGHT", "FAIR SHARE", "USE SHARE", "GPUS USED", "RUNNING", "PENDING", "BUDGET LEFT"]);
            for u in &list.tenants {
                let used: f64 = u.flavors.iter().map(|f| f.used).sum();
                t.row(vec![
                    u.path.clone(),
                    gpus(u.weight),
                    format!("{:.0}%", u.fair_share * 100.0),
                    format!("{:.0}%", u.use_share * 100.0),
                    gpus(used),
                    u.running_jobs.to_string(),
                    u.pending_jobs.to_string(),
                    u.budget_remaining_gpu_hours.map_or("-".into(), |b| format!("{} GPU-h", gpus(b.round()))),
                ]);
            }
            print(&t.render())
        }
    }
}

async fn tenant_change_cmd(g: &Global, cmd: TenantsCmd) -> Result<()> {
    let mut ctx = connect(g)?;
    let url = |path: &str| format!("/v1/tenants/{}", urlencode(path.trim_matches('/')));
    let view: TenantView = match cmd {
        TenantsCmd::List => return tenants_cmd(g).await,
        TenantsCmd::Create { path, weight, quotas } => {
            let path = path.trim_matches('/');
            let (parent, name) = match path.rsplit_once('/') {
                Some((p, n)) => (Some(p.to_string()), n.to_string()),
                None => (None, path.to_string()),
            };
            let quotas = quotas.iter().map(|q| parse_quota(q)).collect::<Result<Vec<_>>>()?;
            ctx.post("/v1/tenants", &TenantCreate { parent, name, weight, quotas }).await?
        }
        TenantsCmd::Update { path, weight, quotas } => {
            if weight.is_none() && quotas.is_empty() {
                return Err(CliError::new(2, "nothing to change: give --weight or --quota"));
            }
            let quotas = quotas.iter().map(|q| parse_quota(q)).collect::<Result<Vec<_>>>()?;
            let r = ctx.client.patch(&url(&path), &TenantUpdate { weight, quotas }).await.map_err(|e| api_error(&ctx.server, e))?;
            r.ok().map_err(|e| api_error(&ctx.server, e))?
        }
        TenantsCmd::Delete { path } => {
            let r = ctx.client.delete(&url(&path)).await.map_err(|e| api_error(&ctx.server, e))?;
            if !(200..300).contains(&r.status) {
                return Err(api_error(&ctx.server, ClientError::Status { status: r.status, body: r.text() }));
            }
            let path = path.trim_matches('/');
            return match ctx.output {
                Output::Json => print_json(&serde_json::json!({ "deleted": path })),
                Output::Quiet => print(&format!("{path}\n")),
                Output::Table => print(&format!("tenant {path} deleted\n")),
            };
        }
    };
    match ctx.output {
        Output::Json => print_json(&view),
        Output::Quiet => print(&format!("{}\n", view.path)),
        Output::Table => {
            let mut t = Table::new(&["TENANT", "WEIGHT", "FLAVOR", "NOMINAL", "BORROWING LIMIT", "LENDING LIMIT", "USED"]);
            let limit = |v: Option<f64>| v.map_or("-".into(), gpus);
            for q in &view.quotas {
                t.row(vec![
                    view.path.clone(),
                    gpus(view.weight),
                    q.flavor.clone(),
                    gpus(q.nominal),
                    limit(q.borrowing_limit),
                    limit(q.lending_limit),
                    gpus(q.used),
                ]);
            }
            print(&t.render())
        }
    }
}

async fn usage_cmd(g: &Global, by: String, from: Option<String>, to: Option<String>, tenant: Option<String>, csv: bool) -> Result<()> {
    let mut ctx = connect(g)?;
    let mut q = vec![format!("by={}", urlencode(&by))];
    for (k, v) in [("from", &from), ("to", &to), ("tenant", &tenant)] {
        if let Some(v) = v {
            q.push(format!("{k}={}", urlencode(v)));
        }
    }
    if csv {
        q.push("format=csv".into());
        let r = ctx.client.get(&format!("/v1/usage?{}", q.join("&"))).await.map_err(|e| ctx.err(e))?;
        if !(200..300).contains(&r.status) {
            return Err(ctx.err(ClientError::Status { status: r.status, body: r.text() }));
        }
        return print(&r.text());
    }
    let rep: UsageReport = ctx.get(&format!("/v1/usage?{}", q.join("&"))).await?;
    match ctx.output {
        Output::Json => print_json(&rep),
        Output::Quiet => print(&rep.rows.iter().map(|r| format!("{}\n", r.key)).collect::<String>()),
        Output::Table => {
            let mut t = Table::new(&[&by.to_uppercase(), "GPU-HOURS", "RUNS"]);
            for r in &rep.rows {
                t.row(vec![r.key.clone(), format!("{:.2}", r.gpu_hours), r.runs.to_string()]);
            }
            print(&format!("GPU-hours from {} to {}\n{}", clock(rep.from_ms), clock(rep.to_ms), t.render()))
        }
    }
}

// ----- tokens -----

async fn tokens_cmd(g: &Global, cmd: TokensCmd) -> Result<()> {
    let mut ctx = connect(g)?;
    match cmd {
        TokensCmd::List => {
            let list: TokenList = ctx.get("/v1/tokens").await?;
            match ctx.output {
                Output::Json => print_json(&list.tokens),
                Output::Quiet => print(&list.tokens.iter().map(|t| format!("{}\n", t.id)).collect::<String>()),
                Output::Table => {
                    let mut t = Table::new(&["ID", "NAME", "ROLE", "TENANT", "USER", "CREATED", "REVOKED"]);
                    for k in &list.tokens {
                        t.row(vec![
                            k.id.to_string(),
                            k.name.clone(),
                            k.role.as_str().into(),
                            k.tenant.clone().unwrap_or_else(|| "-".into()),
                            k.user.clone(),
                            clock(k.created_at_ms),
                            if k.revoked { "yes".into() } else { "no".into() },
                        ]);
                    }
                    print(&t.render())
                }
            }
        }
        TokensCmd::Create { name, role, tenant, user } => {
            let made: TokenCreated = ctx.post("/v1/tokens", &TokenCreate { name, role: role.into(), tenant, user }).await?;
            match ctx.output {
                Output::Json => print_json(&made),
                Output::Quiet => print(&format!("{}\n", made.token)),
                Output::Table => print(&format!(
                    "token {} ({}, {}): {}\nthe secret is shown this once; it is stored hashed\n",
                    made.info.id,
                    made.info.name,
                    made.info.role.as_str(),
                    made.token
                )),
            }
        }
        TokensCmd::Revoke { id } => {
            let id: u64 = id.trim().parse().map_err(|_| CliError::new(2, format!("`{id}` is not a token id")))?;
            let r = ctx.client.delete(&format!("/v1/tokens/{id}")).await.map_err(|e| ctx.err(e))?;
            let v: TokenView = r.ok().map_err(|e| ctx.err(e))?;
            match ctx.output {
                Output::Json => print_json(&v),
                Output::Quiet => print(&format!("{}\n", v.id)),
                Output::Table => print(&format!("token {} ({}) revoked\n", v.id, v.name)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_and_url_encoding() {
        assert_eq!(job_id("42").unwrap(), 42);
        assert_eq!(job_id(" #7 ").unwrap(), 7);
        assert_eq!(job_id("x").unwrap_err().code, 2);
        assert_eq!(urlencode("a/b c&d"), "a/b%20c%26d");
    }

    #[test]
    fn quotas_parse_from_the_command_line() {
        let q = parse_quota("H100-80G=8,borrow=4,lend=2").unwrap();
        assert_eq!((q.flavor.as_str(), q.nominal, q.borrowing_limit, q.lending_limit), ("H100-80G", 8.0, Some(4.0), Some(2.0)));
        assert_eq!(parse_quota("B200=0.5").unwrap().nominal, 0.5);
        for bad in ["H100", "=8", "H100=x", "H100=8,borrow", "H100=8,steal=1"] {
            assert_eq!(parse_quota(bad).unwrap_err().code, 2, "{bad}");
        }
    }

    #[test]
    fn api_errors_map_to_exit_codes() {
        let st = |status: u16, body: &str| api_error("s", ClientError::Status { status, body: body.into() });
        assert_eq!(st(404, r#"{"code":"not_found","message":"job 9 not found"}"#).code, 5);
        assert_eq!(st(404, r#"{"code":"not_found","message":"job 9 not found"}"#).message, "job 9 not found");
        let e = st(400, r#"{"code":"invalid","message":"unknown flavor","field":"flavors"}"#);
        assert_eq!((e.code, e.message.as_str()), (6, "flavors: unknown flavor"));
        assert_eq!(st(401, "{}").code, 4);
        assert!(st(401, "{}").hint.is_some());
        assert_eq!(st(403, "x").code, 4);
        assert_eq!(st(409, "x").code, 7);
        assert_eq!(st(503, "<html>").code, 8);
        let e = api_error("http://x:1", ClientError::Connect { addr: "x:1".into(), source: std::io::Error::other("refused") });
        assert_eq!(e.code, 3);
        assert!(e.hint.unwrap().contains("allot up"));
    }

    #[test]
    fn every_reason_says_what_would_help() {
        for r in ["new", "held", "budget", "quota", "no_capacity", "topology", "reserved", "behind_reservation"] {
            assert!(what_would_help(r).is_some(), "{r}");
        }
    }
}
