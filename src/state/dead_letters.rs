//! Dead letters and the operator's view of the queue: list jobs, count them by state, and
//! replay a dead-lettered job (`ltv-tagger jobs list|retry`).

use std::sync::LazyLock;

use sqlx::Row;

use super::StateStore;
use crate::clock::Millis;
use crate::domain::{JobId, JobState};

/// A job as an operator sees it (`ltv-tagger jobs list`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: JobId,
    pub source: String,
    pub ticket_id: String,
    #[sqlx(try_from = "String")]
    pub state: JobState,
    pub attempts: i64,
    pub event_count: i64,
    pub run_at: Millis,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// Jobs by state, for `ltv_tagger_jobs_in_state`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub queued: i64,
    pub running: i64,
    pub dead: i64,
}

fn list_sql(states: &[JobState]) -> String {
    let states: Vec<String> = states.iter().map(|s| format!("'{s}'")).collect();
    format!(
        "select id, source, ticket_id, state, attempts, event_count, run_at, last_error,
                created_at, updated_at
         from job where state in ({}) order by id limit $1",
        states.join(", ")
    )
}

static LIST_DEAD: LazyLock<String> = LazyLock::new(|| list_sql(&[JobState::Dead]));
static LIST_OPEN: LazyLock<String> =
    LazyLock::new(|| list_sql(&[JobState::Queued, JobState::Running, JobState::Dead]));

impl StateStore {
    /// Queues a dead-lettered job again with a fresh retry horizon. `false` if it is not dead.
    pub async fn retry_dead(&self, id: JobId, now: Millis) -> Result<bool, sqlx::Error> {
        let state: Option<String> = sqlx::query_scalar("select state from job where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        if state.as_deref() != Some(JobState::Dead.as_str()) {
            return Ok(false);
        }
        // A fresh horizon: the retry counts from now.
        sqlx::query("update job set attempts = 0, created_at = $2 where id = $1")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        self.requeue(id, None, now, None, 0, now).await?;
        Ok(true)
    }

    pub async fn dead_job_ids(&self) -> Result<Vec<JobId>, sqlx::Error> {
        sqlx::query_scalar("select id from job where state = $1 order by id")
            .bind(JobState::Dead.as_str())
            .fetch_all(&self.pool)
            .await
    }

    /// Waiting, running and dead jobs (or only the dead), oldest first.
    pub async fn list_jobs(&self, dead_only: bool, limit: i64) -> Result<Vec<JobRow>, sqlx::Error> {
        let sql = if dead_only { &*LIST_DEAD } else { &*LIST_OPEN };
        sqlx::query_as(sql).bind(limit).fetch_all(&self.pool).await
    }

    pub async fn queue_depth(&self) -> Result<QueueDepth, sqlx::Error> {
        let rows = sqlx::query("select state, count(*) as n from job group by state")
            .fetch_all(&self.pool)
            .await?;
        let mut d = QueueDepth::default();
        for r in rows {
            let state: String = r.try_get("state")?;
            let n: i64 = r.try_get("n")?;
            match state.parse::<JobState>() {
                Ok(JobState::Queued) => d.queued = n,
                Ok(JobState::Running) => d.running = n,
                Ok(JobState::Dead) => d.dead = n,
                _ => {}
            }
        }
        Ok(d)
    }
}
