//! Acknowledged writes survive a crash: `kill -9` during a burst of concurrent sends, then
//! a restart, and every event that got a 200 is there exactly once (the benchmark's crash
//! check, run against the binary under test).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_sends_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_converge"));
    let result = converge_bench::crash::crash_check(bin, dir.path(), 400)
        .await
        .expect("crash check passes");
    assert!(result["acknowledged"].as_u64().unwrap() > 0, "{result}");
    assert_eq!(result["lost"], 0);
    assert_eq!(result["duplicated"], 0);
}
