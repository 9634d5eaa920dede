//! User-interactive authentication (UIA) sessions.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#user-interactive-authentication-api>.
//! Every flow Converge offers has a single stage, so a session only needs to remember which
//! operation it was started for: a session begun to delete a device cannot authorise a
//! password change. Sessions live in memory and expire.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::error::Error;

/// How long a client has to complete a UIA session.
const SESSION_TTL: Duration = Duration::from_secs(30 * 60);
/// Sessions kept at most; beyond this the oldest are dropped.
const MAX_SESSIONS: usize = 50_000;

/// A UIA stage Converge can offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Dummy,
    RegistrationToken,
    Password,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Dummy => "m.login.dummy",
            Stage::RegistrationToken => "m.login.registration_token",
            Stage::Password => "m.login.password",
        }
    }
}

struct Session {
    /// The operation (and user) this session authorises, e.g. `delete_devices:@a:b`.
    purpose: String,
    created: Instant,
}

#[derive(Default)]
pub struct Uia {
    sessions: Mutex<HashMap<String, Session>>,
}

impl Uia {
    /// Returns the session to use for `purpose`: the one the client named, or a new one.
    ///
    /// Naming a session that is unknown, expired or started for another operation is an
    /// error.
    pub fn session(&self, purpose: &str, named: Option<&str>) -> Result<String, Error> {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| now.duration_since(s.created) < SESSION_TTL);
            if sessions.len() >= MAX_SESSIONS {
                let oldest = sessions
                    .iter()
                    .min_by_key(|(_, s)| s.created)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    sessions.remove(&oldest);
                }
            }
        }
        match named {
            Some(id) => match sessions.get(id) {
                Some(s) if s.purpose == purpose && now.duration_since(s.created) < SESSION_TTL => {
                    Ok(id.to_owned())
                }
                _ => Err(Error::NotFound(
                    "unknown or expired authentication session".into(),
                )),
            },
            None => {
                let id = crate::service::accounts::random_string(24);
                sessions.insert(
                    id.clone(),
                    Session {
                        purpose: purpose.to_owned(),
                        created: now,
                    },
                );
                Ok(id)
            }
        }
    }

    /// Ends a session once its operation went through.
    pub fn complete(&self, session: &str) {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(session);
    }

    /// The 401 answer that tells the client which flows to follow, optionally with the
    /// error of a failed attempt.
    pub fn challenge(
        &self,
        session: &str,
        flows: &[Stage],
        failure: Option<(&str, &str)>,
    ) -> Error {
        let mut body = json!({
            "flows": flows.iter().map(|s| json!({ "stages": [s.name()] })).collect::<Vec<_>>(),
            "params": {},
            "session": session,
        });
        if let Some((errcode, error)) = failure {
            body["errcode"] = errcode.into();
            body["error"] = error.into();
        }
        Error::Uia(Box::new(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_bound_to_their_purpose() {
        let uia = Uia::default();
        let id = uia.session("delete_devices:@a:x", None).unwrap();
        assert_eq!(uia.session("delete_devices:@a:x", Some(&id)).unwrap(), id);
        assert!(uia.session("password:@a:x", Some(&id)).is_err());
        assert!(uia.session("delete_devices:@a:x", Some("made-up")).is_err());
        uia.complete(&id);
        assert!(uia.session("delete_devices:@a:x", Some(&id)).is_err());
    }

    #[test]
    fn challenges_list_flows_and_failures() {
        let uia = Uia::default();
        let Error::Uia(body) =
            uia.challenge("s1", &[Stage::Password], Some(("M_FORBIDDEN", "wrong")))
        else {
            panic!("not a UIA error");
        };
        assert_eq!(body["flows"][0]["stages"][0], "m.login.password");
        assert_eq!(body["session"], "s1");
        assert_eq!(body["errcode"], "M_FORBIDDEN");
    }
}
