//! The Converge load generator as a library: a minimal Matrix client, the scenarios the
//! benchmark runs, percentile statistics, process readings, and the crash check.
//!
//! It speaks only the client-server API over HTTP, so it measures any homeserver the same
//! way; Converge and Synapse are compared with one run of it each.

pub mod client;
pub mod crash;
pub mod procfs;
pub mod scenarios;
pub mod stats;
