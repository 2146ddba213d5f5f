//! `com.atproto.sync.subscribeRepos`: the firehose over a websocket (see [`crate::sequencer`]).
//!
//! Each frame is one binary message. Messages from the client are read only to notice that it
//! went away (pings are answered by the websocket layer).

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
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
    Ok(ws.on_upgrade(move |socket| stream(socket, subscription)))
}

async fn stream(mut socket: WebSocket, mut subscription: crate::sequencer::Subscription) {
    loop {
        tokio::select! {
            frame = subscription.next() => {
                let Some(bytes) = frame else { break };
                if socket.send(Message::Binary(bytes)).await.is_err() {
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
