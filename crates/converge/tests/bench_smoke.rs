//! Keeps the benchmark tool working: every scenario runs at smoke size against a real
//! server. It checks counts (every message delivered to every listener), never timings.

mod common;

use std::time::Duration;

use common::TestServer;
use converge_bench::scenarios::{Bench, Plan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_at_smoke_size() {
    let t = TestServer::start().await;
    let plan = Plan::smoke();
    let mut bench = Bench::new(&t.base, Some(std::process::id()), plan.clone());
    let setup = bench.register_users().await.unwrap();
    assert!(setup["users"].as_u64().unwrap() >= plan.fanout as u64);

    let seq = bench.sequential_send().await.unwrap();
    assert_eq!(seq["count"], plan.seq_sends);
    let concurrent = bench.concurrent_send().await.unwrap();
    assert_eq!(concurrent["events"], plan.senders * plan.sends_per_sender);
    assert!(concurrent["cpu_ms_per_event"].is_number());
    let delivery = bench
        .delivery(plan.listeners, 5, Duration::from_millis(20))
        .await
        .unwrap();
    assert_eq!(delivery["count"], delivery["expected"], "{delivery}");
    let fanout = bench
        .delivery(plan.fanout, plan.fanout_messages, Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(fanout["count"], fanout["expected"], "{fanout}");
    let initial = bench.initial_sync().await.unwrap();
    assert!(initial["lazy_ms"].is_number() && initial["full_ms"].is_number());
    let webhook = bench.webhook().await.unwrap();
    assert_eq!(
        webhook["posts"],
        plan.senders * plan.sends_per_sender,
        "{webhook}"
    );
    let keys = bench.keys().await.unwrap();
    assert_eq!(keys["query_users"], plan.keys_query_users, "{keys}");
    assert!(keys["claim_ms"].is_number(), "{keys}");
    let to_device = bench.to_device().await.unwrap();
    assert_eq!(to_device["count"], to_device["expected"], "{to_device}");
    let big_room = bench.big_room().await.unwrap();
    assert_eq!(big_room["members"], plan.big_room_members, "{big_room}");
    assert!(big_room["cpu_ms_per_event"].is_number(), "{big_room}");
    let sliding = bench.sliding_sync().await.unwrap();
    assert_eq!(sliding["supported"], true, "{sliding}");
    assert_eq!(sliding["rooms"], plan.sliding_rooms, "{sliding}");
    assert_eq!(sliding["samples"], plan.sliding_samples, "{sliding}");
    let push = converge_bench::push_cost::measure(50, 20).await.unwrap();
    assert_eq!(
        push["notified_per_event"], 49,
        "default rules notify every other member: {push}"
    );
    let idle = bench.idle_long_polls().await.unwrap();
    assert_eq!(idle["finished_early"], 0, "idle long-polls wait: {idle}");
    t.stop().await;
}
