//! Prometheus metrics, registered in one registry owned by the application (no globals).

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `source` (zendesk|gorgias) × `outcome` (accepted|unauthorized|bad_request|too_large|…).
    pub webhooks_received: IntCounterVec,
    /// `outcome`: tagged, already_tagged, no_tags, unknown_customer, no_email, rejected, failed, dead, retry.
    pub jobs: IntCounterVec,
    /// `helpdesk` × `status` (HTTP status, or timeout|error).
    pub helpdesk_requests: IntCounterVec,
    /// Seconds per order-DB query (cache hits are not observed).
    pub order_lookup_seconds: Histogram,
    /// Jobs by `state` (queued|running|dead), sampled when /metrics is scraped.
    pub jobs_in_state: IntGaugeVec,
    /// Zendesk webhooks accepted because they carried the public test-delivery signature
    /// (`zendesk.dangerous_accept_test_secret`).
    pub zendesk_test_signed: IntCounter,
    /// `tag`: decisions made in shadow mode (`policy.mode = "shadow"`), by tag decided.
    pub shadow_decisions: IntCounterVec,
    /// `result` (ok|error): configuration reloads (SIGHUP or the `--config` file changed).
    pub config_reloads: IntCounterVec,
    /// Webhook events per group-commit transaction.
    pub ingest_commit_batch_size: Histogram,
    /// `call` (update_many|job_status) × `status` (HTTP status, or error): Zendesk bulk calls.
    pub bulk_calls: IntCounterVec,
    /// `result` (tagged|failed|retried): tickets of bulk jobs, by how their job was settled.
    pub bulk_tickets: IntCounterVec,
}

impl Metrics {
    pub fn new() -> anyhow::Result<Metrics> {
        let registry = Registry::new_custom(Some("ltv_tagger".into()), None)?;
        let webhooks_received = IntCounterVec::new(
            Opts::new(
                "webhooks_received_total",
                "Webhook requests by source and outcome",
            ),
            &["source", "outcome"],
        )?;
        let jobs = IntCounterVec::new(
            Opts::new("jobs_total", "Job attempts by outcome"),
            &["outcome"],
        )?;
        let helpdesk_requests = IntCounterVec::new(
            Opts::new(
                "helpdesk_requests_total",
                "Helpdesk API calls by helpdesk and status",
            ),
            &["helpdesk", "status"],
        )?;
        let order_lookup_seconds = Histogram::with_opts(
            HistogramOpts::new("order_lookup_seconds", "Order database query latency").buckets(
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ],
            ),
        )?;
        let jobs_in_state = IntGaugeVec::new(
            Opts::new("jobs", "Jobs in the state DB by state"),
            &["state"],
        )?;
        registry.register(Box::new(webhooks_received.clone()))?;
        registry.register(Box::new(jobs.clone()))?;
        registry.register(Box::new(helpdesk_requests.clone()))?;
        registry.register(Box::new(order_lookup_seconds.clone()))?;
        registry.register(Box::new(jobs_in_state.clone()))?;
        let zendesk_test_signed = IntCounter::new(
            "zendesk_test_signed_total",
            "Zendesk webhooks accepted with the public test-delivery secret",
        )?;
        registry.register(Box::new(zendesk_test_signed.clone()))?;
        let shadow_decisions = IntCounterVec::new(
            Opts::new(
                "shadow_decisions_total",
                "Decisions made in shadow mode (no tag written), by tag decided",
            ),
            &["tag"],
        )?;
        let config_reloads = IntCounterVec::new(
            Opts::new("config_reloads_total", "Configuration reloads by result"),
            &["result"],
        )?;
        registry.register(Box::new(shadow_decisions.clone()))?;
        registry.register(Box::new(config_reloads.clone()))?;
        for result in ["ok", "error"] {
            config_reloads.with_label_values(&[result]);
        }
        let ingest_commit_batch_size = Histogram::with_opts(
            HistogramOpts::new(
                "ingest_commit_batch_size",
                "Webhook events committed per state-DB transaction (group commit)",
            )
            .buckets(vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
            ]),
        )?;
        registry.register(Box::new(ingest_commit_batch_size.clone()))?;
        let bulk_calls = IntCounterVec::new(
            Opts::new(
                "bulk_calls_total",
                "Zendesk bulk tag-write calls (update_many, job_status polls) by status",
            ),
            &["call", "status"],
        )?;
        let bulk_tickets = IntCounterVec::new(
            Opts::new(
                "bulk_tickets_total",
                "Tickets written through update_many, by result (tagged|failed|retried)",
            ),
            &["result"],
        )?;
        registry.register(Box::new(bulk_calls.clone()))?;
        registry.register(Box::new(bulk_tickets.clone()))?;
        Ok(Metrics {
            registry,
            webhooks_received,
            jobs,
            helpdesk_requests,
            order_lookup_seconds,
            jobs_in_state,
            zendesk_test_signed,
            shadow_decisions,
            config_reloads,
            ingest_commit_batch_size,
            bulk_calls,
            bulk_tickets,
        })
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            return format!("# encode error: {e}\n");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
