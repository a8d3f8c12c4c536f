//! The audit log: the decision recorded for every finished job, in the job's own transaction.

use sqlx::{Any, Transaction};

use super::{join_tags, split_tags, StateStore};
use crate::clock::Millis;
use crate::domain::{JobId, Outcome, Source, TicketId};

use super::queue::Job;

/// The decision recorded for a finished job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub email: Option<String>,
    /// Exact decimal text, as the order DB gave it.
    pub ltv: Option<String>,
    pub orders: Option<i64>,
    pub disputes: Option<i64>,
    pub tags_decided: Vec<String>,
    pub tags_written: Vec<String>,
    pub outcome: Outcome,
    pub detail: Option<String>,
}

impl AuditRecord {
    /// A record with nothing found yet.
    pub fn new(outcome: Outcome, detail: Option<String>) -> AuditRecord {
        AuditRecord {
            email: None,
            ltv: None,
            orders: None,
            disputes: None,
            tags_decided: vec![],
            tags_written: vec![],
            outcome,
            detail,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub job_id: JobId,
    pub source: Source,
    pub ticket_id: TicketId,
    pub record: AuditRecord,
    pub attempts: i64,
    pub event_count: i64,
    pub created_at: Millis,
}

#[derive(sqlx::FromRow)]
struct StoredAudit {
    job_id: JobId,
    source: String,
    ticket_id: String,
    email: Option<String>,
    ltv: Option<String>,
    orders: Option<i64>,
    disputes: Option<i64>,
    tags_decided: String,
    tags_written: String,
    outcome: String,
    detail: Option<String>,
    attempts: i64,
    event_count: i64,
    created_at: Millis,
}

fn decode_error(column: &str, e: String) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.into(),
        source: e.into(),
    }
}

impl TryFrom<StoredAudit> for AuditRow {
    type Error = sqlx::Error;
    fn try_from(r: StoredAudit) -> Result<AuditRow, sqlx::Error> {
        Ok(AuditRow {
            job_id: r.job_id,
            source: Source::parse(&r.source)
                .ok_or_else(|| decode_error("source", format!("unknown source {:?}", r.source)))?,
            ticket_id: TicketId::parse(&r.ticket_id).map_err(|e| decode_error("ticket_id", e))?,
            record: AuditRecord {
                email: r.email,
                ltv: r.ltv,
                orders: r.orders,
                disputes: r.disputes,
                tags_decided: split_tags(&r.tags_decided),
                tags_written: split_tags(&r.tags_written),
                outcome: r.outcome.parse().map_err(|e| decode_error("outcome", e))?,
                detail: r.detail,
            },
            attempts: r.attempts,
            event_count: r.event_count,
            created_at: r.created_at,
        })
    }
}

const COLUMNS: &str = "job_id, source, ticket_id, email, ltv, orders, disputes, tags_decided,
                       tags_written, outcome, detail, attempts, event_count, created_at";

/// Writes the job's audit row inside the transaction that finishes it.
pub(super) async fn insert_audit(
    tx: &mut Transaction<'_, Any>,
    job: &Job,
    audit: &AuditRecord,
    now: Millis,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "insert into audit (job_id, source, ticket_id, email, ltv, orders, disputes,
                            tags_decided, tags_written, outcome, detail, attempts, event_count,
                            created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
    )
    .bind(job.id)
    .bind(job.source.as_str())
    .bind(job.ticket_id.to_string())
    .bind(audit.email.as_deref())
    .bind(audit.ltv.as_deref())
    .bind(audit.orders)
    .bind(audit.disputes)
    .bind(join_tags(&audit.tags_decided))
    .bind(join_tags(&audit.tags_written))
    .bind(audit.outcome.as_str())
    .bind(audit.detail.as_deref())
    .bind(job.attempts)
    .bind(job.event_count)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl StateStore {
    /// The audit log, newest last; `ticket` narrows it to one ticket.
    pub async fn audit(
        &self,
        ticket: Option<(Source, TicketId)>,
        limit: i64,
    ) -> Result<Vec<AuditRow>, sqlx::Error> {
        let rows: Vec<StoredAudit> = match ticket {
            Some((source, id)) => {
                sqlx::query_as(&format!(
                    "select {COLUMNS} from audit where source = $1 and ticket_id = $2 order by id limit $3"
                ))
                .bind(source.as_str())
                .bind(id.to_string())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as(&format!(
                    "select {COLUMNS} from (select * from audit order by id desc limit $1) a order by id"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter().map(AuditRow::try_from).collect()
    }
}

/// Which audit rows `ltv-tagger audit` (and `thresholds`) read. Empty filter: every row.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The helpdesk's ticket id (either helpdesk).
    pub ticket: Option<TicketId>,
    /// The customer's normalised email.
    pub email: Option<String>,
    /// Rows recorded at or after this time.
    pub since: Option<Millis>,
    /// The newest rows only, at most this many.
    pub limit: Option<i64>,
}

impl StateStore {
    /// The audit rows the filter selects, oldest first (the newest `limit` of them).
    pub async fn audit_filtered(&self, f: &AuditFilter) -> Result<Vec<AuditRow>, sqlx::Error> {
        let mut conditions = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if f.ticket.is_some() {
            conditions.push(format!("ticket_id = {}", next()));
        }
        if f.email.is_some() {
            conditions.push(format!("email = {}", next()));
        }
        if f.since.is_some() {
            conditions.push(format!("created_at >= {}", next()));
        }
        let limit = next();
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!("where {}", conditions.join(" and "))
        };
        let sql = format!(
            "select {COLUMNS} from (select * from audit {filter} order by id desc limit {limit}) a order by id"
        );
        let mut query = sqlx::query_as::<_, StoredAudit>(&sql);
        if let Some(t) = f.ticket {
            query = query.bind(t.to_string());
        }
        if let Some(e) = &f.email {
            query = query.bind(e.clone());
        }
        if let Some(s) = f.since {
            query = query.bind(s);
        }
        let rows = query
            .bind(f.limit.unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(AuditRow::try_from).collect()
    }
}
