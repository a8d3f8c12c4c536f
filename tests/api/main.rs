//! Integration tests: one binary, the real server on random ports, real databases, fake helpdesks.

mod helpers;
mod support;

mod audit_cli;
mod faults;
mod ingest;
mod orders;
mod process;
mod queue;
mod reload;
mod scale;
mod shadow;
mod tagging;
mod thresholds;
mod worker_step;
