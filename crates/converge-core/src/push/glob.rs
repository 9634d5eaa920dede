//! Glob patterns (`*`, `?`) compiled once, for whole values and for words in `content.body`.
//!
//! Spec: "Glob-style matching" in the appendices, and the `event_match` condition and content
//! rules in the push module. Matching is case-insensitive. A pattern without wildcards (every
//! server-default rule's) is compared directly, without a regex: ASCII values are compared
//! ASCII-case-insensitively and others through `str::to_lowercase`. A pattern with wildcards
//! becomes one regex with Unicode case folding. Both are "case-insensitive" in the sense the spec
//! leaves to the implementation; they differ only on rare characters whose lowercase and case
//! fold disagree.
//!
//! Word boundaries are the spec's: the start or end of the value, or any character outside
//! `[A-Za-z0-9_]`. Like Synapse, a match may start (or end) with such a character itself, so
//! `@room` matches in `hi@room`.

use regex::{Regex, RegexBuilder};

/// The most memory one compiled pattern may take; patterns are capped in length when clients set
/// them, and this also bounds patterns that reached the store another way.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A regex matching one character outside the spec's word characters, case-sensitively so that
/// case folding cannot add the Kelvin sign or long s to `[A-Za-z]`.
const NON_WORD: &str = "(?-i:[^A-Za-z0-9_])";

/// Whether a byte is one of the spec's word characters; every byte of a non-ASCII character is
/// not, which is what the spec's definition says about those characters.
fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// A pattern that must match a whole value (`event_match` on any key but `content.body`).
#[derive(Clone, Debug)]
pub(crate) enum WholeGlob {
    /// No wildcards: the pattern, lowercased.
    Literal(Box<str>),
    Regex(Regex),
}

impl WholeGlob {
    pub(crate) fn new(pattern: &str) -> Result<Self, String> {
        if !has_wildcards(pattern) {
            return Ok(WholeGlob::Literal(pattern.to_lowercase().into_boxed_str()));
        }
        build(&format!("(?is)^{}$", glob_to_regex(pattern))).map(WholeGlob::Regex)
    }

    pub(crate) fn matches(&self, value: &str) -> bool {
        match self {
            WholeGlob::Literal(lower) => {
                if value.is_ascii() {
                    value.eq_ignore_ascii_case(lower)
                } else {
                    value.to_lowercase() == **lower
                }
            }
            WholeGlob::Regex(regex) => regex.is_match(value),
        }
    }
}

/// A pattern that must match a run of `content.body` starting and ending at word boundaries
/// (content rules, and `event_match` on `content.body`).
#[derive(Clone, Debug)]
pub(crate) enum WordGlob {
    /// No wildcards: the pattern, lowercased. Empty never matches: it would otherwise match
    /// every message, which no one setting a rule can have meant.
    Literal(Box<str>),
    Regex(Regex),
}

impl WordGlob {
    pub(crate) fn new(pattern: &str) -> Result<Self, String> {
        if !has_wildcards(pattern) {
            return Ok(WordGlob::Literal(pattern.to_lowercase().into_boxed_str()));
        }
        let regex = format!(
            r"(?is)(?:^|{NON_WORD}|(?-u:\b)){}(?:(?-u:\b)|{NON_WORD}|$)",
            glob_to_regex(pattern)
        );
        build(&regex).map(WordGlob::Regex)
    }

    /// Matches against the body and its lowercased copy (made once per event).
    pub(crate) fn matches(&self, body: &str, body_lower: &str) -> bool {
        match self {
            WordGlob::Literal(lower) => contains_word(body_lower, lower),
            WordGlob::Regex(regex) => regex.is_match(body),
        }
    }
}

/// Whether `needle` occurs in `haystack` starting and ending at word boundaries; both must
/// already be lowercased. Occurrences may overlap, so a bad one does not hide a good one.
pub(crate) fn contains_word(haystack: &str, needle: &str) -> bool {
    let (Some(&first), Some(&last)) = (needle.as_bytes().first(), needle.as_bytes().last()) else {
        return false;
    };
    let bytes = haystack.as_bytes();
    let step = needle.chars().next().map_or(1, char::len_utf8);
    let mut from = 0;
    while let Some(offset) = haystack[from..].find(needle) {
        let start = from + offset;
        let end = start + needle.len();
        let starts_well = !is_word(first) || start == 0 || !is_word(bytes[start - 1]);
        let ends_well = !is_word(last) || end == bytes.len() || !is_word(bytes[end]);
        if starts_well && ends_well {
            return true;
        }
        // The match began on a character boundary with the needle's first character.
        from = start + step;
    }
    false
}

pub(crate) fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

/// Translates a glob into regex syntax: literal text is escaped, and each run of wildcards
/// becomes one bounded repetition (`?*?` is `.{2,}`), which keeps the regex small.
fn glob_to_regex(pattern: &str) -> String {
    let mut regex = String::with_capacity(pattern.len() * 2);
    let mut literal = String::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '*' && c != '?' {
            literal.push(c);
            continue;
        }
        regex.push_str(&regex::escape(&literal));
        literal.clear();
        let (mut singles, mut star) = (0usize, false);
        let mut wildcard = Some(c);
        while let Some(w) = wildcard {
            match w {
                '?' => singles += 1,
                _ => star = true,
            }
            wildcard = chars.next_if(|&next| next == '*' || next == '?');
        }
        if star {
            regex.push_str(&format!(".{{{singles},}}"));
        } else {
            regex.push_str(&format!(".{{{singles}}}"));
        }
    }
    regex.push_str(&regex::escape(&literal));
    regex
}

fn build(regex: &str) -> Result<Regex, String> {
    RegexBuilder::new(regex)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("pattern is too complex: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_runs_collapse() {
        let cases = [
            ("abc", "abc"),
            ("a*", "a.{0,}"),
            ("?**?", ".{2,}"),
            ("a??b", "a.{2}b"),
            ("a.b+(", r"a\.b\+\("),
            ("*x?", ".{0,}x.{1}"),
        ];
        for (glob, regex) in cases {
            assert_eq!(glob_to_regex(glob), regex, "{glob}");
        }
    }

    #[test]
    fn whole_value_globs() {
        // (pattern, value, matches)
        let cases = [
            // The spec's own example: `lunc?*` against topics.
            ("lunc?*", "Lunch plans", true),
            ("lunc?*", "LUNCH", true),
            ("lunc?*", " lunch", false),
            ("lunc?*", "lunc", false),
            // Whole-value: no implicit wildcards around a literal.
            ("m.room.message", "m.room.message", true),
            ("m.room.message", "M.ROOM.MESSAGE", true),
            ("m.room.message", "m.room.message.extra", false),
            ("room", "m.room.message", false),
            // The empty pattern matches only the empty value (`.m.rule.tombstone`'s state key).
            ("", "", true),
            ("", "x", false),
            ("*", "", true),
            ("*", "anything\nat all", true),
            ("?", "", false),
            // `?` is one character, not one byte.
            ("?", "é", true),
            ("??", "é", false),
            // Regex metacharacters are literal.
            ("m.room.*", "m.room.member", true),
            ("m.room.*", "mxroomxmember", false),
            ("a+b", "a+b", true),
            ("a+b", "aab", false),
            ("(x)*", "(x)yz", true),
            ("[ab]", "a", false),
            ("[ab]", "[AB]", true),
            // Case-insensitivity beyond ASCII, literal and wildcard.
            ("ÉCOLE", "école", true),
            ("É*", "école", true),
            ("straße", "STRASSE", false),
        ];
        for (pattern, value, expected) in cases {
            let glob = WholeGlob::new(pattern).unwrap();
            assert_eq!(
                glob.matches(value),
                expected,
                "pattern {pattern:?} against {value:?}"
            );
        }
    }

    #[test]
    fn word_globs() {
        // (pattern, body, matches)
        let cases = [
            // The spec's examples for `ex*ple`.
            ("ex*ple", "An example event.", true),
            ("ex*ple", "exple", true),
            ("ex*ple", "An exciting triple-whammy", true),
            ("ex*ple", "examples", false),
            // Literal words.
            ("cake", "I like cake!", true),
            ("cake", "CAKE", true),
            ("cake", "pancake", false),
            ("cake", "cakes", false),
            ("cake", "cake_", false),
            ("cake", "cake-lie", true),
            ("cake", "café cake", true),
            ("cake", "écake", true),
            ("cake", "line one\ncake", true),
            ("cake lie", "the cake  lie", false),
            ("cake*lie", "the cake is a\nlie", true),
            // A pattern that begins or ends with a non-word character is its own boundary.
            ("@room", "hi @room!", true),
            ("@room", "hi@room", true),
            ("@room", "@roomy", false),
            // A bad occurrence must not hide an overlapping good one.
            ("a-a", "xa-a-a", true),
            ("a-a", "xa-a-ax", false),
            // Wildcards at word boundaries, including before non-ASCII letters.
            ("c?ke", "écake", true),
            ("c?ke", "xcake", false),
            ("?", "a b", true),
            ("?", "ab", false),
            ("*", "", true),
            // The empty literal never matches.
            ("", "", false),
            ("", "anything", false),
        ];
        for (pattern, body, expected) in cases {
            let glob = WordGlob::new(pattern).unwrap();
            assert_eq!(
                glob.matches(body, &body.to_lowercase()),
                expected,
                "pattern {pattern:?} against {body:?}"
            );
        }
    }

    #[test]
    fn literal_and_regex_paths_agree_on_ascii() {
        // `cak?` forces the regex path; `cake` takes the literal one.
        for body in [
            "cake", "a cake.", "cakes", "pancake", "CAKE!", "_cake", "cake_",
        ] {
            let literal = WordGlob::new("cake")
                .unwrap()
                .matches(body, &body.to_lowercase());
            let regex = WordGlob::new("cak?")
                .unwrap()
                .matches(body, &body.to_lowercase());
            assert_eq!(literal, regex, "{body:?}");
        }
    }
}
