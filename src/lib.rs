//! ltv-tagger: signed helpdesk webhooks in, VIP / dispute tags out, from the shop's own order data.
//!
//! Data flow: `webhooks` (authenticate raw bytes, parse) → `store` (inbox + job, one commit) →
//! `worker` (lease a job) → `helpdesk` (requester email) → `orders` (LTV, disputes) → `policy`
//! (tags) → `helpdesk` (write tags, paced) → `store` (audit, finish).

pub mod cli;
pub mod config;
pub mod demo;
pub mod domain;
pub mod helpdesk;
pub mod metrics;
pub mod orders;
pub mod policy;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod webhooks;
pub mod worker;
