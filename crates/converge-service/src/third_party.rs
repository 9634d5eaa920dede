//! Third parties Converge does not connect to yet: third-party networks (bridges, which come
//! with application services) and third-party identifiers (email addresses and phone
//! numbers, which need a mail or SMS sender and an identity server).
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#third-party-networks> and
//! <https://spec.matrix.org/v1.16/client-server-api/#adding-account-administrative-contact-information>.
//! Every answer is one the spec defines for a server that offers none of these, so clients
//! show a clear refusal instead of an error they do not understand.

use std::collections::BTreeMap;

use ruma::thirdparty::{Location, Protocol, ThirdPartyIdentifier, User};

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
    /// `GET /thirdparty/protocols`: no bridges, so no protocols.
    pub fn protocols(&self) -> BTreeMap<String, Protocol> {
        BTreeMap::new()
    }

    /// `GET /thirdparty/protocol/{protocol}`: every protocol is unknown.
    pub fn protocol(&self, protocol: &str) -> Result<Protocol> {
        Err(unknown_protocol(protocol))
    }

    /// `GET /thirdparty/location/{protocol}` (`Some`) and `/thirdparty/location?alias=`
    /// (`None`): nothing is bridged, so no portal room matches.
    pub fn locations(&self, protocol: Option<&str>) -> Result<Vec<Location>> {
        Err(protocol.map_or_else(nothing_bridged, unknown_protocol))
    }

    /// `GET /thirdparty/user/{protocol}` (`Some`) and `/thirdparty/user?userid=` (`None`):
    /// nothing is bridged, so no third-party user matches.
    pub fn users(&self, protocol: Option<&str>) -> Result<Vec<User>> {
        Err(protocol.map_or_else(nothing_bridged, unknown_protocol))
    }

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

fn unknown_protocol(protocol: &str) -> Error {
    Error::NotFound(format!("no bridge serves the protocol {protocol:?}"))
}

fn nothing_bridged() -> Error {
    Error::NotFound("nothing on this server is bridged to a third-party network".into())
}
