//! Integration tests: one binary, the real server on random ports, real databases, fake helpdesks.

mod helpers;
mod support;

mod faults;
mod group_commit;
mod ingest;
mod orders;
mod process;
mod queue;
mod scale;
mod tagging;
mod worker_step;
