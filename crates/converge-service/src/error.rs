//! The one error type of the service layer (and of everything above it). Each variant is a
//! Matrix error; the HTTP crate turns it into `errcode`, `error` and a status in one place.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#standard-error-response>.
//! Internal failures carry their detail for the log; clients see a bare `M_UNKNOWN`.

use serde_json::Value;

use converge_store::StoreError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// No endpoint has this path (404) ...
    #[error("unrecognized request")]
    Unrecognized,
    /// ... or none takes this method there (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("missing access token")]
    MissingToken,
    /// A request whose credentials (other than an access token) are wrong, e.g. a
    /// webhook's signature.
    #[error("{0}")]
    Unauthorized(String),
    /// A user ID reserved for the server's own virtual users.
    #[error("{0}")]
    Exclusive(String),
    #[error("unknown access token")]
    UnknownToken { soft_logout: bool },
    #[error("{0}")]
    NotJson(String),
    #[error("{0}")]
    BadJson(String),
    #[error("{0}")]
    InvalidParam(String),
    /// A key or an object whose signature does not verify.
    #[error("{0}")]
    InvalidSignature(String),
    /// A key backup write to a version that is not the current one.
    #[error("the backup version is not the current one")]
    WrongRoomKeysVersion { current_version: String },
    #[error("{0}")]
    MissingParam(String),
    #[error("request body too large")]
    TooLarge { limit: u64 },
    #[error("too many requests")]
    LimitExceeded { retry_after_ms: u64 },
    #[error("user ID already taken")]
    UserInUse,
    #[error("{0}")]
    InvalidUsername(String),
    #[error("this account has been deactivated")]
    UserDeactivated,
    #[error("guest access is not supported")]
    GuestAccessForbidden,
    #[error("the room alias is already taken")]
    RoomInUse,
    #[error("a room alias with that name already exists")]
    AliasExists,
    #[error("this media has already been uploaded")]
    CannotOverwriteMedia,
    #[error("this media has not been uploaded yet")]
    NotYetUploaded,
    #[error("cannot make a thumbnail: {0}")]
    CannotThumbnail(String),
    /// A request the spec answers with a plain `M_UNKNOWN` 400.
    #[error("{0}")]
    BadRequest(String),
    /// A server we fetched from on the user's behalf failed.
    #[error("{0}")]
    Upstream(String),
    #[error("this server does not support that room version")]
    UnsupportedRoomVersion,
    /// The server does not accept this third-party identifier (email, phone) as a contact.
    #[error("{0}")]
    ThreepidDenied(String),
    /// A third-party identifier's validation session could not be confirmed.
    #[error("{0}")]
    ThreepidAuthFailed(String),
    /// The request names an identity server this server does not trust.
    #[error("{0}")]
    ServerNotTrusted(String),
    /// The user may join a restricted room, but nobody in it can authorise the join.
    #[error("{0}")]
    UnableToGrantJoin(String),
    /// User-interactive authentication must (still) be completed: a 401 with the flows.
    #[error("user-interactive authentication required")]
    Uia(Box<Value>),
    /// An application service asked to act as a user outside its namespaces (403).
    #[error("{0}")]
    NotInNamespace(String),
    /// A device named for a request does not exist.
    #[error("{0}")]
    UnknownDevice(String),
    /// An appservice pinged itself but has no URL.
    #[error("the application service has no URL to ping")]
    UrlNotSet,
    /// An appservice answered a ping with an error status.
    #[error("the application service answered {status}")]
    BadStatus { status: u16, body: String },
    /// An appservice could not be reached.
    #[error("cannot reach the application service: {0}")]
    ConnectionFailed(String),
    #[error("the application service did not answer in time")]
    ConnectionTimeout,
    /// A sliding sync position this server does not hold (any more): the client starts
    /// its connection over.
    #[error("unknown position: start the connection over")]
    UnknownPos,
    /// Something went wrong on our side. The detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::UserExists => Error::UserInUse,
            StoreError::TokenNotUsable => Error::forbidden("registration token is not valid"),
            StoreError::NotFound => Error::NotFound("not found".into()),
            other => Error::internal(format!("store: {other}")),
        }
    }
}
