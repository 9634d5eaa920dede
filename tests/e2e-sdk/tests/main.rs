//! The end-to-end tests, one module per file of this directory, built as one test binary.

// The timeline's futures are nested too deeply for rustc's default query depth.
#![recursion_limit = "256"]

mod encryption;
mod room_list;
mod timeline;
