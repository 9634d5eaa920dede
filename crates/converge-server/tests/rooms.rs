//! stub
mod common;
#[test]
fn stub() {}
