//! ltv-tagger: signed helpdesk webhooks in, VIP / dispute tags out, from the shop's own order data.
//!
//! The path of one webhook through the modules:
//!
//! ```text
//! http::webhooks   read the body (bounded) → verify signature/token on the raw bytes → parse
//! state::group_commit  commit inbox row + job, with the batch it arrived in, in one transaction → 202
//! worker           claim the job under a lease (state::queue) →
//!   pipeline         resolve the requester (helpdesk) → LTV + disputes (orders) →
//!                    decide (policy, pure) → write tags (helpdesk, paced by rate_budget)
//!   settle           finish + audit row (state::audit), retry later, or dead-letter
//! ```
//!
//! | module | concern |
//! |---|---|
//! | [`app`] | composition root: build from settings, run until stopped, shutdown order |
//! | [`cli`] | the subcommands (`serve`, `migrate`, `check-config`, `explain`, `jobs`, …) |
//! | [`clock`] | the millisecond timestamp the state DB stores |
//! | [`config`] | layered settings: schema, validation by key, secrets, redaction |
//! | [`connect_error`] | connection errors in words: refused, DNS, TLS, auth, timed out |
//! | [`domain`] | checked values: ids, emails, tags, job states and outcomes |
//! | [`http`] | routes: webhooks (ingest), health, metrics |
//! | [`state`] | the service's own DB: inbox, queue and leases, reclaim, dead letters, audit, retention |
//! | [`rate_budget`] | the token bucket per helpdesk account, shared by every replica |
//! | [`helpdesk`] | Zendesk and Gorgias REST clients, looked up by source |
//! | [`orders`] | the shop's order DB: read-only pools, `:email` placeholders, row decoding, cache |
//! | [`policy`] | the decision: customer numbers → tags |
//! | [`thresholds`] | the `thresholds` report: figures per tier, distribution, what-if, plot |
//! | [`reload`] | hot reload of `[policy]`: SIGHUP and the watched `--config` file |
//! | [`backfill`] | `backfill zendesk/gorgias`: list existing tickets, queue them within a share of the budget, resume |
//! | [`setup`] | `setup zendesk` / `setup gorgias`: webhook, trigger, integration through the admin APIs |
//! | [`worker`] | dispatcher, leased job, pipeline, settle |
//! | [`metrics`], [`telemetry`] | Prometheus registry; tracing subscriber |
//! | [`demo`] | the `demo` subcommand: a sample shop and a small fake Zendesk |

pub mod app;
pub mod backfill;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connect_error;
pub mod demo;
pub mod domain;
pub mod helpdesk;
pub mod http;
pub mod metrics;
pub mod orders;
pub mod policy;
pub mod rate_budget;
pub mod reload;
pub mod setup;
pub mod state;
pub mod telemetry;
pub mod thresholds;
pub mod worker;
