//! Alert rules on device telemetry, such as `temp > 30`: parsed from chat, stored as JSON
//! with the device, and evaluated on every sample. A rule fires when it starts to hold and
//! clears when it stops.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            "==" | "=" => Op::Eq,
            "!=" => Op::Ne,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
}

/// One rule: `field op threshold`, where `field` may be a dotted path into the sample.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub field: String,
    pub op: Op,
    /// The number compared with; the admin API also accepts it as `value`.
    #[serde(alias = "value")]
    pub threshold: f64,
}

impl Alert {
    /// Parses `temp > 30` (spaces around the operator optional).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let at = text
            .find(['<', '>', '=', '!'])
            .ok_or("an alert looks like `temp > 30` (operators: > >= < <= == !=)")?;
        let field = text[..at].trim();
        let rest = &text[at..];
        let op_len = if rest[1..].starts_with('=') { 2 } else { 1 };
        let op = Op::parse(&rest[..op_len]).ok_or("unknown operator: use > >= < <= == !=")?;
        let threshold: f64 = rest[op_len..]
            .trim()
            .parse()
            .map_err(|_| "the threshold must be a number")?;
        let alert = Self {
            field: field.to_owned(),
            op,
            threshold,
        };
        alert.check()?;
        Ok(alert)
    }

    /// Checks a rule from anywhere (chat or the admin API): a field name of at most 100
    /// bytes and a finite threshold.
    pub fn check(&self) -> Result<(), String> {
        if self.field.trim().is_empty() || self.field.len() > 100 || !self.threshold.is_finite() {
            return Err(
                "an alert needs a field name (at most 100 bytes) and a finite number".into(),
            );
        }
        Ok(())
    }

    /// The field's number in `values`, if it has one.
    pub fn value(&self, values: &Map<String, Value>) -> Option<f64> {
        let mut parts = self.field.split('.');
        let mut current = values.get(parts.next()?)?;
        for part in parts {
            current = current.get(part)?;
        }
        match current {
            Value::Number(n) => n.as_f64(),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            _ => None,
        }
    }

    /// Whether the rule holds for `values`; `None` if the field is absent or not a number.
    pub fn holds(&self, values: &Map<String, Value>) -> Option<bool> {
        let v = self.value(values)?;
        let t = self.threshold;
        Some(match self.op {
            Op::Gt => v > t,
            Op::Ge => v >= t,
            Op::Lt => v < t,
            Op::Le => v <= t,
            Op::Eq => v == t,
            Op::Ne => v != t,
        })
    }
}

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.field, self.op.as_str(), self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn rules_parse_with_or_without_spaces() {
        let a = Alert::parse("temp > 30").unwrap();
        assert_eq!(
            (a.field.as_str(), a.op, a.threshold),
            ("temp", Op::Gt, 30.0)
        );
        assert_eq!(Alert::parse("hum>=80.5").unwrap().op, Op::Ge);
        assert_eq!(Alert::parse("env.co2 != 0").unwrap().field, "env.co2");
        assert_eq!(Alert::parse("door == 1").unwrap().to_string(), "door == 1");
        for bad in [
            "temp",
            "> 3",
            "temp > hot",
            "temp >> 3",
            "temp > inf",
            "temp <> 1",
        ] {
            assert!(Alert::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rules_hold_on_numbers_only() {
        let a = Alert::parse("temp > 30").unwrap();
        assert_eq!(a.holds(&values(json!({ "temp": 31.5 }))), Some(true));
        assert_eq!(a.holds(&values(json!({ "temp": 30 }))), Some(false));
        assert_eq!(a.holds(&values(json!({ "temp": "hot" }))), None);
        assert_eq!(a.holds(&values(json!({ "hum": 3 }))), None);
        let nested = Alert::parse("env.co2 >= 1000").unwrap();
        assert_eq!(
            nested.holds(&values(json!({ "env": { "co2": 1200 } }))),
            Some(true)
        );
        let flag = Alert::parse("open == 1").unwrap();
        assert_eq!(flag.holds(&values(json!({ "open": true }))), Some(true));
    }

    #[test]
    fn rules_round_trip_through_json() {
        let a = Alert::parse("temp <= -5").unwrap();
        let text = serde_json::to_string(&a).unwrap();
        assert!(text.contains("\"<=\""), "{text}");
        assert_eq!(serde_json::from_str::<Alert>(&text).unwrap(), a);
    }
}
