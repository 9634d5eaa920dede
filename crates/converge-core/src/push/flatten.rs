//! An event flattened once into dot-separated property paths, so many users' rules can read it.
//!
//! Spec: "Dot-separated property paths" in the appendices. A literal `.` or `\` inside a property
//! name is escaped with a backslash, so `content.m\.relates_to` is the `m.relates_to` property of
//! `content`. Every path this module stores or is asked for is in that canonical escaped form;
//! [`canonical_path`] turns a condition's `key` into it once, when the rules are compiled.
//!
//! Only what push conditions can compare is kept: strings, integers within canonical JSON's
//! range, booleans, `null`, and arrays of those. Objects are descended into; floats, oversized
//! integers and the non-scalar members of arrays are dropped, because no condition can match them.

use std::collections::HashMap;

use serde_json::Value;

/// Canonical JSON only allows integers in `[-(2**53)+1, (2**53)-1]`; conditions compare no others.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// How deep the flattener descends; serde_json refuses deeper documents when parsing, so this only
/// guards against values built in memory.
const MAX_DEPTH: usize = 128;

/// The paths that the server-default rules read, kept in fixed slots so that evaluating those
/// rules for a thousand users costs no hashing at all.
pub(crate) const KNOWN_PATHS: [&str; 10] = [
    "type",
    "sender",
    "state_key",
    "room_id",
    "content.body",
    "content.msgtype",
    "content.membership",
    r"content.m\.relates_to.rel_type",
    r"content.m\.mentions.room",
    r"content.m\.mentions.user_ids",
];

const SENDER: usize = 1;
const ROOM_ID: usize = 3;
const BODY: usize = 4;

/// A JSON scalar that a push condition can compare exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scalar {
    Null,
    Bool(bool),
    /// An integer within canonical JSON's range.
    Integer(i64),
    String(String),
}

impl Scalar {
    /// The scalar for a JSON value, if it is one that conditions compare.
    fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(Scalar::Null),
            Value::Bool(b) => Some(Scalar::Bool(*b)),
            Value::Number(n) => n
                .as_i64()
                .filter(|n| (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(n))
                .map(Scalar::Integer),
            Value::String(s) => Some(Scalar::String(s.clone())),
            Value::Array(_) | Value::Object(_) => None,
        }
    }

    /// Converts ruma's condition value; ruma already limits integers to canonical JSON's range.
    pub(crate) fn from_ruma(value: &ruma::push::ScalarJsonValue) -> Self {
        use ruma::push::ScalarJsonValue as R;
        match value {
            R::Null => Scalar::Null,
            R::Bool(b) => Scalar::Bool(*b),
            R::Integer(i) => Scalar::Integer(i64::from(*i)),
            R::String(s) => Scalar::String(s.clone()),
        }
    }
}

/// A value at a flattened path: a scalar, or an array of the scalars it held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlatValue {
    Scalar(Scalar),
    Array(Vec<Scalar>),
}

impl FlatValue {
    /// The string, if this is one; `event_match` only ever matches strings.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FlatValue::Scalar(Scalar::String(s)) => Some(s),
            _ => None,
        }
    }

    /// The array, if this is one.
    pub fn as_array(&self) -> Option<&[Scalar]> {
        match self {
            FlatValue::Array(items) => Some(items),
            FlatValue::Scalar(_) => None,
        }
    }

    /// Whether this is exactly `scalar`, without casting between types.
    pub fn is(&self, scalar: &Scalar) -> bool {
        matches!(self, FlatValue::Scalar(s) if s == scalar)
    }
}

/// A path resolved when rules are compiled: a fixed slot for the common ones, otherwise the
/// canonical path string to hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathRef {
    Known(usize),
    Other(Box<str>),
}

impl PathRef {
    /// Resolves a path already in canonical form.
    pub(crate) fn new(canonical: String) -> Self {
        match KNOWN_PATHS.iter().position(|known| *known == canonical) {
            Some(slot) => PathRef::Known(slot),
            None => PathRef::Other(canonical.into_boxed_str()),
        }
    }
}

/// One event, flattened once and then read by every recipient's compiled rules.
#[derive(Clone, Debug, Default)]
pub struct FlattenedEvent {
    /// Values at [`KNOWN_PATHS`], by index.
    known: [Option<FlatValue>; KNOWN_PATHS.len()],
    /// Values at every other path, keyed by canonical path.
    other: HashMap<String, FlatValue>,
    /// `content.body` lowercased once, for word-boundary matching of literal patterns.
    body_lower: Option<String>,
    /// Whether `content` has an `m.mentions` property, whatever its value; the legacy mention
    /// rules stand down when it does (spec v1.7).
    has_mentions: bool,
}

impl FlattenedEvent {
    /// Flattens an event in the client format (with `type`, `sender`, `room_id`, `content` and,
    /// for state events, `state_key`).
    pub fn new(event: &Value) -> Self {
        let mut flat = FlattenedEvent::default();
        let mut path = String::new();
        if let Value::Object(fields) = event {
            for (name, value) in fields {
                push_segment(&mut path, name);
                flat.insert(&mut path, value, 1);
                path.clear();
            }
        }
        flat.has_mentions = event
            .get("content")
            .and_then(|content| content.get("m.mentions"))
            .is_some();
        flat.body_lower = flat.known[BODY]
            .as_ref()
            .and_then(FlatValue::as_str)
            .map(str::to_lowercase);
        flat
    }

    /// Records `value` at `path` (leaves `path` as it found it).
    fn insert(&mut self, path: &mut String, value: &Value, depth: usize) {
        match value {
            Value::Object(fields) => {
                if depth >= MAX_DEPTH {
                    return;
                }
                let len = path.len();
                for (name, child) in fields {
                    path.push('.');
                    push_segment(path, name);
                    self.insert(path, child, depth + 1);
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                let items = items.iter().filter_map(Scalar::from_json).collect();
                self.store(path, FlatValue::Array(items));
            }
            scalar => {
                if let Some(scalar) = Scalar::from_json(scalar) {
                    self.store(path, FlatValue::Scalar(scalar));
                }
            }
        }
    }

    fn store(&mut self, path: &str, value: FlatValue) {
        match KNOWN_PATHS.iter().position(|known| *known == path) {
            Some(slot) => self.known[slot] = Some(value),
            None => {
                self.other.insert(path.to_owned(), value);
            }
        }
    }

    /// The value at a canonical (escaped) path such as `content.m\.relates_to.rel_type`.
    pub fn get(&self, canonical_path: &str) -> Option<&FlatValue> {
        match KNOWN_PATHS
            .iter()
            .position(|known| *known == canonical_path)
        {
            Some(slot) => self.known[slot].as_ref(),
            None => self.other.get(canonical_path),
        }
    }

    pub(crate) fn get_ref(&self, path: &PathRef) -> Option<&FlatValue> {
        match path {
            PathRef::Known(slot) => self.known[*slot].as_ref(),
            PathRef::Other(path) => self.other.get(&**path),
        }
    }

    /// The event's sender, if it has a string one.
    pub fn sender(&self) -> Option<&str> {
        self.known[SENDER].as_ref().and_then(FlatValue::as_str)
    }

    /// The event's room ID, if it has a string one.
    pub fn room_id(&self) -> Option<&str> {
        self.known[ROOM_ID].as_ref().and_then(FlatValue::as_str)
    }

    /// `content.body` if it is a string, with its lowercased copy.
    pub(crate) fn body(&self) -> Option<(&str, &str)> {
        let body = self.known[BODY].as_ref().and_then(FlatValue::as_str)?;
        Some((body, self.body_lower.as_deref()?))
    }

    /// Whether `content` has an `m.mentions` property.
    pub fn has_mentions(&self) -> bool {
        self.has_mentions
    }

    /// How many paths hold a value; for tests and diagnostics.
    pub fn len(&self) -> usize {
        self.known.iter().flatten().count() + self.other.len()
    }

    /// Whether no path holds a value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Appends one property name to a path, escaping `\` and `.` as the spec requires.
fn push_segment(path: &mut String, name: &str) {
    for c in name.chars() {
        if c == '\\' || c == '.' {
            path.push('\\');
        }
        path.push(c);
    }
}

/// Splits a condition's `key` into property names, per the spec's escaping rules.
///
/// `\.` is a literal dot and `\\` a literal backslash; any other backslash is itself literal
/// (`\x` is a backslash followed by `x`), and an unescaped `.` separates names.
pub(crate) fn split_path(key: &str) -> Vec<String> {
    let mut names = vec![String::new()];
    let mut chars = key.chars().peekable();
    while let Some(c) = chars.next() {
        let current = names.last_mut().expect("names is never empty");
        match c {
            '\\' => match chars.peek() {
                Some(&next @ ('.' | '\\')) => {
                    current.push(next);
                    chars.next();
                }
                _ => current.push('\\'),
            },
            '.' => names.push(String::new()),
            other => current.push(other),
        }
    }
    names
}

/// The canonical form of a condition's `key`: the same path, escaped exactly as the flattener
/// escapes property names, so that `content.m\x` finds the property named `m\x`.
pub(crate) fn canonical_path(key: &str) -> String {
    let mut path = String::with_capacity(key.len());
    for (i, name) in split_path(key).iter().enumerate() {
        if i > 0 {
            path.push('.');
        }
        push_segment(&mut path, name);
    }
    path
}
