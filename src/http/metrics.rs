//! `/metrics`: the Prometheus text, with the queue's depth read fresh from the state DB.

use actix_web::{web, HttpResponse};

use super::AppState;
use crate::domain::JobState;

pub async fn metrics_text(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.clone();
    if let Ok(Ok(d)) = state
        .on_main(async move { store.queue_depth().await })
        .await
    {
        let g = &state.metrics.jobs_in_state;
        g.with_label_values(&[JobState::Queued.as_str()])
            .set(d.queued);
        g.with_label_values(&[JobState::Running.as_str()])
            .set(d.running);
        g.with_label_values(&[JobState::Dead.as_str()]).set(d.dead);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}
