//! Latency summaries.

use std::time::Duration;

use serde_json::{Value, json};

/// p50, p99 and max of a set of durations, in milliseconds.
pub fn summary(samples: &mut [Duration]) -> Value {
    if samples.is_empty() {
        return json!({ "count": 0 });
    }
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        ms(samples[index])
    };
    json!({
        "count": samples.len(),
        "p50_ms": at(0.50),
        "p99_ms": at(0.99),
        "max_ms": ms(*samples.last().expect("not empty")),
    })
}

pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = summary(&mut samples);
        assert_eq!(s["count"], 100);
        assert_eq!(s["p50_ms"], 51.0);
        assert_eq!(s["p99_ms"], 99.0);
        assert_eq!(s["max_ms"], 100.0);
        assert_eq!(summary(&mut [])["count"], 0);
    }
}
