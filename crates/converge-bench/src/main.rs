//! `converge-bench`: runs the load scenarios against a homeserver and prints JSON lines and
//! a table; `crash-check` kills a Converge server mid-burst and checks what survived.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use converge_bench::scenarios::{Bench, Plan};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "converge-bench",
    about = "Load and durability checks for Matrix homeservers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the load scenarios against a running server with open registration and no rate limits.
    Run {
        /// The server's base URL, e.g. http://127.0.0.1:8008.
        #[arg(long)]
        base_url: String,
        /// The server's process ID, for memory and CPU readings.
        #[arg(long)]
        pid: Option<u32>,
        /// A name for the server in the output.
        #[arg(long, default_value = "server")]
        label: String,
        /// Tiny sizes that finish in seconds (for CI).
        #[arg(long)]
        smoke: bool,
        /// Scenarios to run (comma-separated): seq,concurrent,delivery,fanout,initial_sync,idle,
        /// keys,to_device,big_room,sliding_sync, and webhook, mqtt (Converge's gateways; not run
        /// by default).
        #[arg(
            long,
            default_value = "seq,concurrent,delivery,fanout,initial_sync,idle,keys,to_device,big_room,sliding_sync"
        )]
        scenarios: String,
        /// Override the number of idle long-polling clients.
        #[arg(long)]
        idle_clients: Option<usize>,
        /// Override the number of fan-out listeners.
        #[arg(long)]
        fanout: Option<usize>,
        /// The MQTT broker the server's gateway uses, host:port (the `mqtt` scenario).
        #[arg(long, default_value = "127.0.0.1:1883")]
        mqtt_broker: String,
        /// The server's `gateways.mqtt.topic_prefix`.
        #[arg(long, default_value = "converge")]
        mqtt_prefix: String,
    },
    /// Push-rule evaluation per event in a room of many members, in process with Converge's
    /// evaluator and the default rules.
    PushCost {
        #[arg(long, default_value_t = 1000)]
        members: usize,
        #[arg(long, default_value_t = 2000)]
        events: usize,
        #[arg(long, default_value = "converge")]
        label: String,
    },
    /// Kill -9 a Converge server during a burst of sends, restart it, and check every
    /// acknowledged event is stored exactly once.
    CrashCheck {
        /// The converge binary.
        #[arg(long)]
        bin: PathBuf,
        #[arg(long, default_value_t = 400)]
        sends: usize,
    },
}

fn emit(label: &str, scenario: &str, result: &Value) {
    let mut line = json!({ "server": label, "scenario": scenario });
    if let (Some(line), Some(result)) = (line.as_object_mut(), result.as_object()) {
        line.extend(result.clone());
    }
    println!("{line}");
    eprintln!("{label:>10} | {scenario:<14} | {result}");
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("converge-bench: {err}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Run {
            base_url,
            pid,
            label,
            smoke,
            scenarios,
            idle_clients,
            fanout,
            mqtt_broker,
            mqtt_prefix,
        } => {
            let mut plan = if smoke { Plan::smoke() } else { Plan::full() };
            if let Some(n) = idle_clients {
                plan.idle_clients = n;
            }
            if let Some(n) = fanout {
                plan.fanout = n;
            }
            let mut bench = Bench::new(&base_url, pid, plan.clone());
            let idle_rss = pid.and_then(converge_bench::procfs::rss_kib);
            emit(&label, "idle_memory", &json!({ "rss_kib": idle_rss }));
            emit(&label, "setup", &bench.register_users().await?);
            for scenario in scenarios.split(',').map(str::trim) {
                let result = match scenario {
                    "seq" => bench.sequential_send().await?,
                    "concurrent" => bench.concurrent_send().await?,
                    "delivery" => {
                        let messages = (plan.rate_per_s * plan.delivery_secs).round() as usize;
                        let interval = Duration::from_secs_f64(1.0 / plan.rate_per_s);
                        let mut result = bench
                            .delivery(plan.listeners, messages.max(1), interval)
                            .await?;
                        result["rate_per_s"] = json!(plan.rate_per_s);
                        result
                    }
                    "fanout" => {
                        bench
                            .delivery(
                                plan.fanout,
                                plan.fanout_messages,
                                Duration::from_millis(500),
                            )
                            .await?
                    }
                    "initial_sync" => bench.initial_sync().await?,
                    "idle" => bench.idle_long_polls().await?,
                    "keys" => bench.keys().await?,
                    "to_device" => bench.to_device().await?,
                    "big_room" => bench.big_room().await?,
                    "sliding_sync" => bench.sliding_sync().await?,
                    "webhook" => bench.webhook().await?,
                    "mqtt" => {
                        let (host, port) = mqtt_broker
                            .rsplit_once(':')
                            .and_then(|(h, p)| Some((h, p.parse().ok()?)))
                            .ok_or("--mqtt-broker must be host:port")?;
                        bench.mqtt((host, port), &mqtt_prefix).await?
                    }
                    other => return Err(format!("unknown scenario {other}")),
                };
                emit(&label, scenario, &result);
            }
            Ok(())
        }
        Command::PushCost {
            members,
            events,
            label,
        } => {
            let result = converge_bench::push_cost::measure(members.max(2), events).await?;
            emit(&label, "push_cost", &result);
            Ok(())
        }
        Command::CrashCheck { bin, sends } => {
            let dir = std::env::temp_dir().join(format!("converge-crash-{}", std::process::id()));
            let result = converge_bench::crash::crash_check(&bin, &dir, sends).await;
            let _ = std::fs::remove_dir_all(&dir);
            emit("converge", "crash_check", &result?);
            Ok(())
        }
    }
}
