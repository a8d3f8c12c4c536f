//! Integration tests: one binary, the real server on random ports, real databases, fake helpdesks.

mod helpers;
mod support;

mod connection_errors;
mod dedupe_keys;
mod faults;
mod healthcheck;
mod helpdesk_answers;
mod ingest;
mod lease_clock;
mod order_query_timeout;
mod orders;
mod process;
mod queue;
mod scale;
mod stalled_bodies;
mod tagging;
mod worker_step;
