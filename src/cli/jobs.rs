//! `jobs list` / `jobs retry`: inspect the job queue and queue dead letters again.

use clap::Subcommand;

use crate::clock::Millis;
use crate::config::Settings;
use crate::domain::{JobId, JobState};
use crate::state::StateStore;

#[derive(Debug, Subcommand)]
pub enum JobsAction {
    /// List waiting, running and dead jobs with their last error
    List {
        /// Only dead-lettered jobs
        #[arg(long)]
        dead: bool,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Queue a dead-lettered job (or all of them) again
    Retry {
        #[arg(conflicts_with = "all_dead", required_unless_present = "all_dead")]
        id: Option<i64>,
        #[arg(long)]
        all_dead: bool,
    },
}

pub(super) async fn jobs(s: Settings, action: JobsAction) -> anyhow::Result<()> {
    let store = StateStore::connect_lazy(&s.state)?;
    store
        .check_ready()
        .await
        .map_err(|e| anyhow::anyhow!("state DB: {e}"))?;
    match action {
        JobsAction::List { dead, limit } => {
            let rows = store.list_jobs(dead, limit).await?;
            if rows.is_empty() {
                println!(
                    "no {}jobs",
                    if dead {
                        "dead "
                    } else {
                        "waiting, running or dead "
                    }
                );
                return Ok(());
            }
            println!(
                "{:>8}  {:<8} {:>12}  {:<8} {:>8}  {:<19}  last error",
                "id", "helpdesk", "ticket", "state", "attempts", "next run / updated"
            );
            for r in rows {
                let at = if r.state == JobState::Queued {
                    r.run_at
                } else {
                    r.updated_at
                };
                println!(
                    "{:>8}  {:<8} {:>12}  {:<8} {:>8}  {:<19}  {}",
                    r.id,
                    r.source,
                    r.ticket_id,
                    r.state,
                    r.attempts,
                    when(at),
                    r.last_error.unwrap_or_default()
                );
            }
        }
        JobsAction::Retry { id, all_dead } => {
            let ids = match id {
                Some(id) if !all_dead => vec![JobId::new(id)],
                _ => store.dead_job_ids().await?,
            };
            let mut queued = 0;
            for id in &ids {
                if store.retry_dead(*id, Millis::now()).await? {
                    queued += 1;
                } else {
                    eprintln!("job {id} is not dead-lettered: left as it is");
                }
            }
            println!("{queued} job(s) queued again");
            if queued == 0 && !ids.is_empty() {
                anyhow::bail!("nothing was queued");
            }
        }
    }
    Ok(())
}

fn when(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at.as_epoch_ms())
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| at.as_epoch_ms().to_string())
}
