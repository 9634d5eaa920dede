//! Spaces: `GET /rooms/{roomId}/hierarchy`.
//!
//! Spec: <https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv1roomsroomidhierarchy>.

use axum::extract::State;
use ruma::api::client::space::{SpaceHierarchyRoomsChunk, get_hierarchy};

use crate::error::{Error, Result};
use crate::state::AppState;
use crate::{Ruma, RumaResponse};
use converge_service::spaces::HierarchyRequest;

fn clamp(value: Option<ruma::UInt>) -> Option<u32> {
    value.map(|v| u32::try_from(u64::from(v)).unwrap_or(u32::MAX))
}

pub async fn get_hierarchy(
    State(state): State<AppState>,
    request: Ruma<get_hierarchy::v1::Request>,
) -> Result<RumaResponse<get_hierarchy::v1::Response>> {
    let (caller, body) = request.authed()?;
    let page = state
        .services
        .spaces
        .hierarchy(
            &caller,
            body.room_id.as_str(),
            HierarchyRequest {
                from: body.from.as_deref(),
                limit: clamp(body.limit),
                max_depth: clamp(body.max_depth),
                suggested_only: body.suggested_only,
            },
        )
        .await?;
    let mut response = get_hierarchy::v1::Response::new();
    response.next_batch = page.next_batch;
    response.rooms = page
        .rooms
        .into_iter()
        .map(serde_json::from_value::<SpaceHierarchyRoomsChunk>)
        .collect::<Result<_, _>>()
        .map_err(Error::internal)?;
    Ok(RumaResponse(response))
}
