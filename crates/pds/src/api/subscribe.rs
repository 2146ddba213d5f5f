//! `com.atproto.sync.subscribeRepos`: the firehose over a websocket (see [`crate::sequencer`]).
//!
//! Each frame is one binary message; frames that are ready together are written with one flush.
//! Messages from the client are read only to notice that it went away (pings are answered by
//! the websocket layer).

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::SinkExt;
use serde::Deserialize;

use crate::api::error::XrpcError;
use crate::api::extract::XrpcQuery;
use crate::state::AppState;

/// subscribeRepos parameters.
#[derive(Debug, Deserialize)]
pub struct SubscribeReposParams {
    /// The last sequence number the client has seen.
    cursor: Option<i64>,
}

/// `com.atproto.sync.subscribeRepos`.
pub async fn subscribe_repos(
    State(state): State<AppState>,
    XrpcQuery(p): XrpcQuery<SubscribeReposParams>,
    ws: WebSocketUpgrade,
) -> Result<Response, XrpcError> {
    if p.cursor.is_some_and(|c| c < 0) {
        return Err(XrpcError::invalid_request("cursor must not be negative"));
    }
    let subscription = state
        .sequencer()
        .subscribe(p.cursor, chrono::Utc::now())
        .await?;
    // Subscribers only send pings and close frames: a small read buffer (the default is
    // 128 KiB per connection) keeps idle subscribers cheap; the write buffer bounds what one
    // flush holds.
    Ok(ws
        .read_buffer_size(4 * 1024)
        .max_message_size(64 * 1024)
        .write_buffer_size(64 * 1024)
        .on_upgrade(move |socket| stream(socket, subscription)))
}

/// Frames written before a flush, at most (the websocket layer also flushes by itself when its
/// buffer fills).
const BATCH: usize = 256;

async fn stream(mut socket: WebSocket, mut subscription: crate::sequencer::Subscription) {
    loop {
        tokio::select! {
            frame = subscription.next() => {
                let Some(bytes) = frame else { break };
                // Frames that are ready too go out in the same write: one flush per batch, not
                // per frame.
                if socket.feed(Message::Binary(bytes)).await.is_err() {
                    return;
                }
                for _ in 1..BATCH {
                    let Some(bytes) = subscription.try_next() else { break };
                    if socket.feed(Message::Binary(bytes)).await.is_err() {
                        return;
                    }
                }
                if socket.flush().await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
