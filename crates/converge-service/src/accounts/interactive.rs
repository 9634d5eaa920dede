//! User-interactive authentication: running a flow for an operation (registration,
//! deleting devices, changing the password ...), checking each stage the client completes
//! and answering with a 401 challenge until one of the flows is done. The sessions
//! themselves are kept by [`crate::uia::Uia`].

use std::sync::Arc;

use converge_core::id;
use converge_store::Store;
use ruma::api::client::uiaa::{AuthData, UserIdentifier};

use crate::caller::Caller;
use crate::error::Result;
use crate::now_ms;
use crate::password::Passwords;
use crate::uia::{Proof, Stage, Uia};

pub struct Interactive {
    store: Store,
    server_name: String,
    passwords: Arc<Passwords>,
    uia: Uia,
}

impl Interactive {
    pub fn new(store: Store, server_name: String, passwords: Arc<Passwords>) -> Self {
        Self {
            store,
            server_name,
            passwords,
            uia: Uia::default(),
        }
    }

    /// Runs user-interactive authentication for `purpose`: checks the stage the client
    /// completed (if any) and answers with a 401 challenge until one of `flows` is done.
    pub async fn run(
        &self,
        purpose: &str,
        flows: &[&[Stage]],
        auth: Option<AuthData>,
        caller: Option<&Caller>,
    ) -> Result<Proof> {
        let session = self
            .uia
            .session(purpose, auth.as_ref().and_then(AuthData::session))?;
        if let Some(auth) = auth {
            match self.check_stage(auth, flows, caller).await? {
                Ok(Some((stage, token))) => self.uia.complete_stage(&session, stage, token),
                // A fallback acknowledgement: nothing new was completed.
                Ok(None) => {}
                Err(reason) => {
                    return Err(self
                        .uia
                        .challenge(&session, flows, Some(("M_FORBIDDEN", reason))));
                }
            }
        }
        self.uia
            .finished(&session, flows)
            .ok_or_else(|| self.uia.challenge(&session, flows, None))
    }

    /// Runs the password flow for an operation of the caller's; returns the session to end
    /// (with [`Self::complete`]) once the operation went through.
    pub async fn confirm_password(
        &self,
        caller: &Caller,
        operation: &str,
        auth: Option<AuthData>,
    ) -> Result<String> {
        let purpose = format!("{operation}:{}", caller.user_id);
        let proof = self
            .run(&purpose, &[&[Stage::Password]], auth, Some(caller))
            .await?;
        Ok(proof.session)
    }

    /// Ends a session once its operation went through, so it cannot authorise another.
    pub fn complete(&self, session: &str) {
        self.uia.complete(session);
    }

    /// Checks one stage. The inner error is the reason the stage failed.
    async fn check_stage(
        &self,
        auth: AuthData,
        flows: &[&[Stage]],
        caller: Option<&Caller>,
    ) -> Result<Result<Option<(Stage, Option<String>)>, &'static str>> {
        let offered = |stage: Stage| flows.iter().any(|flow| flow.contains(&stage));
        Ok(match auth {
            AuthData::Dummy(_) if offered(Stage::Dummy) => Ok(Some((Stage::Dummy, None))),
            AuthData::RegistrationToken(stage) if offered(Stage::RegistrationToken) => {
                let usable = self
                    .store
                    .registration_token(&stage.token)
                    .await?
                    .is_some_and(|t| t.usable_at(now_ms()));
                if usable {
                    Ok(Some((Stage::RegistrationToken, Some(stage.token))))
                } else {
                    Err("registration token is not valid")
                }
            }
            AuthData::Password(stage) if offered(Stage::Password) => {
                let Some(caller) = caller else {
                    return Ok(Err("no user to check a password for"));
                };
                let names_caller = match &stage.identifier {
                    UserIdentifier::Matrix(m) => {
                        id::login_localpart(&m.user, &self.server_name).as_deref()
                            == Some(caller.localpart.as_str())
                    }
                    _ => false,
                };
                let hash = self
                    .store
                    .user(&caller.localpart)
                    .await?
                    .and_then(|user| user.password_hash);
                if self.passwords.verify_or_dummy(stage.password, hash).await? && names_caller {
                    Ok(Some((Stage::Password, None)))
                } else {
                    Err("invalid password")
                }
            }
            AuthData::FallbackAcknowledgement(_) => Ok(None),
            _ => Err("this authentication stage is not offered"),
        })
    }
}
