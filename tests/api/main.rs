//! Integration tests: one binary, the real server on random ports, real databases, fake helpdesks.

mod helpers;
mod support;

mod bad_input;
mod faults;
mod ingest;
mod operator_mistakes;
mod order_query_check;
mod order_values;
mod orders;
mod pacing;
mod process;
mod queue;
mod scale;
mod tagging;
mod vendor_tags;
mod worker_step;
mod zendesk_ingest;
