//! Test harness: the real application on a random port, a fresh state DB, a fresh order DB of our
//! own shop schema (purchases, refunds, disputes) on SQLite, PostgreSQL or MariaDB, and the fake
//! helpdesks on loopback.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fake_helpdesk::{FakeHelpdesk, FakeHelpdeskConfig, Helpdesk};
use ltv_tagger::app::Application;
use ltv_tagger::config::RawSettings;
use ltv_tagger::domain::{Source, TicketId};
use ltv_tagger::http::webhooks::zendesk;
use ltv_tagger::state::{AuditRow, StateStore};
use sqlx::Connection;
use tokio_util::sync::CancellationToken;

pub const ZENDESK_SECRET: &str = "zd-signing-secret-for-tests";
pub const GORGIAS_TOKEN: &str = "gorgias-shared-token-for-tests";
pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const MARIADB_ADMIN: &str = "mysql://root@127.0.0.1:3306/mysql";

/// Our own shop schema: LTV = paid purchases − their refunds; disputes from a table of their own.
/// Grouped by customer, so an unknown customer yields no row at all.
pub const SHOP_QUERY: &str = "
select coalesce(sum(p.amount), 0)
       - coalesce((select sum(r.amount) from refund r
                   join purchase p2 on p2.id = r.purchase_id
                   join customer c2 on c2.id = p2.customer_id
                   where lower(c2.email) = :email), 0) as ltv,
       count(p.id) as orders,
       (select count(*) from dispute d join customer c3 on c3.id = d.customer_id
        where lower(c3.email) = :email) as disputes
from customer c
left join purchase p on p.customer_id = c.id and p.status = 'paid'
where lower(c.email) = :email
group by c.id";

/// (email as stored, [(amount, status, refunded)], disputes)
type Purchase = (&'static str, &'static str, Option<&'static str>);
pub const SHOP: &[(&str, &[Purchase], u32)] = &[
    // 1500.00 + 1200.50 − 200.50 refunded = 2500.00: exactly the gold threshold.
    (
        "gold@shop.test",
        &[
            ("1500.00", "paid", None),
            ("1200.50", "paid", Some("200.50")),
        ],
        0,
    ),
    // 2600.00 − 100.50 = 2499.50: the refund drops the customer below gold.
    (
        "almost@shop.test",
        &[("2600.00", "paid", Some("100.50"))],
        0,
    ),
    // Only paid purchases count: 600.00.
    (
        "pending@shop.test",
        &[("3000.00", "pending", None), ("600.00", "paid", None)],
        0,
    ),
    ("disputer@shop.test", &[("9000.00", "paid", None)], 1),
    ("small@shop.test", &[("20.00", "paid", None)], 0),
    // Stored in mixed case; webhooks send it in another case with spaces.
    ("Mixed.Case@Shop.Test", &[("700.00", "paid", None)], 0),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
    Mariadb,
}

/// A database created for one test.
pub struct TestDb {
    pub kind: Db,
    pub url: String,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

impl TestDb {
    pub async fn create(kind: Db, prefix: &str) -> TestDb {
        let name = unique(prefix);
        let (admin, url, dir) = match kind {
            Db::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!(
                    "sqlite://{}",
                    dir.path().join(format!("{name}.db")).display()
                );
                (None, url, Some(dir))
            }
            Db::Postgres => (
                Some(PG_ADMIN),
                format!("postgres://postgres@127.0.0.1:5432/{name}"),
                None,
            ),
            Db::Mariadb => (
                Some(MARIADB_ADMIN),
                format!("mysql://root@127.0.0.1:3306/{name}"),
                None,
            ),
        };
        if let Some(admin) = admin {
            admin_exec(admin, &format!("create database {name}"))
                .await
                .expect("create database");
        }
        TestDb {
            kind,
            url,
            name,
            _dir: dir,
        }
    }

    /// Runs statements against this database (for seeding).
    pub async fn exec(&self, statements: &[String]) {
        let url = match self.kind {
            Db::Sqlite => format!("{}?mode=rwc", self.url),
            _ => self.url.clone(),
        };
        let mut c = connect_any(&url).await.expect("connect");
        for s in statements {
            sqlx::query(s)
                .execute(&mut c)
                .await
                .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    }

    pub async fn drop_db(&self) {
        let (admin, sql) = match self.kind {
            Db::Sqlite => return,
            Db::Postgres => (
                PG_ADMIN,
                format!("drop database if exists {} with (force)", self.name),
            ),
            Db::Mariadb => (
                MARIADB_ADMIN,
                format!("drop database if exists {}", self.name),
            ),
        };
        let _ = admin_exec(admin, &sql).await;
    }
}

async fn connect_any(url: &str) -> Result<sqlx::AnyConnection, sqlx::Error> {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(url).await
}

async fn admin_exec(admin_url: &str, sql: &str) -> Result<(), sqlx::Error> {
    let mut c = connect_any(admin_url).await?;
    sqlx::query(sql).execute(&mut c).await.map(|_| ())
}

/// A fresh order DB holding [`SHOP`].
pub async fn shop_db(kind: Db) -> TestDb {
    let db = TestDb::create(kind, "ltv_shop").await;
    let money = match kind {
        Db::Postgres => "numeric(12,2)",
        _ => "decimal(12,2)",
    };
    let mut sql = vec![
        "create table customer (id integer primary key, email varchar(200) not null)".to_string(),
        format!("create table purchase (id integer primary key, customer_id integer not null, amount {money} not null, status varchar(20) not null)"),
        format!("create table refund (id integer primary key, purchase_id integer not null, amount {money} not null)"),
        "create table dispute (id integer primary key, customer_id integer not null, opened_at varchar(30))".to_string(),
    ];
    let (mut pid, mut rid, mut did) = (0, 0, 0);
    for (cid, (email, purchases, disputes)) in SHOP.iter().enumerate() {
        sql.push(format!(
            "insert into customer (id, email) values ({cid}, '{email}')"
        ));
        for (amount, status, refunded) in purchases.iter() {
            pid += 1;
            sql.push(format!("insert into purchase (id, customer_id, amount, status) values ({pid}, {cid}, {amount}, '{status}')"));
            if let Some(r) = refunded {
                rid += 1;
                sql.push(format!(
                    "insert into refund (id, purchase_id, amount) values ({rid}, {pid}, {r})"
                ));
            }
        }
        for _ in 0..*disputes {
            did += 1;
            sql.push(format!("insert into dispute (id, customer_id, opened_at) values ({did}, {cid}, '2026-01-02')"));
        }
    }
    db.exec(&sql).await;
    db
}

/// Options for [`spawn_app`].
pub struct AppOptions {
    pub state: Db,
    pub orders: Db,
    pub zendesk: bool,
    pub gorgias: bool,
    pub fake: FakeHelpdeskConfig,
    /// Changes to the settings before they are validated.
    pub tweak: Box<dyn FnOnce(&mut RawSettings) + Send>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            state: Db::Sqlite,
            orders: Db::Sqlite,
            zendesk: true,
            gorgias: true,
            fake: FakeHelpdeskConfig::default(),
            tweak: Box::new(|_| {}),
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub port: u16,
    pub http: reqwest::Client,
    pub fake: FakeHelpdesk,
    pub store: StateStore,
    pub state_db: TestDb,
    pub shop: TestDb,
    pub raw: RawSettings,
    pub stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Settings pointing at the given databases and fake (fast retries for tests).
pub fn test_settings(
    state_url: &str,
    shop_url: &str,
    fake: &FakeHelpdesk,
    cfg: &FakeHelpdeskConfig,
    zendesk: bool,
    gorgias: bool,
) -> RawSettings {
    let mut raw = RawSettings::load(None, "LTV_TAGGER_TEST_NOT_SET").expect("defaults load");
    raw.server.bind = "127.0.0.1:0".into();
    raw.server.shutdown_grace = Duration::from_secs(5);
    raw.state.url = state_url.into();
    raw.orders.url = shop_url.into();
    raw.orders.query = SHOP_QUERY.into();
    raw.orders.cache_ttl = Duration::ZERO;
    raw.worker.poll_interval = Duration::from_millis(50);
    raw.worker.retry_base = Duration::from_millis(100);
    raw.worker.retry_max = Duration::from_secs(2);
    raw.worker.lease = Duration::from_secs(3);
    if zendesk {
        fake.serve_zendesk_for(&mut raw, cfg, ZENDESK_SECRET);
        raw.zendesk.requests_per_minute = 60_000;
    }
    if gorgias {
        fake.serve_gorgias_for(&mut raw, cfg, GORGIAS_TOKEN);
        raw.gorgias.requests_per_window = 10_000;
    }
    raw
}

pub async fn spawn_app(opts: AppOptions) -> TestApp {
    let fake = FakeHelpdesk::start(opts.fake.clone())
        .await
        .expect("fake helpdesk");
    let state_db = TestDb::create(opts.state, "ltv_state").await;
    let shop = shop_db(opts.orders).await;
    let mut raw = test_settings(
        &state_db.url,
        &shop.url,
        &fake,
        &opts.fake,
        opts.zendesk,
        opts.gorgias,
    );
    (opts.tweak)(&mut raw);
    let settings = raw.validate().unwrap_or_else(|e| panic!("{e}"));
    let store = StateStore::connect_lazy(&settings.state).expect("store");
    let app = Application::build(settings).await.expect("app builds");
    let port = app.port();
    let stop = app.shutdown_token();
    let task = tokio::spawn(app.run_until_stopped());
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        port,
        http: reqwest::Client::new(),
        fake,
        store,
        state_db,
        shop,
        raw,
        stop,
        task: Some(task),
    }
}

pub fn now_ts() -> String {
    zendesk::timestamp(chrono::Utc::now())
}

/// A Zendesk trigger body as the README tells admins to write it.
pub fn trigger_body(ticket: u64, email: &str, tags: &str) -> String {
    serde_json::json!({
        "ticket_id": ticket.to_string(),
        "requester_email": email,
        "requester_id": "",
        "tags": tags,
    })
    .to_string()
}

pub fn gorgias_body(ticket: u64, email: &str) -> String {
    serde_json::json!({ "ticket_id": ticket.to_string(), "customer_email": email }).to_string()
}

impl TestApp {
    pub async fn post_zendesk(&self, body: &str, invocation: Option<&str>) -> reqwest::Response {
        post_zendesk_to(&self.http, &self.base, body, invocation)
            .await
            .expect("request")
    }

    pub async fn post_gorgias(&self, body: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self
            .http
            .post(format!("{}/webhooks/gorgias", self.base))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.header("X-Webhook-Token", t);
        }
        req.send().await.expect("request")
    }

    /// Waits (with a deadline, no fixed sleeps) for the ticket's audit rows.
    pub async fn wait_for_audit(&self, source: Source, ticket: u64, n: usize) -> Vec<AuditRow> {
        let id = TicketId::parse(&ticket.to_string()).expect("id");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let rows = self
                .store
                .audit(Some((source, id)), 100)
                .await
                .expect("audit");
            if rows.len() >= n {
                return rows;
            }
            assert!(
                Instant::now() < deadline,
                "ticket {ticket}: {} audit rows, wanted {n}",
                rows.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(self.store.pool())
            .await
            .expect("count")
    }

    /// Waits until no job is queued or running.
    pub async fn wait_idle(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let d = self.store.queue_depth().await.expect("depth");
            if d.queued == 0 && d.running == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "jobs still pending: {d:?}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn zendesk_tags(&self, ticket: u64) -> Vec<String> {
        self.fake.tags(Helpdesk::Zendesk, &ticket.to_string())
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
        self.store.pool().close().await;
        self.state_db.drop_db().await;
        self.shop.drop_db().await;
    }
}

// ---- the real binary, as a child process ----------------------------------------------------

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ltv-tagger"))
}

/// Writes settings as a TOML file for the binary (secrets included: it is a test file).
pub fn write_config(dir: &Path, raw: &RawSettings, secrets: &[(&str, &str, &str)]) -> PathBuf {
    let mut text = raw.to_redacted_toml();
    for (section, key, value) in secrets {
        // Replace the redacted line of that section's key.
        let header = format!("[{section}]");
        let start = text.find(&header).expect("section");
        let line = format!("{key} = \"[REDACTED]\"");
        let pos = text[start..].find(&line).map(|p| p + start).expect("key");
        text.replace_range(pos..pos + line.len(), &format!("{key} = {value:?}"));
    }
    let path = dir.join(format!("{}.toml", unique("config")));
    std::fs::write(&path, text).expect("write config");
    path
}

/// A running `ltv-tagger serve` process with its log captured to a file.
pub struct ServeProcess {
    pub child: tokio::process::Child,
    pub port: u16,
    pub log: PathBuf,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl ServeProcess {
    pub async fn start(
        config: &Path,
        port: u16,
        log: &Path,
        extra_env: &[(&str, &str)],
    ) -> ServeProcess {
        let logfile = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let mut cmd = tokio::process::Command::new(binary());
        cmd.arg("serve")
            .arg("--config")
            .arg(config)
            .env("LTV_TAGGER__SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("LTV_TAGGER__SERVER__LOG_FORMAT", "json")
            .stdout(Stdio::null())
            .stderr(Stdio::from(logfile))
            .kill_on_drop(true);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn ltv-tagger");
        let p = ServeProcess {
            child,
            port,
            log: log.to_path_buf(),
        };
        p.wait_live().await;
        p
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn wait_live(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let http = reqwest::Client::new();
        loop {
            if let Ok(r) = http.get(format!("{}/livez", self.base())).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "server did not come up; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn sigkill(&mut self) {
        let _ = self.child.start_kill();
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("pid");
        let status = std::process::Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(within, self.child.wait())
            .await
            .expect("process did not exit in time")
            .expect("wait")
    }
}

/// POSTs a signed Zendesk webhook to `base`.
pub async fn post_zendesk_to(
    http: &reqwest::Client,
    base: &str,
    body: &str,
    invocation: Option<&str>,
) -> reqwest::Result<reqwest::Response> {
    let ts = now_ts();
    let sig = zendesk::sign(ZENDESK_SECRET, &ts, body.as_bytes());
    let mut req = http
        .post(format!("{base}/webhooks/zendesk"))
        .header("X-Zendesk-Webhook-Signature", sig)
        .header("X-Zendesk-Webhook-Signature-Timestamp", ts)
        .header("Content-Type", "application/json")
        .body(body.to_string());
    if let Some(id) = invocation {
        req = req.header("X-Zendesk-Webhook-Invocation-Id", id);
    }
    req.send().await
}

/// Databases, fake helpdesks and a config file for `ltv-tagger serve` processes.
pub struct Rig {
    pub fake: FakeHelpdesk,
    pub cfg: FakeHelpdeskConfig,
    pub state: TestDb,
    pub shop: TestDb,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// The test's own view of the state DB.
    pub store: StateStore,
}

/// The config file for the binary, with the secrets of every configured helpdesk filled in.
pub fn write_test_config(dir: &Path, raw: &RawSettings, cfg: &FakeHelpdeskConfig) -> PathBuf {
    let mut secrets = Vec::new();
    if !raw.zendesk.api_base_url.is_empty() {
        secrets.push(("zendesk", "api_token", cfg.zendesk_token.as_str()));
        secrets.push(("zendesk", "webhook_secret", ZENDESK_SECRET));
    }
    if !raw.gorgias.api_base_url.is_empty() {
        secrets.push(("gorgias", "api_key", cfg.gorgias_key.as_str()));
        secrets.push(("gorgias", "webhook_token", GORGIAS_TOKEN));
    }
    write_config(dir, raw, &secrets)
}

pub async fn rig(state: Db, tweak: impl FnOnce(&mut RawSettings)) -> Rig {
    let cfg = FakeHelpdeskConfig::default();
    let fake = FakeHelpdesk::start(cfg.clone()).await.expect("fake");
    let state_db = TestDb::create(state, "ltv_state").await;
    let shop = shop_db(Db::Sqlite).await;
    let mut raw = test_settings(&state_db.url, &shop.url, &fake, &cfg, true, true);
    tweak(&mut raw);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_test_config(dir.path(), &raw, &cfg);
    let store = StateStore::connect_lazy(&raw.validate().expect("valid").state).expect("store");
    Rig {
        fake,
        cfg,
        state: state_db,
        shop,
        dir,
        config,
        store,
    }
}

impl Rig {
    pub async fn drop_dbs(self) {
        self.store.pool().close().await;
        self.state.drop_db().await;
        self.shop.drop_db().await;
    }
}

/// Polls `f` until it holds; fails the test after `within`. Returns how long it took.
pub async fn wait_until<F, Fut>(within: Duration, what: &str, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if f().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `ltv-tagger ARGS --config FILE` to its end: (exit code, stdout, stderr).
pub async fn cli(args: &[&str], config: &Path) -> (i32, String, String) {
    let out = tokio::process::Command::new(binary())
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove("LTV_TAGGER_CONFIG")
        .output()
        .await
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
