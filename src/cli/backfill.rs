//! `backfill zendesk|gorgias`: its arguments, its progress (a bar on a terminal, lines
//! otherwise) and its summary.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use crate::backfill::{BackfillArgs, Progress, Report};
use crate::config::Settings;
use crate::domain::Source;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackfillTarget {
    Zendesk,
    Gorgias,
}

#[derive(Debug, Args)]
pub struct BackfillCli {
    #[arg(value_enum)]
    pub target: BackfillTarget,
    /// Only tickets created this long ago or later (e.g. 30days); default: all
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<Duration>,
    /// Only tickets in this state (repeat or comma-separate: open,pending); default: open
    #[arg(long, value_delimiter = ',', value_parser = parse_status)]
    pub status: Vec<String>,
    /// List the tickets and decide their tags, print how many would get which, write nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// A ticket state as the helpdesks spell them: lower-case letters and `_`.
fn parse_status(raw: &str) -> Result<String, String> {
    let s = raw.trim().to_ascii_lowercase();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        Ok(s)
    } else {
        Err(format!(
            "{raw:?} is not a ticket status (open, pending, hold, …)"
        ))
    }
}

pub(super) async fn backfill(s: Settings, cli: BackfillCli) -> anyhow::Result<()> {
    let args = BackfillArgs {
        source: match cli.target {
            BackfillTarget::Zendesk => Source::Zendesk,
            BackfillTarget::Gorgias => Source::Gorgias,
        },
        since: cli.since,
        statuses: if cli.status.is_empty() {
            vec!["open".into()]
        } else {
            cli.status
        },
        dry_run: cli.dry_run,
    };
    let mut progress = Shown::new(std::io::stderr().is_terminal());
    let report = crate::backfill::run(&s, &args, &mut progress).await;
    progress.done();
    let r = report?;
    print_summary(&args, &r);
    Ok(())
}

fn print_summary(args: &BackfillArgs, r: &Report) {
    if r.was_finished {
        println!(
            "backfill {} ({}) had already finished; nothing to do",
            args.source,
            args.listing()
        );
        return;
    }
    if args.dry_run {
        println!("dry run: {} tickets listed, nothing written", r.listed);
        for (tag, n) in &r.would_tag {
            println!("  {n:>8} would get {tag}");
        }
        println!("  {:>8} would get no new tag", r.nothing_to_write);
        if r.no_email > 0 {
            println!("  ({} of them have no requester email)", r.no_email);
        }
        return;
    }
    println!(
        "backfill {} finished{}: {} tickets listed, {} queued, {} queued before",
        args.source,
        if r.resumed { " (resumed)" } else { "" },
        r.listed,
        r.queued,
        r.already_queued
    );
}

/// A bar with rate and ETA on a terminal; one plain line per page otherwise.
struct Shown {
    terminal: bool,
    bar: Option<ProgressBar>,
    started: Instant,
    total: Option<u64>,
    done_before: u64,
}

impl Shown {
    fn new(terminal: bool) -> Shown {
        Shown {
            terminal,
            bar: None,
            started: Instant::now(),
            total: None,
            done_before: 0,
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Shown {
    fn start(&mut self, total: Option<u64>, done_before: u64) {
        self.total = total;
        self.done_before = done_before;
        if !self.terminal {
            return;
        }
        // The bar counts this run's tickets; the listing's total less what earlier runs did.
        let (bar, template) = match total {
            Some(n) => (
                ProgressBar::new(n.saturating_sub(done_before)),
                "{bar:40} {pos}/{len} tickets ({per_sec}, eta {eta}) {msg}",
            ),
            None => (
                ProgressBar::new_spinner(),
                "{spinner} {elapsed_precise} {pos} tickets ({per_sec}) {msg}",
            ),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(bar);
    }

    fn page(&mut self, r: &Report) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(r.listed);
                bar.set_message(format!("{} queued", r.queued));
            }
            None => {
                let secs = self.started.elapsed().as_secs_f64().max(0.001);
                let of = self
                    .total
                    .map(|n| format!(" of {}", n.saturating_sub(self.done_before)))
                    .unwrap_or_default();
                eprintln!(
                    "backfill: {}{of} tickets listed, {} queued, {} queued before ({:.1} tickets/s)",
                    r.listed,
                    r.queued,
                    r.already_queued,
                    r.listed as f64 / secs
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_a_lower_case_word() {
        assert_eq!(parse_status(" Pending "), Ok("pending".into()));
        assert!(parse_status("open status:closed").is_err());
        assert!(parse_status("").is_err());
    }
}
