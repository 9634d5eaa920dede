//! Mounts the gateways' routes: each gateway describes its endpoints without any web
//! framework ([`converge_gateways::Route`]); here they get the caller authenticated when
//! the route asks, the body read under the route's limit, and their answer as JSON.

use std::collections::HashMap;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::routing::{MethodFilter, on};
use axum::{Json, Router};
use converge_gateways::{Access, Route};
use converge_service::{Client, Error};
use serde_json::Value;

use crate::error::Result;
use crate::ruma::{access_token, read_body};
use crate::state::AppState;

pub fn routes(state: &AppState) -> Router<AppState> {
    let mut router = Router::new();
    for route in state.gateways.routes() {
        let Ok(filter) = MethodFilter::try_from(route.method.clone()) else {
            tracing::error!(method = %route.method, path = route.path, "a gateway route has a method axum cannot serve");
            continue;
        };
        let path = route.path;
        router = router.route(
            path,
            on(
                filter,
                move |state: State<AppState>,
                      params: Path<HashMap<String, String>>,
                      request: Request| {
                    serve(route.clone(), state, params, request)
                },
            ),
        );
    }
    router
}

async fn serve(
    route: Route,
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    request: Request,
) -> Result<Json<Value>> {
    let (parts, body) = request.into_parts();
    let client = Client {
        ip: parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip()),
    };
    let caller = match route.access {
        Access::Public => None,
        Access::User => {
            let token = access_token(&parts)?.ok_or(Error::MissingToken)?;
            Some(
                state
                    .services
                    .sessions
                    .authenticate(&token, client, &crate::ruma::masquerade(&parts))
                    .await?,
            )
        }
    };
    let limit = route
        .max_body
        .unwrap_or(state.config.limits.max_request_bytes);
    let body = read_body(&parts, body, limit).await?;
    let request = converge_gateways::Request {
        params,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
        caller,
        client,
    };
    Ok(Json((route.handler)(request).await?))
}
