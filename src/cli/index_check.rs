//! The index check's report: `check-config --query` prints it, `serve` logs it as warnings at start.

use crate::orders::presets::IndexAdvice;
use crate::orders::OrderDb;

/// Prints each whole-table scan with its fix to stderr (a failed check is reported, not fatal).
pub(super) async fn report(db: &OrderDb, advice: &[IndexAdvice]) {
    match db.whole_table_scans(advice).await {
        Ok(scans) if scans.is_empty() => {
            eprintln!("index check: every table orders.query reads is reached through an index")
        }
        Ok(scans) => {
            for scan in scans {
                eprintln!("warning: {scan}");
            }
        }
        Err(e) => eprintln!("warning: index check: could not explain orders.query: {e}"),
    }
}

/// Logs each whole-table scan as a warning; for `serve` at start (runs in the background).
pub fn warn_at_start(db: OrderDb, advice: Vec<IndexAdvice>) {
    tokio::spawn(async move {
        match db.whole_table_scans(&advice).await {
            Ok(scans) => {
                for scan in scans {
                    tracing::warn!(table = %scan.table, fix = %scan.fix, "{scan}");
                }
            }
            Err(e) => tracing::warn!(error = %e, "index check: could not explain orders.query"),
        }
    });
}
