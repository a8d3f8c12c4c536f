//! Integration tests: one binary, the real server on random ports, real databases, fake helpdesks.

mod helpers;
mod support;

mod agent_view;
mod audit_cli;
mod backfill;
mod bad_input;
mod connection_errors;
mod dedupe_keys;
mod faults;
mod group_commit;
mod healthcheck;
mod helpdesk_answers;
mod index_check;
mod ingest;
mod lease_clock;
mod operator_mistakes;
mod order_query_check;
mod order_query_timeout;
mod order_values;
mod orders;
mod pacing;
mod presets;
mod process;
mod queue;
mod reload;
mod scale;
mod setup;
mod shadow;
mod stalled_bodies;
mod tagging;
mod thresholds;
mod vendor_tags;
mod worker_step;
mod zendesk_ingest;
