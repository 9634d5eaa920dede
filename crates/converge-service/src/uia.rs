//! User-interactive authentication (UIA) sessions.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#user-interactive-authentication-api>.
//! A session remembers the operation it was started for (a session begun to delete a device
//! cannot authorise a password change), the stages completed so far and what they proved
//! (the registration token). Sessions live in memory, are bounded in number and expire.

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

/// What a finished UIA session proved.
#[derive(Debug, Default)]
pub struct Proof {
    pub session: String,
    /// The registration token the client presented, to be used up by the operation.
    pub registration_token: Option<String>,
}

struct Session {
    purpose: String,
    created: Instant,
    completed: Vec<Stage>,
    registration_token: Option<String>,
}

#[derive(Default)]
pub struct Uia {
    sessions: Mutex<HashMap<String, Session>>,
}

impl Uia {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns the session to use for `purpose`: the one the client named, or a new one.
    ///
    /// Naming a session that is unknown, expired or started for another operation is an
    /// error.
    pub fn session(&self, purpose: &str, named: Option<&str>) -> Result<String, Error> {
        let mut sessions = self.lock();
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
                let id = crate::ids::random_id(24);
                let session = Session {
                    purpose: purpose.to_owned(),
                    created: now,
                    completed: Vec::new(),
                    registration_token: None,
                };
                sessions.insert(id.clone(), session);
                Ok(id)
            }
        }
    }

    /// Records that the client completed `stage` in `session`.
    pub fn complete_stage(&self, session: &str, stage: Stage, registration_token: Option<String>) {
        if let Some(s) = self.lock().get_mut(session) {
            if !s.completed.contains(&stage) {
                s.completed.push(stage);
            }
            if registration_token.is_some() {
                s.registration_token = registration_token;
            }
        }
    }

    /// What the session proved, once every stage of one of `flows` is complete.
    pub fn finished(&self, session: &str, flows: &[&[Stage]]) -> Option<Proof> {
        let sessions = self.lock();
        let s = sessions.get(session)?;
        flows
            .iter()
            .any(|flow| flow.iter().all(|stage| s.completed.contains(stage)))
            .then(|| Proof {
                session: session.to_owned(),
                registration_token: s.registration_token.clone(),
            })
    }

    /// Ends a session once its operation went through.
    pub fn complete(&self, session: &str) {
        self.lock().remove(session);
    }

    /// The 401 answer that tells the client which flows to follow and what it completed,
    /// optionally with the error of a failed attempt.
    pub fn challenge(
        &self,
        session: &str,
        flows: &[&[Stage]],
        failure: Option<(&str, &str)>,
    ) -> Error {
        let completed: Vec<&str> = self
            .lock()
            .get(session)
            .map(|s| s.completed.iter().map(|stage| stage.name()).collect())
            .unwrap_or_default();
        let flows: Vec<_> = flows
            .iter()
            .map(|flow| json!({ "stages": flow.iter().map(|s| s.name()).collect::<Vec<_>>() }))
            .collect();
        let mut body = json!({ "flows": flows, "params": {}, "session": session });
        if !completed.is_empty() {
            body["completed"] = json!(completed);
        }
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
    fn a_flow_finishes_when_all_its_stages_are_done() {
        let uia = Uia::default();
        let flows: &[&[Stage]] = &[&[Stage::RegistrationToken, Stage::Dummy]];
        let id = uia.session("register", None).unwrap();
        assert!(uia.finished(&id, flows).is_none());
        uia.complete_stage(&id, Stage::RegistrationToken, Some("tok".into()));
        assert!(uia.finished(&id, flows).is_none());
        let Error::Uia(body) = uia.challenge(&id, flows, None) else {
            panic!("not a UIA error")
        };
        assert_eq!(body["completed"], json!(["m.login.registration_token"]));
        uia.complete_stage(&id, Stage::Dummy, None);
        assert_eq!(
            uia.finished(&id, flows)
                .unwrap()
                .registration_token
                .as_deref(),
            Some("tok")
        );
    }

    #[test]
    fn challenges_list_flows_and_failures() {
        let uia = Uia::default();
        let Error::Uia(body) =
            uia.challenge("s1", &[&[Stage::Password]], Some(("M_FORBIDDEN", "wrong")))
        else {
            panic!("not a UIA error");
        };
        assert_eq!(body["flows"][0]["stages"][0], "m.login.password");
        assert_eq!(body["session"], "s1");
        assert_eq!(body["errcode"], "M_FORBIDDEN");
        assert!(body.get("completed").is_none());
    }
}
