//! The HTTP endpoints a gateway serves, described without any web framework: the HTTP crate
//! mounts each [`Route`], authenticates the caller when the route asks, reads the body
//! under the route's limit and hands the handler a [`Request`].

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use converge_service::{Caller, Client, Error, Result};
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use http::Method;

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone: the handler checks its own credentials (a webhook's secret, a signature).
    Public,
    /// A user with an access token.
    User,
}

pub type Handler = Arc<dyn Fn(Request) -> BoxFuture<'static, Result<Value>> + Send + Sync>;

/// One endpoint of a gateway. Answers are JSON with status 200; errors are Matrix errors.
#[derive(Clone)]
pub struct Route {
    pub method: Method,
    /// The path, with `{name}` for each parameter (`/_converge/hooks/{hook_id}`).
    pub path: &'static str,
    pub access: Access,
    /// The largest body accepted; `None` for the server's request limit.
    pub max_body: Option<u64>,
    pub handler: Handler,
}

impl Route {
    /// A route whose handler is an async closure over the request.
    pub fn new<F, Fut>(method: Method, path: &'static str, access: Access, handler: F) -> Self
    where
        F: Fn(Request) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value>> + Send + 'static,
    {
        Self {
            method,
            path,
            access,
            max_body: None,
            handler: Arc::new(move |request| Box::pin(handler(request))),
        }
    }

    /// Limits the body to `bytes`.
    pub fn max_body(mut self, bytes: u64) -> Self {
        self.max_body = Some(bytes);
        self
    }
}

/// A request to a gateway route.
pub struct Request {
    /// The path's parameters by name.
    pub params: HashMap<String, String>,
    /// The raw query string, without `?`.
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// The authenticated user, on [`Access::User`] routes.
    pub caller: Option<Caller>,
    pub client: Client,
}

impl Request {
    /// A path parameter the route declares.
    pub fn param(&self, name: &str) -> Result<&str> {
        self.params
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| Error::internal(format!("route has no parameter {name}")))
    }

    /// A header, if present and valid text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The caller of an [`Access::User`] route.
    pub fn caller(&self) -> Result<&Caller> {
        self.caller.as_ref().ok_or(Error::MissingToken)
    }

    /// The body as JSON of shape `T`: `M_NOT_JSON` if it is not JSON, `M_BAD_JSON` if it
    /// has the wrong shape.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let value: Value = serde_json::from_slice(&self.body)
            .map_err(|_| Error::NotJson("the request body is not valid JSON".into()))?;
        serde_json::from_value(value).map_err(|e| {
            Error::BadJson(format!(
                "the request body does not have the expected shape: {e}"
            ))
        })
    }

    /// The query string as `T`: `M_INVALID_PARAM` naming what is wrong.
    pub fn query<T: DeserializeOwned>(&self) -> Result<T> {
        serde_urlencoded::from_str(self.query.as_deref().unwrap_or(""))
            .map_err(|e| Error::InvalidParam(format!("invalid query parameter: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str, body: &str) -> Request {
        Request {
            params: HashMap::from([("id".to_owned(), "k1".to_owned())]),
            query: Some(query.to_owned()),
            headers: http::HeaderMap::new(),
            body: Bytes::from(body.to_owned()),
            caller: None,
            client: Client::default(),
        }
    }

    #[test]
    fn requests_parse_their_parts() {
        #[derive(serde::Deserialize)]
        struct Q {
            from: Option<i64>,
            name: Option<String>,
        }
        let r = request("from=5&name=a%20b", "{\"x\":1}");
        let q: Q = r.query().unwrap();
        assert_eq!((q.from, q.name.as_deref()), (Some(5), Some("a b")));
        assert_eq!(r.param("id").unwrap(), "k1");
        assert!(matches!(r.caller(), Err(Error::MissingToken)));
        let v: Value = r.json().unwrap();
        assert_eq!(v["x"], 1);
        assert!(matches!(
            request("", "nope").json::<Value>(),
            Err(Error::NotJson(_))
        ));
        assert!(matches!(
            request("", "[1]").json::<Q>(),
            Err(Error::BadJson(_))
        ));
        assert!(matches!(
            request("from=x", "").query::<Q>(),
            Err(Error::InvalidParam(_))
        ));
    }
}
