//! Application services (bridges): their registration, as bridges write it, and the rules
//! about it — which users, aliases and rooms each one claims, and which registrations may
//! not stand together.
//!
//! Spec: "Application Service API" (v1.16), "Registration"; plus the unstable keys bridges
//! use: `de.sorunome.msc2409.push_ephemeral` (ephemeral events), `org.matrix.msc3202`
//! (to-device, device lists and key counts), `io.element.msc4190` (devices made by the
//! appservice). Namespaces are regular expressions matched from the start of the ID, as
//! Synapse matches them.

use regex::Regex;
use serde::Deserialize;

/// One namespace entry: IDs matching `regex` belong to the appservice; `exclusive` ones
/// belong to it alone.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct NamespaceEntry {
    #[serde(default)]
    pub exclusive: bool,
    pub regex: String,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Namespaces {
    #[serde(default)]
    pub users: Vec<NamespaceEntry>,
    #[serde(default)]
    pub aliases: Vec<NamespaceEntry>,
    #[serde(default)]
    pub rooms: Vec<NamespaceEntry>,
}

/// A registration file, as bridges generate it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Registration {
    pub id: String,
    /// Where transactions and queries go; `None` for an appservice that only uses the
    /// client-server API.
    pub url: Option<String>,
    pub as_token: String,
    pub hs_token: String,
    pub sender_localpart: String,
    #[serde(default)]
    pub namespaces: Namespaces,
    /// Whether the appservice's requests are rate limited (the spec's default: yes).
    #[serde(default)]
    pub rate_limited: Option<bool>,
    #[serde(default)]
    pub receive_ephemeral: bool,
    #[serde(default, rename = "de.sorunome.msc2409.push_ephemeral")]
    pub push_ephemeral_unstable: bool,
    /// MSC3202: to-device messages, device lists and key counts in transactions, and
    /// device masquerading.
    #[serde(default, rename = "org.matrix.msc3202")]
    pub msc3202: bool,
    /// MSC4190: the appservice makes its users' devices with `PUT /devices/{deviceId}`.
    #[serde(default, rename = "io.element.msc4190")]
    pub msc4190: bool,
    /// Third-party protocols the appservice answers lookups for.
    #[serde(default)]
    pub protocols: Vec<String>,
}

/// What is wrong with a registration, naming the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct RegistrationError {
    pub key: String,
    pub reason: String,
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> RegistrationError {
    RegistrationError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// A namespace entry with its regex compiled.
#[derive(Clone, Debug)]
struct Compiled {
    exclusive: bool,
    regex: Regex,
    /// The source, for comparing registrations.
    source: String,
}

impl Compiled {
    fn new(entry: &NamespaceEntry, key: &str) -> Result<Self, RegistrationError> {
        if entry.regex.is_empty() {
            return Err(invalid(key, "the regex is empty"));
        }
        // Anchored at the start, as Synapse matches (`re.match`); bounded in size.
        let regex = regex::RegexBuilder::new(&format!("^(?:{})", entry.regex))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| invalid(key, format!("the regex does not compile: {e}")))?;
        Ok(Compiled {
            exclusive: entry.exclusive,
            regex,
            source: entry.regex.clone(),
        })
    }

    /// The literal text every match starts with (the regex up to its first special
    /// character), for telling whether two namespaces can claim the same ID.
    fn literal_prefix(&self) -> String {
        let mut prefix = String::new();
        let mut chars = self.source.trim_start_matches('^').chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(escaped) if !escaped.is_ascii_alphanumeric() => prefix.push(escaped),
                    _ => break,
                },
                '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '^' | '$' => {
                    break;
                }
                other => {
                    // A quantifier after this character makes it optional: stop before it.
                    if matches!(chars.peek(), Some('*' | '?' | '{')) {
                        break;
                    }
                    prefix.push(other);
                }
            }
        }
        prefix
    }
}

/// A registration ready for use: its namespaces compiled.
#[derive(Clone, Debug)]
pub struct AppService {
    pub registration: Registration,
    users: Vec<Compiled>,
    aliases: Vec<Compiled>,
    rooms: Vec<Compiled>,
    /// The appservice's own user, `@{sender_localpart}:{server}`.
    pub sender: String,
}

/// Whether a namespace check should count every entry or only exclusive ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    Any,
    Exclusive,
}

impl AppService {
    /// Checks a registration for `server_name` and compiles it.
    pub fn new(registration: Registration, server_name: &str) -> Result<Self, RegistrationError> {
        let r = &registration;
        if r.id.is_empty() || r.id.len() > 255 || r.id.contains(['/', ' ']) {
            return Err(invalid(
                "id",
                "must be 1 to 255 characters without '/' or spaces",
            ));
        }
        for (key, token) in [("as_token", &r.as_token), ("hs_token", &r.hs_token)] {
            if token.len() < 16 {
                return Err(invalid(
                    key,
                    "must be at least 16 characters (a random secret)",
                ));
            }
        }
        if r.as_token == r.hs_token {
            return Err(invalid("hs_token", "must differ from as_token"));
        }
        crate::id::validate_localpart(&r.sender_localpart, server_name)
            .map_err(|e| invalid("sender_localpart", e.to_string()))?;
        if let Some(url) = &r.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "url",
                "must be an http:// or https:// URL, or null",
            ));
        }
        let compile = |entries: &[NamespaceEntry], kind: &str| {
            entries
                .iter()
                .enumerate()
                .map(|(n, e)| Compiled::new(e, &format!("namespaces.{kind}[{n}].regex")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(AppService {
            users: compile(&r.namespaces.users, "users")?,
            aliases: compile(&r.namespaces.aliases, "aliases")?,
            rooms: compile(&r.namespaces.rooms, "rooms")?,
            sender: crate::id::user_id(&r.sender_localpart, server_name),
            registration,
        })
    }

    pub fn id(&self) -> &str {
        &self.registration.id
    }

    /// Whether the appservice's users may be rate limited.
    pub fn rate_limited(&self) -> bool {
        self.registration.rate_limited.unwrap_or(true)
    }

    /// Whether it wants typing, receipts and presence in its transactions.
    pub fn wants_ephemeral(&self) -> bool {
        self.registration.receive_ephemeral || self.registration.push_ephemeral_unstable
    }

    /// Whether a user ID is the appservice's: its sender, or in its user namespaces.
    pub fn claims_user(&self, user_id: &str, claim: Claim) -> bool {
        (claim == Claim::Any && user_id == self.sender) || matches(&self.users, user_id, claim)
    }

    pub fn claims_alias(&self, alias: &str, claim: Claim) -> bool {
        matches(&self.aliases, alias, claim)
    }

    pub fn claims_room(&self, room_id: &str, claim: Claim) -> bool {
        matches(&self.rooms, room_id, claim)
    }

    /// Whether two appservices claim exclusively namespaces that can hold the same ID:
    /// the same regex, or literal prefixes one of which starts the other (`@tg_.*` and
    /// `@tg_bot_.*`). Returns the kind of namespace that overlaps.
    pub fn overlaps(&self, other: &AppService) -> Option<&'static str> {
        let clash = |a: &[Compiled], b: &[Compiled]| {
            a.iter().filter(|x| x.exclusive).any(|x| {
                b.iter().filter(|y| y.exclusive).any(|y| {
                    let (px, py) = (x.literal_prefix(), y.literal_prefix());
                    x.source == y.source || px.starts_with(&py) || py.starts_with(&px)
                })
            })
        };
        if clash(&self.users, &other.users)
            || other.claims_user(&self.sender, Claim::Exclusive)
            || self.claims_user(&other.sender, Claim::Exclusive)
        {
            Some("users")
        } else if clash(&self.aliases, &other.aliases) {
            Some("aliases")
        } else if clash(&self.rooms, &other.rooms) {
            Some("rooms")
        } else {
            None
        }
    }
}

fn matches(entries: &[Compiled], id: &str, claim: Claim) -> bool {
    entries
        .iter()
        .any(|e| (claim == Claim::Any || e.exclusive) && e.regex.is_match(id))
}

/// Checks that registrations can stand together: distinct IDs and tokens, no exclusive
/// namespaces that overlap. The error names the offending registration's ID.
pub fn check_together(services: &[AppService]) -> Result<(), (String, RegistrationError)> {
    for (i, a) in services.iter().enumerate() {
        for b in &services[i + 1..] {
            let fail = |key: &str, reason: String| Err((b.id().to_owned(), invalid(key, reason)));
            if a.id() == b.id() {
                return fail("id", format!("the ID `{}` is registered twice", a.id()));
            }
            let (ra, rb) = (&a.registration, &b.registration);
            if [&ra.as_token, &ra.hs_token].contains(&&rb.as_token)
                || [&ra.as_token, &ra.hs_token].contains(&&rb.hs_token)
            {
                return fail("as_token", format!("a token is also one of `{}`'s", a.id()));
            }
            if let Some(kind) = a.overlaps(b) {
                return fail(
                    &format!("namespaces.{kind}"),
                    format!("an exclusive namespace overlaps one of `{}`", a.id()),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(id: &str, users: &[(&str, bool)]) -> Registration {
        Registration {
            id: id.into(),
            url: Some("http://127.0.0.1:29317".into()),
            as_token: format!("as-token-of-{id}-0123456789"),
            hs_token: format!("hs-token-of-{id}-0123456789"),
            sender_localpart: format!("{id}bot"),
            namespaces: Namespaces {
                users: users
                    .iter()
                    .map(|(regex, exclusive)| NamespaceEntry {
                        exclusive: *exclusive,
                        regex: (*regex).into(),
                    })
                    .collect(),
                aliases: vec![NamespaceEntry {
                    exclusive: true,
                    regex: format!("#{id}_.*:example.org"),
                }],
                rooms: vec![],
            },
            rate_limited: Some(false),
            receive_ephemeral: true,
            push_ephemeral_unstable: false,
            msc3202: false,
            msc4190: false,
            protocols: vec![],
        }
    }

    fn service(id: &str, users: &[(&str, bool)]) -> AppService {
        AppService::new(registration(id, users), "example.org").unwrap()
    }

    #[test]
    fn a_bridge_registration_parses_with_its_unstable_keys() {
        let yaml = serde_json::json!({
            "id": "telegram", "url": null,
            "as_token": "a".repeat(64), "hs_token": "b".repeat(64),
            "sender_localpart": "telegrambot",
            "namespaces": { "users": [{ "exclusive": true, "regex": "@telegram_.*:example.org" }] },
            "rate_limited": false,
            "de.sorunome.msc2409.push_ephemeral": true,
            "org.matrix.msc3202": true,
            "io.element.msc4190": true,
        });
        let registration: Registration = serde_json::from_value(yaml).unwrap();
        let service = AppService::new(registration, "example.org").unwrap();
        assert!(service.wants_ephemeral() && service.registration.msc3202);
        assert!(!service.rate_limited());
        assert_eq!(service.sender, "@telegrambot:example.org");
    }

    #[test]
    fn namespaces_match_from_the_start_and_know_exclusivity() {
        let s = service("tg", &[("@tg_.*:example.org", true), ("@shared_.*", false)]);
        assert!(s.claims_user("@tg_alice:example.org", Claim::Exclusive));
        assert!(
            !s.claims_user("@xtg_alice:example.org", Claim::Any),
            "anchored at the start"
        );
        assert!(s.claims_user("@shared_bob:example.org", Claim::Any));
        assert!(!s.claims_user("@shared_bob:example.org", Claim::Exclusive));
        assert!(
            s.claims_user("@tgbot:example.org", Claim::Any),
            "its sender"
        );
        assert!(!s.claims_user("@tgbot:example.org", Claim::Exclusive));
        assert!(s.claims_alias("#tg_chat:example.org", Claim::Exclusive));
        assert!(!s.claims_room("!any:example.org", Claim::Any));
    }

    #[test]
    fn bad_registrations_name_the_key() {
        let bad = |edit: fn(&mut Registration)| {
            let mut r = registration("tg", &[("@tg_.*", true)]);
            edit(&mut r);
            AppService::new(r, "example.org").unwrap_err().key
        };
        assert_eq!(bad(|r| r.as_token = "short".into()), "as_token");
        assert_eq!(bad(|r| r.hs_token = r.as_token.clone()), "hs_token");
        assert_eq!(
            bad(|r| r.sender_localpart = "Bad Name".into()),
            "sender_localpart"
        );
        assert_eq!(bad(|r| r.url = Some("ftp://x".into())), "url");
        assert_eq!(bad(|r| r.id = String::new()), "id");
        assert_eq!(
            bad(|r| r.namespaces.users[0].regex = "@tg_(".into()),
            "namespaces.users[0].regex"
        );
    }

    #[test]
    fn overlapping_exclusive_namespaces_cannot_stand_together() {
        let tg = service("tg", &[("@tg_.*:example.org", true)]);
        let tg_bots = service("tgbots", &[("@tg_bot_.*:example.org", true)]);
        let wa = service("wa", &[("@wa_.*:example.org", true)]);
        let everyone = service("all", &[(".*", true)]);
        let shared = service("shared", &[("@tg_.*:example.org", false)]);
        assert!(check_together(&[tg.clone(), wa.clone(), shared]).is_ok());
        let (id, err) = check_together(&[tg.clone(), tg_bots]).unwrap_err();
        assert_eq!(
            (id.as_str(), err.key.as_str()),
            ("tgbots", "namespaces.users")
        );
        assert!(check_together(&[wa.clone(), everyone]).is_err());
        let (_, err) = check_together(&[tg.clone(), tg.clone()]).unwrap_err();
        assert_eq!(err.key, "id");
        let mut same_token = registration("other", &[("@o_.*", true)]);
        same_token.as_token = tg.registration.as_token.clone();
        let same_token = AppService::new(same_token, "example.org").unwrap();
        assert_eq!(
            check_together(&[tg, same_token]).unwrap_err().1.key,
            "as_token"
        );
    }

    #[test]
    fn literal_prefixes_stop_at_the_first_special_character() {
        let prefix = |regex: &str| {
            Compiled::new(
                &NamespaceEntry {
                    exclusive: true,
                    regex: regex.into(),
                },
                "r",
            )
            .unwrap()
            .literal_prefix()
        };
        assert_eq!(prefix("@tg_.*:example.org"), "@tg_");
        assert_eq!(prefix("^@irc\\.net_.+"), "@irc.net_");
        assert_eq!(prefix("@ab?c"), "@a");
        assert_eq!(prefix("(@a|@b).*"), "");
    }
}
