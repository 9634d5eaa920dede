//! The one place an error becomes a Matrix error response: `errcode`, `error` and the HTTP
//! status for every variant of the service layer's [`Error`].
//!
//! Spec: <https://spec.matrix.org/v1.12/client-server-api/#standard-error-response>.
//! Internal failures are logged with their detail and answered with a bare `M_UNKNOWN`.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Value, json};

pub use converge_service::Error;

/// What handlers return: any service error, answered as its Matrix error.
#[derive(Debug)]
pub struct ApiError(pub Error);

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        Self(err)
    }
}

/// The HTTP status and `errcode` an error is answered with.
pub fn status_and_code(error: &Error) -> (StatusCode, &'static str) {
    use Error::*;
    match error {
        Forbidden(_) => (StatusCode::FORBIDDEN, "M_FORBIDDEN"),
        NotFound(_) => (StatusCode::NOT_FOUND, "M_NOT_FOUND"),
        Unrecognized => (StatusCode::NOT_FOUND, "M_UNRECOGNIZED"),
        MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED"),
        MissingToken => (StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN"),
        Unauthorized(_) => (StatusCode::UNAUTHORIZED, "M_UNAUTHORIZED"),
        Exclusive(_) => (StatusCode::BAD_REQUEST, "M_EXCLUSIVE"),
        UnknownToken { .. } => (StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN"),
        NotJson(_) => (StatusCode::BAD_REQUEST, "M_NOT_JSON"),
        BadJson(_) => (StatusCode::BAD_REQUEST, "M_BAD_JSON"),
        InvalidParam(_) => (StatusCode::BAD_REQUEST, "M_INVALID_PARAM"),
        InvalidSignature(_) => (StatusCode::BAD_REQUEST, "M_INVALID_SIGNATURE"),
        WrongRoomKeysVersion { .. } => (StatusCode::FORBIDDEN, "M_WRONG_ROOM_KEYS_VERSION"),
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
        ThreepidDenied(_) => (StatusCode::FORBIDDEN, "M_THREEPID_DENIED"),
        ThreepidAuthFailed(_) => (StatusCode::FORBIDDEN, "M_THREEPID_AUTH_FAILED"),
        ServerNotTrusted(_) => (StatusCode::BAD_REQUEST, "M_SERVER_NOT_TRUSTED"),
        UnableToGrantJoin(_) => (StatusCode::BAD_REQUEST, "M_UNABLE_TO_GRANT_JOIN"),
        Uia(_) => (StatusCode::UNAUTHORIZED, "M_FORBIDDEN"),
        NotInNamespace(_) => (StatusCode::FORBIDDEN, "M_EXCLUSIVE"),
        UnknownDevice(_) => (StatusCode::BAD_REQUEST, "M_UNKNOWN_DEVICE"),
        UrlNotSet => (StatusCode::BAD_REQUEST, "M_URL_NOT_SET"),
        BadStatus { .. } => (StatusCode::BAD_GATEWAY, "M_BAD_STATUS"),
        ConnectionFailed(_) => (StatusCode::BAD_GATEWAY, "M_CONNECTION_FAILED"),
        ConnectionTimeout => (StatusCode::GATEWAY_TIMEOUT, "M_CONNECTION_TIMEOUT"),
        UnknownPos => (StatusCode::BAD_REQUEST, "M_UNKNOWN_POS"),
        Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "M_UNKNOWN"),
    }
}

/// The JSON body of the error response.
pub fn body(error: &Error) -> Value {
    let (_, errcode) = status_and_code(error);
    match error {
        Error::Uia(info) => (**info).clone(),
        Error::Internal(_) => json!({ "errcode": errcode, "error": "Internal server error" }),
        Error::UnknownToken { soft_logout } => {
            json!({ "errcode": errcode, "error": error.to_string(), "soft_logout": soft_logout })
        }
        Error::LimitExceeded { retry_after_ms } => {
            json!({ "errcode": errcode, "error": error.to_string(), "retry_after_ms": retry_after_ms })
        }
        Error::WrongRoomKeysVersion { current_version } => json!({
            "errcode": errcode,
            "error": error.to_string(),
            "current_version": current_version,
        }),
        Error::BadStatus { status, body } => json!({
            "errcode": errcode,
            "error": error.to_string(),
            "status": status,
            "body": body,
        }),
        Error::TooLarge { limit } => json!({
            "errcode": errcode,
            "error": format!("request body is larger than the limit of {limit} bytes"),
        }),
        _ => json!({ "errcode": errcode, "error": error.to_string() }),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = self.0;
        let (status, errcode) = status_and_code(&error);
        if let Error::Internal(detail) = &error {
            tracing::error!(%detail, "internal error");
        } else {
            tracing::debug!(%status, errcode, error = %error, "request refused");
        }
        let mut response = (status, axum::Json(body(&error))).into_response();
        if let Error::LimitExceeded { retry_after_ms } = error {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_matrix_codes() {
        let cases = [
            (Error::forbidden("no"), 403, "M_FORBIDDEN"),
            (Error::MethodNotAllowed, 405, "M_UNRECOGNIZED"),
            (Error::Unrecognized, 404, "M_UNRECOGNIZED"),
            (Error::NotInNamespace("x".into()), 403, "M_EXCLUSIVE"),
            (Error::UnknownDevice("x".into()), 400, "M_UNKNOWN_DEVICE"),
            (Error::UnknownPos, 400, "M_UNKNOWN_POS"),
            (Error::UrlNotSet, 400, "M_URL_NOT_SET"),
            (
                Error::BadStatus {
                    status: 500,
                    body: String::new(),
                },
                502,
                "M_BAD_STATUS",
            ),
            (
                Error::ConnectionFailed("x".into()),
                502,
                "M_CONNECTION_FAILED",
            ),
            (Error::ConnectionTimeout, 504, "M_CONNECTION_TIMEOUT"),
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
            (Error::ThreepidDenied("no".into()), 403, "M_THREEPID_DENIED"),
            (
                Error::ThreepidAuthFailed("no".into()),
                403,
                "M_THREEPID_AUTH_FAILED",
            ),
            (
                Error::ServerNotTrusted("no".into()),
                400,
                "M_SERVER_NOT_TRUSTED",
            ),
            (
                Error::UnableToGrantJoin("no".into()),
                400,
                "M_UNABLE_TO_GRANT_JOIN",
            ),
            (Error::internal("secret detail"), 500, "M_UNKNOWN"),
        ];
        for (error, status, code) in cases {
            let json = body(&error);
            assert_eq!(status_and_code(&error).0.as_u16(), status);
            assert_eq!(json["errcode"], code);
            assert!(json["error"].is_string());
            assert!(!json.to_string().contains("secret detail"));
        }
        assert_eq!(
            body(&Error::UnknownToken { soft_logout: false })["soft_logout"],
            false
        );
        assert_eq!(
            body(&Error::LimitExceeded {
                retry_after_ms: 1500
            })["retry_after_ms"],
            1500
        );
    }
}
