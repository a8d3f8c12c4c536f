//! `thresholds` over 1,000,000 customers on the local PostgreSQL: wall time and peak memory (VmHWM) of the release binary.
//!
//! Seeds a fresh database with `generate_series` (1,000,000 customers, 2,000,000 purchases, a
//! refund per 10th purchase, a dispute per 100th customer), then runs `ltv-tagger thresholds
//! --format json` (and once more with `--candidate` and `--plot`) as a child process, sampling its
//! `/proc/<pid>/status` VmHWM until it exits. Needs PostgreSQL on 127.0.0.1:5432 (user postgres,
//! trust). `cargo bench --bench thresholds`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sqlx::Connection;

const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const CUSTOMERS: i64 = 1_000_000;
const RUNS: usize = 3;

const CUSTOMERS_QUERY: &str = "
select c.email as email,
       coalesce(p.paid, 0) - coalesce(r.refunded, 0) as ltv,
       coalesce(p.orders, 0) as orders,
       coalesce(d.disputes, 0) as disputes
from customer c
left join (select customer_id, sum(amount) as paid, count(*) as orders
           from purchase where status = 'paid' group by customer_id) p on p.customer_id = c.id
left join (select p.customer_id, sum(r.amount) as refunded from refund r
           join purchase p on p.id = r.purchase_id group by p.customer_id) r on r.customer_id = c.id
left join (select customer_id, count(*) as disputes from dispute group by customer_id) d
       on d.customer_id = c.id";

async fn exec(url: &str, sql: &str) -> anyhow::Result<()> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(sql).execute(&mut c).await?;
    Ok(())
}

async fn seed(db: &str) -> anyhow::Result<String> {
    exec(ADMIN, &format!("drop database if exists {db} with (force)")).await?;
    exec(ADMIN, &format!("create database {db}")).await?;
    let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
    exec(
        &url,
        &format!(
            "create table customer (id bigint primary key, email text not null);
             create table purchase (id bigint primary key, customer_id bigint not null,
                                    amount numeric(12,2) not null, status text not null);
             create table refund (id bigint primary key, purchase_id bigint not null,
                                  amount numeric(12,2) not null);
             create table dispute (id bigint primary key, customer_id bigint not null);
             insert into customer select i, 'c' || i || '@shop.test' from generate_series(1, {CUSTOMERS}) i;
             insert into purchase
               select i, (i % {CUSTOMERS}) + 1,
                      round((exp(random() * 8) + random())::numeric, 2),
                      case when i % 17 = 0 then 'pending' else 'paid' end
               from generate_series(1, {p}) i;
             insert into refund select i, i * 10, 1.00 from generate_series(1, {r}) i;
             insert into dispute select i, i * 100 from generate_series(1, {d}) i;
             analyze;",
            p = 2 * CUSTOMERS,
            r = 2 * CUSTOMERS / 10,
            d = CUSTOMERS / 100,
        ),
    )
    .await?;
    Ok(url)
}

/// Runs the binary to its end; returns (wall time, peak resident set in KiB).
fn run(binary: &Path, args: &[&str]) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let mut child = std::process::Command::new(binary)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak = peak.max(hwm.unwrap_or(0));
        }
        if let Some(status) = child.try_wait()? {
            let elapsed = started.elapsed();
            anyhow::ensure!(status.success(), "thresholds failed: {status}");
            return Ok((elapsed, peak));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_ltv-tagger"));
    let rt = tokio::runtime::Runtime::new()?;
    let db = "ltv_bench_thresholds";
    let seeding = Instant::now();
    let url = rt.block_on(seed(db))?;
    println!("seeded {CUSTOMERS} customers in {:.1?}", seeding.elapsed());

    let dir = tempfile::tempdir()?;
    let config = dir.path().join("bench.toml");
    std::fs::write(
        &config,
        format!(
            "[state]\nurl = \"sqlite://{}\"\n[orders]\nurl = {url:?}\ncustomers_query = {CUSTOMERS_QUERY:?}\n",
            dir.path().join("state.db").display()
        ),
    )?;
    let candidate = dir.path().join("candidate.toml");
    std::fs::write(
        &candidate,
        "[policy]\nvip_tiers = [ { tag = \"vip\", min_ltv = \"800\" }, { tag = \"vip-gold\", min_ltv = \"2000\" } ]\n",
    )?;
    let plot = dir.path().join("ltv.png");
    let cfg = config.to_str().unwrap_or_default();
    let cases: [(&str, Vec<&str>); 2] = [
        (
            "thresholds --format json",
            vec!["thresholds", "--config", cfg, "--format", "json"],
        ),
        (
            "thresholds --candidate --plot ltv.png",
            vec![
                "thresholds",
                "--config",
                cfg,
                "--candidate",
                candidate.to_str().unwrap_or_default(),
                "--plot",
                plot.to_str().unwrap_or_default(),
            ],
        ),
    ];
    let mut table = Vec::new();
    for (name, args) in &cases {
        let mut times = Vec::new();
        let mut peaks = Vec::new();
        for _ in 0..RUNS {
            let (t, kib) = run(&binary, args)?;
            println!(
                "{name}: {:.2} s, VmHWM {:.0} MiB",
                t.as_secs_f64(),
                kib as f64 / 1024.0
            );
            times.push(t.as_secs_f64());
            peaks.push(kib as f64 / 1024.0);
        }
        table.push((name, median(times), median(peaks)));
    }
    println!(
        "\n| case ({CUSTOMERS} customers, PostgreSQL) | median time | median peak RSS (VmHWM) |"
    );
    println!("|---|---|---|");
    for (name, t, mib) in table {
        println!("| `{name}` | {t:.2} s | {mib:.0} MiB |");
    }
    rt.block_on(exec(
        ADMIN,
        &format!("drop database if exists {db} with (force)"),
    ))?;
    Ok(())
}
