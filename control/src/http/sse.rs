//! `/events`: the control plane's events as Server-Sent Events, serialized per subscriber; a
//! slow subscriber loses events (counted) and gets a `lagged` event with the count.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::Stream;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use crate::api::Shardcast;

/// The data of a `lagged` SSE event: how many events this subscriber lost.
#[derive(Debug, Serialize)]
pub(super) struct Lagged {
    pub(super) lost: u64,
}

/// An SSE event carrying `data` as JSON (`event` names its type; `None`: the default type).
fn sse_json(event: Option<&str>, data: &impl Serialize) -> SseEvent {
    let sse = event.map_or_else(SseEvent::default, |e| SseEvent::default().event(e));
    // The types sent here are structs and enums with string keys only: they always serialize.
    sse.json_data(data).unwrap_or_else(|e| SseEvent::default().comment(format!("unserializable event: {e}")))
}

pub(super) async fn events(
    State(sc): State<Shardcast>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = sc.events().subscribe();
    let bus = sc.events().clone();
    let stream = futures_util::stream::unfold((rx, bus), |(mut rx, bus)| async move {
        let event = match rx.recv().await {
            Ok(event) => sse_json(None, &*event),
            Err(RecvError::Lagged(n)) => {
                // A slow subscriber loses events, counted, and is told how many.
                bus.count_lagged(n);
                sse_json(Some("lagged"), &Lagged { lost: n })
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), (rx, bus)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
