//! The apalis board for operators, on its own listener (`BOARD_ADDR`).
//!
//! apalis-board ships an axum router (its JSON API, a live log stream) and a prebuilt web UI.
//! The UI hard-codes `/` as its root and `/api/v1` as its API, so it cannot share the API's
//! port; `GET /board` on the API port redirects here. The axum router is mounted behind poem
//! through poem's tower compatibility, so poem middleware (auth, for one) applies to it too.
//! axum's response body is not `Sync`, which poem's adapter needs: responses are re-wrapped in
//! a `SyncStream` (streamed, never buffered — the log stream never ends).

use std::sync::{Arc, Mutex};

use apalis_board::axum::sse::TracingBroadcaster;
use apalis_board::axum::ui::ServeUI;
use axum::body::Body;
use futures::StreamExt;
use http_body::Frame;
use http_body_util::StreamBody;
use poem::Endpoint;
use poem::endpoint::TowerCompatExt;
use sync_wrapper::SyncStream;
use tower::ServiceExt;

/// The request body type poem's tower adapter hands to services.
type PoemBody = http_body_util::combinators::BoxBody<bytes::Bytes, std::io::Error>;

/// The board's routes: its API at `/api/v1` (one queue per job kind), its UI everywhere else.
pub fn endpoint(api: axum::Router, broadcaster: Arc<Mutex<TracingBroadcaster>>) -> impl Endpoint {
    let router = axum::Router::new()
        .nest("/api/v1", api)
        .fallback_service(ServeUI::new())
        .layer(axum::Extension(broadcaster));
    let service = ServiceExt::<poem::http::Request<PoemBody>>::map_response(
        router,
        |resp: axum::response::Response| {
            resp.map(|body: Body| {
                let frames = body.into_data_stream().map(|chunk| chunk.map(Frame::data));
                StreamBody::new(SyncStream::new(frames))
            })
        },
    );
    service.compat()
}
