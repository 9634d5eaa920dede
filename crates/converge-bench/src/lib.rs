//! The Converge load generator as a library: a minimal Matrix client, the scenarios the
//! benchmark runs, percentile statistics, process readings, the crash check, and the
//! in-process measurement of push-rule evaluation.
//!
//! It speaks only the client-server API over HTTP, so it measures any homeserver the same
//! way; Converge and Synapse are compared with one run of it each.

pub mod client;
pub mod crash;
pub mod e2ee;
pub mod procfs;
pub mod push_cost;
pub mod scenarios;
pub mod sliding;
pub mod stats;
