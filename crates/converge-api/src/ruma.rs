//! Ruma request types as axum extractors, and Ruma responses as axum responses.
//!
//! [`Ruma<T>`] reads the body (refusing it past the size limit while it streams in),
//! authenticates the access token if the endpoint wants one, and parses the request with
//! Ruma, turning every failure into its Matrix error.

use std::any::TypeId;
use std::panic::AssertUnwindSafe;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, RawPathParams, Request};
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};
use bytes::{Bytes, BytesMut};
use http::request::Parts;
use http::{Method, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use ruma::api::auth_scheme::{
    AccessToken, AccessTokenOptional, AppserviceToken, AppserviceTokenOptional,
};
use ruma::api::error::{DeserializationError, FromHttpRequestError};
use ruma::api::path_builder::PathBuilder;
use ruma::api::{IncomingRequest, IncomingRequestExt, OutgoingResponse, OutgoingResponseExt};

use crate::error::{ApiError, Error, Result};
use crate::state::AppState;
use converge_service::{Caller, Client, Masquerade};

/// A parsed Matrix request, with who sent it.
pub struct Ruma<T> {
    pub body: T,
    /// The authenticated caller; always `Some` on endpoints that require a token.
    pub caller: Option<Caller>,
    pub client: Client,
    /// The JSON body as sent, for a field a newer spec version dropped from Ruma's type that
    /// clients of the version Converge serves still send (a report's `score`).
    pub json: Bytes,
}

impl<T> Ruma<T> {
    /// The authenticated caller of an endpoint that requires authentication.
    pub fn caller(&self) -> Result<&Caller> {
        Ok(self.caller.as_ref().ok_or(Error::MissingToken)?)
    }

    /// The caller and the request body, for endpoints that require authentication.
    pub fn authed(self) -> Result<(Caller, T)> {
        Ok((self.caller.ok_or(Error::MissingToken)?, self.body))
    }
}

#[derive(PartialEq)]
enum Auth {
    None,
    Optional,
    Required,
}

fn auth_of<A: 'static>() -> Auth {
    let id = TypeId::of::<A>();
    if id == TypeId::of::<AccessToken>() || id == TypeId::of::<AppserviceToken>() {
        Auth::Required
    } else if id == TypeId::of::<AccessTokenOptional>()
        || id == TypeId::of::<AppserviceTokenOptional>()
    {
        Auth::Optional
    } else {
        Auth::None
    }
}

impl<T> FromRequest<AppState> for Ruma<T>
where
    T: IncomingRequest + Send + 'static,
    T::Authentication: 'static,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self> {
        let (mut parts, body) = request.into_parts();
        let path_args: Vec<String> = RawPathParams::from_request_parts(&mut parts, state)
            .await
            .map_err(|_| Error::InvalidParam("the path is not valid UTF-8".into()))?
            .iter()
            .map(|(_, value)| value.to_owned())
            .collect();
        let client = Client {
            ip: parts
                .extensions
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip()),
        };
        let caller = match (auth_of::<T::Authentication>(), access_token(&parts)?) {
            (Auth::Required, None) => return Err(Error::MissingToken.into()),
            (Auth::Required | Auth::Optional, Some(token)) => Some(
                state
                    .services
                    .sessions
                    .authenticate(&token, client, &{
                        let mut m = masquerade(&parts);
                        m.registering = TypeId::of::<T>()
                            == TypeId::of::<ruma::api::client::account::register::v3::Request>();
                        m
                    })
                    .await?,
            ),
            _ => None,
        };
        let bytes = if matches!(parts.method, Method::GET | Method::HEAD) {
            Bytes::new()
        } else {
            read_body(&parts, body, state.config.limits.max_request_bytes).await?
        };
        // An empty body on an endpoint whose fields are all optional means `{}`; matrix-nio
        // and others send joins without a body.
        let bytes = if bytes.is_empty() {
            if matches!(parts.method, Method::POST | Method::PUT) {
                Bytes::from_static(b"{}")
            } else {
                bytes
            }
        } else {
            normalize_json(bytes)?
        };
        // Routes registered without a trailing optional segment (the state key of the state
        // endpoints) leave it empty, which is its default.
        let expected = T::PATH_BUILDER
            .all_paths()
            .next()
            .map_or(0, |p| p.matches('{').count());
        let mut path_args = path_args;
        while path_args.len() < expected {
            path_args.push(String::new());
        }
        let request = http::Request::from_parts(parts, bytes.as_ref());
        let args: Vec<&str> = path_args.iter().map(String::as_str).collect();
        // Ruma's parsers are not all panic-free on odd input; a panic while parsing a
        // request is the request's fault, not ours.
        let parsed = std::panic::catch_unwind(AssertUnwindSafe(|| {
            T::try_from_http_request(request, &args)
        }))
        .map_err(|_| Error::BadJson("the request does not have the expected shape".into()))?;
        let body = parsed.map_err(request_error)?;
        Ok(Ruma {
            body,
            caller,
            client,
            json: bytes,
        })
    }
}

/// Checks that a body is JSON, and drops an `auth` object that attempts no UIA stage
/// (neither `type` nor `session`): the spec treats it like no `auth` at all, and answers
/// with the flows.
fn normalize_json(bytes: Bytes) -> Result<Bytes> {
    let not_json = || Error::NotJson("the request body is not valid JSON".into());
    if !bytes.windows(6).any(|w| w == b"\"auth\"") {
        serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).map_err(|_| not_json())?;
        return Ok(bytes);
    }
    let mut value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| not_json())?;
    let empty_auth = value
        .get("auth")
        .and_then(|auth| auth.as_object())
        .is_some_and(|auth| !auth.contains_key("type") && !auth.contains_key("session"));
    if !empty_auth {
        return Ok(bytes);
    }
    if let Some(object) = value.as_object_mut() {
        object.remove("auth");
    }
    Ok(serde_json::to_vec(&value).map_err(Error::internal)?.into())
}

/// The access token from `Authorization: Bearer` or the deprecated `access_token` query
/// parameter.
pub(super) fn access_token(parts: &Parts) -> Result<Option<String>> {
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| Error::UnknownToken { soft_logout: false })?;
        let token = value
            .strip_prefix("Bearer ")
            .ok_or(Error::UnknownToken { soft_logout: false })?;
        return Ok(Some(token.trim().to_owned()));
    }
    let query = parts.uri.query().unwrap_or_default();
    Ok(form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "access_token")
        .map(|(_, value)| value.into_owned()))
}

/// Who an application service says it acts as: `user_id`, and `device_id` (MSC4326) or
/// `org.matrix.msc3202.device_id` from the query string.
pub(super) fn masquerade(parts: &Parts) -> Masquerade {
    let query = parts.uri.query().unwrap_or_default();
    let mut masquerade = Masquerade::default();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "user_id" => masquerade.user_id = Some(value.into_owned()),
            "device_id" | "org.matrix.msc3202.device_id" => {
                masquerade.device_id = Some(value.into_owned());
            }
            _ => {}
        }
    }
    masquerade
}

/// Reads the body, refusing it as soon as it passes `limit` bytes: a declared length
/// over the limit is refused before reading anything.
pub async fn read_body(parts: &Parts, body: Body, limit: u64) -> Result<Bytes> {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(Error::TooLarge { limit }.into());
    }
    let limited = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX));
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.downcast_ref::<LengthLimitError>().is_some() => {
            Err(Error::TooLarge { limit }.into())
        }
        Err(err) => Err(Error::BadJson(format!("could not read the request body: {err}")).into()),
    }
}

fn request_error(err: FromHttpRequestError) -> Error {
    match err {
        FromHttpRequestError::Deserialization(DeserializationError::Json(e)) => Error::BadJson(
            format!("the request body does not have the expected shape: {e}"),
        ),
        FromHttpRequestError::Deserialization(DeserializationError::Utf8(_)) => {
            Error::NotJson("the request is not valid UTF-8".into())
        }
        FromHttpRequestError::Deserialization(DeserializationError::Query(e)) => {
            Error::InvalidParam(format!("bad query parameter: {e}"))
        }
        FromHttpRequestError::Deserialization(DeserializationError::Ident(e)) => {
            Error::InvalidParam(format!("bad identifier: {e}"))
        }
        FromHttpRequestError::Deserialization(e) => Error::BadJson(e.to_string()),
        FromHttpRequestError::MethodMismatch { .. } => Error::MethodNotAllowed,
        _ => Error::BadJson("the request could not be parsed".into()),
    }
}

/// A Ruma response, serialised as the endpoint defines.
pub struct RumaResponse<T>(pub T);

impl<T: OutgoingResponse> IntoResponse for RumaResponse<T> {
    fn into_response(self) -> Response {
        match self.0.try_into_http_response::<BytesMut>() {
            Ok(response) => response
                .map(|body| Body::from(body.freeze()))
                .into_response(),
            Err(err) => ApiError(Error::internal(format!(
                "could not serialise a response: {err}"
            )))
            .into_response(),
        }
    }
}

/// Registers a handler on every stable path of a Ruma endpoint.
pub trait RouterExt {
    fn ruma<T, H, X>(self, handler: H) -> Self
    where
        T: IncomingRequest,
        H: Handler<X, AppState>,
        X: 'static;

    /// Also serves a Ruma endpoint on each stable path with its last path segment left out
    /// (with and without a trailing slash), for endpoints whose last parameter may be
    /// empty, such as the state key.
    fn ruma_without_last<T, H, X>(self, handler: H) -> Self
    where
        T: IncomingRequest,
        H: Handler<X, AppState>,
        X: 'static;
}

/// The stable paths of a Ruma endpoint (its unstable ones if it has no stable path yet,
/// like simplified sliding sync) and the method filter it is served under.
fn stable_paths<T: IncomingRequest>() -> (MethodFilter, Vec<&'static str>) {
    let filter = MethodFilter::try_from(T::METHOD).expect("Ruma endpoints use standard methods");
    let builder = T::PATH_BUILDER;
    let (unstable, stable): (Vec<&'static str>, Vec<&'static str>) = builder
        .all_paths()
        .partition(|path| path.contains("/unstable/"));
    (filter, if stable.is_empty() { unstable } else { stable })
}

impl RouterExt for Router<AppState> {
    fn ruma<T, H, X>(self, handler: H) -> Self
    where
        T: IncomingRequest,
        H: Handler<X, AppState>,
        X: 'static,
    {
        let (filter, paths) = stable_paths::<T>();
        paths.into_iter().fold(self, |router, path| {
            router.route(path, on(filter, handler.clone()))
        })
    }

    fn ruma_without_last<T, H, X>(self, handler: H) -> Self
    where
        T: IncomingRequest,
        H: Handler<X, AppState>,
        X: 'static,
    {
        let (filter, paths) = stable_paths::<T>();
        paths
            .into_iter()
            .filter_map(|path| path.rsplit_once('/').map(|(head, _)| head))
            .fold(self, |router, head| {
                router
                    .route(head, on(filter, handler.clone()))
                    .route(&format!("{head}/"), on(filter, handler.clone()))
            })
    }
}
