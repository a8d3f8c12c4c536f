//! One leased job in its own task: the heartbeat that renews the lease while it works, the
//! retry-horizon check for crash loops, and the release of the lease on a hard stop.

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::settle::Attempt;
use super::Worker;
use crate::clock::Millis;
use crate::domain::Outcome;
use crate::state::{AuditRecord, LeasedJob};

impl Worker {
    pub(super) async fn run_job(&self, job: LeasedJob, stop: CancellationToken) {
        let span = tracing::info_span!(
            "job",
            id = job.id.get(),
            helpdesk = %job.source,
            ticket = %job.ticket_id,
            attempt = job.attempts
        );
        async {
            let heartbeat = async {
                let every = self.settings.lease / 3;
                loop {
                    tokio::time::sleep(every).await;
                    match job.renew(self.settings.lease, Millis::now()).await {
                        Ok(true) => {}
                        Ok(false) => return,
                        // The DB may come back before the lease runs out: keep trying.
                        Err(e) => tracing::warn!(error = %e, "cannot renew lease"),
                    }
                }
            };
            // A job whose attempts never come back (a crash loop, a panic) is caught here: past
            // the horizon it is dead-lettered instead of being claimed again forever.
            if self.past_horizon(&job, Millis::now()) {
                let audit = AuditRecord::new(
                    Outcome::Dead,
                    Some(format!(
                        "still not done after {} attempts past worker.retry_horizon",
                        job.attempts - 1
                    )),
                );
                self.settle(&job, Attempt::Fatal(audit)).await;
                return;
            }
            let attempt = tokio::select! {
                a = self.process(&job) => a,
                _ = heartbeat => {
                    tracing::warn!("lease lost to another worker: abandoning this attempt");
                    return;
                }
                _ = stop.cancelled() => {
                    match job.release(Millis::now()).await {
                        Ok(()) => tracing::info!("lease released for the next start"),
                        Err(e) => tracing::warn!(error = %e, "cannot release lease; it expires by itself"),
                    }
                    return;
                }
            };
            self.settle(&job, attempt).await;
        }
        .instrument(span)
        .await
    }
}
