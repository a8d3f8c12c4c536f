//! Group commit: webhooks that arrive together share one state-DB transaction, each answered after it.
//!
//! One committer task (on the main runtime, which owns the pool's connections) takes every event
//! waiting in its channel, waits at most `state.group_commit_window` for more, up to
//! `state.group_commit_max_batch`, and commits them with [`StateStore::enqueue_batch`]. Each
//! request is answered only from the outcome of the transaction that holds its event: a failed
//! batch fails every request in it, and none of its events is stored. While a batch commits, the
//! next one gathers, so under load the batches grow without any added wait. On PostgreSQL
//! several batches commit at once (a quarter of the pool, at least 1, at most 8), each on its own
//! connection.

use std::sync::Arc;
use std::time::Duration;

use prometheus::Histogram;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{Enqueued, NewEvent, StateStore};
use crate::clock::Millis;

/// How the committer gathers events (`state.group_commit_window`, `state.group_commit_max_batch`).
#[derive(Debug, Clone, Copy)]
pub struct GroupCommitSettings {
    /// How long a batch waits for more events after its first one ("0s": only what is waiting).
    pub window: Duration,
    /// Events per transaction at most.
    pub max_batch: usize,
    /// Batches committed at once (1 on SQLite, which has one writer; several on PostgreSQL,
    /// whose batches lock rows in one order, so concurrent batches cannot deadlock).
    pub parallel: usize,
}

/// Why an event was not committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    #[error("state DB commit of a batch of {batch} events failed")]
    Failed {
        batch: usize,
        #[source]
        cause: Arc<sqlx::Error>,
    },
    #[error("the state DB committer has stopped")]
    Stopped,
}

struct Pending {
    event: NewEvent,
    reply: oneshot::Sender<Result<Enqueued, CommitError>>,
}

/// The handle requests commit through; cheap to clone. The committer stops when every handle
/// is dropped, after answering what it holds.
#[derive(Clone)]
pub struct GroupCommitter {
    tx: mpsc::Sender<Pending>,
}

impl GroupCommitter {
    /// Starts the committer on the current runtime. `batch_sizes` observes each committed batch.
    pub fn spawn(
        store: StateStore,
        settings: GroupCommitSettings,
        batch_sizes: Option<Histogram>,
    ) -> GroupCommitter {
        // Room for a few batches: beyond that, requests wait for their turn to be queued.
        let (tx, rx) = mpsc::channel(settings.max_batch.max(1).saturating_mul(4));
        tokio::spawn(run(store, rx, settings, batch_sizes));
        GroupCommitter { tx }
    }

    /// Commits the event in the next batch; returns once that batch's transaction has ended.
    pub async fn enqueue(&self, event: NewEvent) -> Result<Enqueued, CommitError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { event, reply })
            .await
            .map_err(|_| CommitError::Stopped)?;
        answer.await.map_err(|_| CommitError::Stopped)?
    }
}

async fn run(
    store: StateStore,
    mut rx: mpsc::Receiver<Pending>,
    settings: GroupCommitSettings,
    batch_sizes: Option<Histogram>,
) {
    let max_batch = settings.max_batch.max(1);
    let in_flight = Arc::new(Semaphore::new(settings.parallel.max(1)));
    loop {
        // A batch starts gathering only when it can be committed at once: while every commit
        // slot is busy, arrivals wait in the channel and make the next batch bigger.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch: Vec<Pending> = Vec::with_capacity(max_batch);
        if rx.recv_many(&mut batch, max_batch).await == 0 {
            return;
        }
        if !settings.window.is_zero() {
            let deadline = tokio::time::Instant::now() + settings.window;
            while batch.len() < max_batch {
                let room = max_batch - batch.len();
                match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
        }
        // A request whose client has gone away is not committed: it was never answered 202.
        batch.retain(|p| !p.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        if let Some(h) = &batch_sizes {
            h.observe(batch.len() as f64);
        }
        let store = store.clone();
        tokio::spawn(async move {
            commit(&store, batch).await;
            drop(permit);
        });
    }
}

/// Commits the batch and answers every request in it.
async fn commit(store: &StateStore, mut batch: Vec<Pending>) {
    let now = Millis::now();
    let result = {
        let events: Vec<&NewEvent> = batch.iter().map(|p| &p.event).collect();
        store.enqueue_batch(&events, now).await
    };
    match result {
        Ok(outcomes) => {
            for (p, outcome) in batch.drain(..).zip(outcomes) {
                // The client may have gone meanwhile; its event is stored all the same.
                let _ = p.reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            // A pool timeout says why no connection opened (refused, DNS, TLS, auth).
            let error = CommitError::Failed {
                batch: batch.len(),
                cause: Arc::new(store.explain(e).await),
            };
            for p in batch.drain(..) {
                let _ = p.reply.send(Err(error.clone()));
            }
        }
    }
}
