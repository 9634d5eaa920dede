//! The server's one error type, and the one place it becomes a Matrix error response.
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#standard-error-response>.
//! Internal failures are logged with their detail and answered with a bare `M_UNKNOWN`.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

use converge_store::StoreError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("unrecognized request")]
    Unrecognized { status: StatusCode },
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
    /// User-interactive authentication must (still) be completed: a 401 with the flows.
    #[error("user-interactive authentication required")]
    Uia(Box<Value>),
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

    /// The HTTP status and `errcode` this error is answered with.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use Error::*;
        match self {
            Forbidden(_) => (StatusCode::FORBIDDEN, "M_FORBIDDEN"),
            NotFound(_) => (StatusCode::NOT_FOUND, "M_NOT_FOUND"),
            Unrecognized { status } => (*status, "M_UNRECOGNIZED"),
            MissingToken => (StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN"),
            Unauthorized(_) => (StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED"),
            Exclusive(_) => (StatusCode::BAD_REQUEST, "M_EXCLUSIVE"),
            UnknownToken { .. } => (StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN"),
            NotJson(_) => (StatusCode::BAD_REQUEST, "M_NOT_JSON"),
            BadJson(_) => (StatusCode::BAD_REQUEST, "M_BAD_JSON"),
            InvalidParam(_) => (StatusCode::BAD_REQUEST, "M_INVALID_PARAM"),
            MissingParam(_) => (StatusCode::BAD_REQUEST, "M_MISSING_PARAM"),
            TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE"),
            LimitExceeded { .. } => (StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED"),
            UserInUse => (StatusCode::BAD_REQUEST, "M_USER_IN_USE"),
            InvalidUsername(_) => (StatusCode::BAD_REQUEST, "M_INVALID_USERNAME"),
            UserDeactivated => (StatusCode::FORBIDDEN, "M_USER_DEACTIVATED"),
            GuestAccessForbidden => (StatusCode::FORBIDDEN, "M_GUEST_ACCESS_FORBIDDEN"),
            RoomInUse => (StatusCode::BAD_REQUEST, "M_ROOM_IN_USE"),
            AliasExists => (StatusCode::CONFLICT, "M_UNKNOWN"),
            CannotOverwriteMedia => (StatusCode::CONFLICT, "M_CANNOT_OVERWRITE_MEDIA"),
            NotYetUploaded => (StatusCode::GATEWAY_TIMEOUT, "M_NOT_YET_UPLOADED"),
            CannotThumbnail(_) => (StatusCode::BAD_REQUEST, "M_UNKNOWN"),
            Upstream(_) => (StatusCode::BAD_GATEWAY, "M_UNKNOWN"),
            BadRequest(_) => (StatusCode::BAD_REQUEST, "M_UNKNOWN"),
            UnsupportedRoomVersion => (StatusCode::BAD_REQUEST, "M_UNSUPPORTED_ROOM_VERSION"),
            Uia(_) => (StatusCode::UNAUTHORIZED, "M_FORBIDDEN"),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "M_UNKNOWN"),
        }
    }

    /// The JSON body of the error response.
    pub fn body(&self) -> Value {
        let (_, errcode) = self.status_and_code();
        match self {
            Error::Uia(info) => (**info).clone(),
            Error::Internal(_) => json!({ "errcode": errcode, "error": "Internal server error" }),
            Error::UnknownToken { soft_logout } => {
                json!({ "errcode": errcode, "error": self.to_string(), "soft_logout": soft_logout })
            }
            Error::LimitExceeded { retry_after_ms } => {
                json!({ "errcode": errcode, "error": self.to_string(), "retry_after_ms": retry_after_ms })
            }
            Error::TooLarge { limit } => json!({
                "errcode": errcode,
                "error": format!("request body is larger than the limit of {limit} bytes"),
            }),
            _ => json!({ "errcode": errcode, "error": self.to_string() }),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, errcode) = self.status_and_code();
        if let Error::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        } else {
            tracing::debug!(%status, errcode, error = %self, "request refused");
        }
        let mut response = (status, axum::Json(self.body())).into_response();
        if let Error::LimitExceeded { retry_after_ms } = self {
            let secs = retry_after_ms.div_ceil(1000).max(1);
            if let Ok(value) = http::HeaderValue::from_str(&secs.to_string()) {
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, value);
            }
        }
        response
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_matrix_codes() {
        let cases = [
            (Error::forbidden("no"), 403, "M_FORBIDDEN"),
            (
                Error::Unrecognized {
                    status: StatusCode::METHOD_NOT_ALLOWED,
                },
                405,
                "M_UNRECOGNIZED",
            ),
            (Error::MissingToken, 401, "M_MISSING_TOKEN"),
            (
                Error::UnknownToken { soft_logout: false },
                401,
                "M_UNKNOWN_TOKEN",
            ),
            (Error::TooLarge { limit: 10 }, 413, "M_TOO_LARGE"),
            (
                Error::LimitExceeded { retry_after_ms: 5 },
                429,
                "M_LIMIT_EXCEEDED",
            ),
            (Error::UserInUse, 400, "M_USER_IN_USE"),
            (Error::internal("secret detail"), 500, "M_UNKNOWN"),
        ];
        for (error, status, code) in cases {
            let body = error.body();
            assert_eq!(error.status_and_code().0.as_u16(), status);
            assert_eq!(body["errcode"], code);
            assert!(body["error"].is_string());
            assert!(!body.to_string().contains("secret detail"));
        }
        assert_eq!(
            Error::UnknownToken { soft_logout: false }.body()["soft_logout"],
            false
        );
        assert_eq!(
            Error::LimitExceeded {
                retry_after_ms: 1500
            }
            .body()["retry_after_ms"],
            1500
        );
    }
}
