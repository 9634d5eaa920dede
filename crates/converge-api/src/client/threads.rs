//! Finding events: `GET /rooms/{roomId}/threads` and `GET /rooms/{roomId}/timestamp_to_event`.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#threads> and
//! <https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv1roomsroomidtimestamp_to_event>.

use axum::extract::State;
use ruma::api::Direction;
use ruma::api::client::room::get_event_by_timestamp;
use ruma::api::client::threads::get_threads::{self, v1::IncludeThreads};
use ruma::{MilliSecondsSinceUnixEpoch, UInt};

use super::room::raw;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::{Ruma, RumaResponse};
use converge_service::history::ThreadFilter;

pub async fn get_threads(
    State(state): State<AppState>,
    request: Ruma<get_threads::v1::Request>,
) -> Result<RumaResponse<get_threads::v1::Response>> {
    let (caller, body) = request.authed()?;
    let filter = match body.include {
        IncludeThreads::All => ThreadFilter::All,
        IncludeThreads::Participated => ThreadFilter::Participated,
        other => {
            return Err(Error::InvalidParam(format!(
                "include must be all or participated, not {}",
                other.as_str()
            ))
            .into());
        }
    };
    let page = state
        .services
        .history
        .threads(
            &caller,
            body.room_id.as_str(),
            filter,
            body.from.as_deref(),
            body.limit
                .map(|v| u32::try_from(u64::from(v)).unwrap_or(u32::MAX)),
        )
        .await?;
    let mut response = get_threads::v1::Response::new(page.chunk.iter().map(raw).collect());
    response.next_batch = page.next_batch;
    Ok(RumaResponse(response))
}

pub async fn get_event_by_timestamp(
    State(state): State<AppState>,
    request: Ruma<get_event_by_timestamp::v1::Request>,
) -> Result<RumaResponse<get_event_by_timestamp::v1::Response>> {
    let (caller, body) = request.authed()?;
    let ts = i64::try_from(u64::from(body.ts.0)).unwrap_or(i64::MAX);
    let (event_id, origin_server_ts) = state
        .services
        .history
        .event_at(
            &caller,
            body.room_id.as_str(),
            ts,
            body.dir == Direction::Forward,
        )
        .await?;
    let origin_server_ts = UInt::try_from(origin_server_ts.max(0)).unwrap_or(UInt::MAX);
    Ok(RumaResponse(get_event_by_timestamp::v1::Response::new(
        event_id.try_into().map_err(Error::internal)?,
        MilliSecondsSinceUnixEpoch(origin_server_ts),
    )))
}
