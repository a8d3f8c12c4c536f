//! Health: `/livez` (the process is up) and `/readyz` (state DB migrated, order DB reachable:
//! `ok` or `down` for each; the cause goes to the log only).

use std::sync::atomic::Ordering;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

pub async fn livez() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "up" }))
}

#[derive(serde::Deserialize)]
pub struct ReadyQuery {
    /// `ingest`: only what accepting webhooks needs (the state DB).
    scope: Option<String>,
}

/// `/readyz`: state DB reachable and migrated, order DB reachable. `?scope=ingest` skips the
/// order DB: webhooks are still accepted (and queued) while the shop's database is down.
pub async fn readyz(state: web::Data<AppState>, q: web::Query<ReadyQuery>) -> HttpResponse {
    // The driver's error names DB users and hosts: it goes to the log, the caller sees a status.
    let show = |name: &str, r: &Result<(), String>| match r {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(dependency = name, error = %e, "/readyz: dependency down");
            "down"
        }
    };
    if state.draining.load(Ordering::SeqCst) {
        return HttpResponse::ServiceUnavailable().json(json!({ "status": "draining" }));
    }
    let ingest_only = q.scope.as_deref() == Some("ingest");
    let (store, db) = (state.store.clone(), state.orders.clone());
    let checked = state
        .on_main(async move {
            if ingest_only {
                (store.check_ready().await, Ok(()))
            } else {
                let (st, orders) = tokio::join!(store.check_ready(), db.ping());
                (st, orders.map_err(|e| e.to_string()))
            }
        })
        .await;
    let (st, orders) = checked.unwrap_or_else(|e| (Err(e.to_string()), Err(e.to_string())));
    let body = if ingest_only {
        json!({ "state_db": show("state_db", &st) })
    } else {
        json!({ "state_db": show("state_db", &st), "order_db": show("order_db", &orders) })
    };
    if st.is_ok() && orders.is_ok() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
