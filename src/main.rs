//! The binary: parse the command line and hand off to [`ltv_tagger::cli`].

use std::process::ExitCode;

use clap::Parser;

/// jemalloc, not glibc's malloc: glibc kept what a flood of refused connections had used
/// (RSS stayed at the peak after they closed); jemalloc gives freed pages back (see below).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options: a background thread returns pages freed for a second (`dirty_decay_ms`)
/// to the system at once (`muzzy_decay_ms:0`), so memory comes back after a burst.
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[tokio::main]
async fn main() -> ExitCode {
    ltv_tagger::cli::run(ltv_tagger::cli::Cli::parse()).await
}
