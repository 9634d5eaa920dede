//! Third-party identifiers Converge does not connect to yet: email addresses and phone
//! numbers, which need a mail or SMS sender and an identity server. (Third-party networks
//! are answered by the application services that declare them: `appservices`.)
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#adding-account-administrative-contact-information>.
//! Every answer is one the spec defines for a server that offers none of these, so clients
//! show a clear refusal instead of an error they do not understand.

use ruma::thirdparty::ThirdPartyIdentifier;

use crate::caller::Caller;
use crate::error::{Error, Result};

/// The third-party identifiers on an account (always none), and the refusals to add any.
pub struct ThirdParty;

/// The outcome of unbinding an identifier from an identity server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnbindResult {
    /// No identity server was asked: the spec's answer when the server does not know one.
    NoSupport,
}

impl ThirdParty {
    /// `GET /account/3pid`: accounts here have no third-party identifiers.
    pub fn threepids(&self, _caller: &Caller) -> Vec<ThirdPartyIdentifier> {
        Vec::new()
    }

    /// `POST /account/3pid/{email,msisdn}/requestToken`: the validation session's ID, were
    /// one started; this server sends no validation messages, so it accepts no identifier as
    /// a contact.
    pub fn request_token(&self, medium: &str) -> Result<String> {
        Err(Error::ThreepidDenied(format!(
            "this server does not accept {medium} as a contact: it sends no validation messages"
        )))
    }

    /// `POST /account/3pid/add`: no validation session ever started, so none can be valid.
    pub fn add(&self, _caller: &Caller) -> Result<()> {
        Err(Error::ThreepidAuthFailed(
            "this server validates no third-party identifiers, so the session cannot be confirmed"
                .into(),
        ))
    }

    /// `POST /account/3pid/bind`: binding goes through an identity server, and this server
    /// trusts none.
    pub fn bind(&self, _caller: &Caller, id_server: &str) -> Result<()> {
        Err(Error::ServerNotTrusted(format!(
            "this server does not use identity servers, {id_server:?} included"
        )))
    }

    /// `POST /account/3pid/delete` and `/account/3pid/unbind`: there is nothing to remove,
    /// and no identity server is known, for which the spec requires `no-support`.
    pub fn remove(&self, _caller: &Caller) -> UnbindResult {
        UnbindResult::NoSupport
    }
}
