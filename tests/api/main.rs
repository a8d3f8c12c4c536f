//! Integration tests: one binary, the real server on random ports, real databases, fake helpdesks.

mod helpers;
mod support;

mod faults;
mod index_check;
mod ingest;
mod orders;
mod presets;
mod process;
mod queue;
mod scale;
mod setup;
mod tagging;
mod worker_step;
