//! In-process metrics, rendered in the Prometheus text format.
//!
//! Requests are counted per method, route template and status, with a latency histogram.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use converge_service::WriterStats;
use http::{Method, StatusCode};

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

#[derive(Default)]
struct Series {
    count: u64,
    sum_seconds: f64,
    /// Observations at or under each bound of `BUCKETS` (not cumulative).
    buckets: [u64; BUCKETS.len()],
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl Metrics {
    pub fn record(&self, method: &Method, route: &str, status: StatusCode, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let series = requests
            .entry((method.to_string(), route.to_owned(), status.as_u16()))
            .or_default();
        series.count += 1;
        series.sum_seconds += seconds;
        if let Some(i) = BUCKETS.iter().position(|&bound| seconds <= bound) {
            series.buckets[i] += 1;
        }
    }

    pub fn render(&self, writer: &WriterStats) -> String {
        let mut out = String::new();
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        out.push_str("# HELP converge_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE converge_http_requests_total counter\n");
        for ((method, route, status), series) in requests.iter() {
            let _ = writeln!(
                out,
                "converge_http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                series.count
            );
        }
        out.push_str(
            "# HELP converge_http_request_duration_seconds Time to answer HTTP requests.\n",
        );
        out.push_str("# TYPE converge_http_request_duration_seconds histogram\n");
        for ((method, route, status), series) in requests.iter() {
            let labels = format!(
                "method=\"{method}\",route=\"{}\",status=\"{status}\"",
                escape(route)
            );
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(series.buckets) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "converge_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "converge_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                series.count
            );
            let _ = writeln!(
                out,
                "converge_http_request_duration_seconds_sum{{{labels}}} {}",
                series.sum_seconds
            );
            let _ = writeln!(
                out,
                "converge_http_request_duration_seconds_count{{{labels}}} {}",
                series.count
            );
        }
        out.push_str(
            "# HELP converge_store_commits_total Transactions committed by the ordered writer.\n",
        );
        out.push_str("# TYPE converge_store_commits_total counter\n");
        let _ = writeln!(out, "converge_store_commits_total {}", writer.commits);
        out.push_str(
            "# HELP converge_store_writes_total Writes committed by the ordered writer.\n",
        );
        out.push_str("# TYPE converge_store_writes_total counter\n");
        let _ = writeln!(out, "converge_store_writes_total {}", writer.writes);
        out
    }
}

/// Appends every gateway's counters, labelled by gateway.
pub fn render_gateways(out: &mut String, gateways: &[&converge_gateways::Stats]) {
    let Some(first) = gateways.first() else {
        return;
    };
    for (i, (name, help, _)) in first.counters().iter().enumerate() {
        let _ = writeln!(out, "# HELP converge_gateway_{name} {help}");
        let _ = writeln!(out, "# TYPE converge_gateway_{name} counter");
        for stats in gateways {
            let value = stats.counters()[i].2;
            let _ = writeln!(
                out,
                "converge_gateway_{name}{{gateway=\"{}\"}} {value}",
                stats.name
            );
        }
    }
    out.push_str("# HELP converge_gateway_up Whether a gateway's connection is up.\n");
    out.push_str("# TYPE converge_gateway_up gauge\n");
    for stats in gateways {
        if let Some(up) = stats.connected() {
            let _ = writeln!(
                out,
                "converge_gateway_up{{gateway=\"{}\"}} {}",
                stats.name,
                u8::from(up)
            );
        }
    }
}

/// Per-appservice transaction counters.
pub fn render_appservices(
    out: &mut String,
    services: &[(String, converge_service::appservices::TxnStats)],
) {
    if services.is_empty() {
        return;
    }
    out.push_str("# HELP converge_appservice_transactions_total Transactions sent to an application service, by outcome.\n");
    out.push_str("# TYPE converge_appservice_transactions_total counter\n");
    for (id, stats) in services {
        let id = escape(id);
        let _ = writeln!(
            out,
            "converge_appservice_transactions_total{{appservice=\"{id}\",outcome=\"sent\"}} {}",
            stats.sent
        );
        let _ = writeln!(
            out,
            "converge_appservice_transactions_total{{appservice=\"{id}\",outcome=\"failed\"}} {}",
            stats.failed
        );
    }
    out.push_str("# HELP converge_appservice_transaction_seconds_total Time spent on transactions an application service took.\n");
    out.push_str("# TYPE converge_appservice_transaction_seconds_total counter\n");
    for (id, stats) in services {
        let _ = writeln!(
            out,
            "converge_appservice_transaction_seconds_total{{appservice=\"{}\"}} {}",
            escape(id),
            stats.latency_seconds
        );
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_cumulative_buckets() {
        let metrics = Metrics::default();
        let route = "/_matrix/client/v3/login";
        metrics.record(
            &Method::POST,
            route,
            StatusCode::OK,
            Duration::from_micros(800),
        );
        metrics.record(
            &Method::POST,
            route,
            StatusCode::OK,
            Duration::from_millis(20),
        );
        let text = metrics.render(&WriterStats {
            commits: 3,
            writes: 7,
        });
        let labels = format!("method=\"POST\",route=\"{route}\",status=\"200\"");
        assert!(text.contains(&format!("converge_http_requests_total{{{labels}}} 2")));
        assert!(text.contains(&format!(
            "converge_http_request_duration_seconds_bucket{{{labels},le=\"0.001\"}} 1"
        )));
        assert!(text.contains(&format!(
            "converge_http_request_duration_seconds_bucket{{{labels},le=\"0.025\"}} 2"
        )));
        assert!(text.contains("converge_store_writes_total 7"));
    }

    #[test]
    fn gateway_counters_are_labelled_by_gateway() {
        let webhooks = converge_gateways::Stats::new("webhooks", false);
        let mqtt = converge_gateways::Stats::new("mqtt", true);
        converge_gateways::Stats::add(&mqtt.dropped);
        converge_gateways::Stats::add(&mqtt.dropped);
        converge_gateways::Stats::add(&webhooks.messages_in);
        mqtt.set_connected(true);
        let mut text = String::new();
        render_gateways(&mut text, &[&webhooks, &mqtt]);
        assert!(
            text.contains("converge_gateway_dropped_total{gateway=\"mqtt\"} 2"),
            "{text}"
        );
        assert!(text.contains("converge_gateway_messages_in_total{gateway=\"webhooks\"} 1"));
        assert!(text.contains("converge_gateway_up{gateway=\"mqtt\"} 1"));
        assert!(
            !text.contains("converge_gateway_up{gateway=\"webhooks\"}"),
            "no connection, no gauge"
        );
        assert_eq!(
            text.matches("# TYPE converge_gateway_errors_total counter")
                .count(),
            1
        );
    }
}
