//! Extractors for Converge's own (non-Matrix-spec) endpoints: the caller, and a JSON body
//! read under the same size limit and error rules as Matrix requests.

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use http::request::Parts;
use serde::de::DeserializeOwned;

use super::ruma::{access_token, masquerade, read_body};
use crate::error::{ApiError, Error, Result};
use crate::state::AppState;
use converge_service::{Caller, Client};

/// The authenticated caller of a Converge endpoint.
pub struct Authed(pub Caller);

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let client = Client {
            ip: parts
                .extensions
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        };
        let token = access_token(parts)?.ok_or(Error::MissingToken)?;
        Ok(Authed(
            state
                .services
                .sessions
                .authenticate(&token, client, &masquerade(parts))
                .await?,
        ))
    }
}

/// A JSON body: `M_NOT_JSON` if it is not JSON, `M_BAD_JSON` if it has the wrong shape.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self> {
        let (parts, body) = request.into_parts();
        let bytes = read_body(&parts, body, state.config.limits.max_request_bytes).await?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|_| Error::NotJson("the request body is not valid JSON".into()))?;
        let body = serde_json::from_value(value).map_err(|e| {
            Error::BadJson(format!(
                "the request body does not have the expected shape: {e}"
            ))
        })?;
        Ok(JsonBody(body))
    }
}
