//! Streaming a CAR body: an export writing to a [`std::io::Write`] runs on a blocking thread and
//! hands 256 KiB chunks to the response body through a bounded channel.
//!
//! The channel gives backpressure (at most [`CHUNKS_IN_FLIGHT`] chunks wait for a slow client),
//! and a client that goes away closes the channel, which fails the next write and stops the
//! export. An export that fails after the response started ends the body with an error, so the
//! client sees a truncated transfer rather than a short but well-formed CAR.

use std::io::{self, Write};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::mpsc;

/// Bytes per chunk sent to the body (big enough that handing chunks over costs little).
const CHUNK: usize = 256 * 1024;
/// Chunks that may wait in the channel.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The CAR media type.
pub(super) const CAR_MIME: &str = "application/vnd.ipld.car";

/// A writer that sends what it is given to the body in chunks (blocking when the channel is
/// full). Only for use on a blocking thread.
pub(super) struct ChunkSender {
    buf: Vec<u8>,
    tx: mpsc::Sender<io::Result<Bytes>>,
}

impl ChunkSender {
    /// Resolves once nobody will read the body any more (the response was dropped, or the
    /// client went away).
    pub(super) async fn closed(&self) {
        self.tx.closed().await;
    }

    fn send(&mut self) -> io::Result<()> {
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            self.send()
        }
    }
}

/// A `200` CAR response whose body `produce` writes. `produce` gets the writer and returns it
/// when done (or an error); its future runs to completion on a blocking thread, so it may block
/// on the writer.
pub(super) fn car_response<F, Fut, E>(produce: F) -> Response
where
    F: FnOnce(ChunkSender) -> Fut + Send + 'static,
    Fut: Future<Output = Result<ChunkSender, E>>,
    E: std::fmt::Display,
{
    let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
    let errors = tx.clone();
    tokio::task::spawn_blocking(move || {
        let out = ChunkSender {
            buf: Vec::with_capacity(CHUNK),
            tx,
        };
        let result = wait(produce(out))
            .map_err(|e| e.to_string())
            .and_then(|mut out| out.flush().map_err(|e| e.to_string()));
        if let Err(e) = result {
            if !errors.is_closed() {
                tracing::warn!(error = %e, "CAR export failed after the response started");
            }
            // The client may be gone already; then there is nobody to tell.
            let _ = errors.blocking_send(Err(io::Error::other(e)));
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut response = Body::from_stream(stream).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CAR_MIME));
    response
}

/// Runs a future to completion on the current (blocking) thread, parking between polls. Tokio's
/// cooperative budget is lifted, since nothing here yields back to a scheduler.
fn wait<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(tokio::task::unconstrained(future));
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `total` bytes (a counting pattern) in 1000-byte writes.
    async fn produce(mut out: ChunkSender, total: usize) -> Result<ChunkSender, io::Error> {
        let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(1000) {
            out.write_all(piece)?;
        }
        Ok(out)
    }

    #[tokio::test]
    async fn streams_everything_in_chunks() {
        let total = 5 * CHUNK + 123;
        let response = car_response(move |out| produce(out, total));
        assert_eq!(response.headers()["content-type"], CAR_MIME);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let want: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        assert_eq!(body.as_ref(), want.as_slice());
    }

    #[tokio::test]
    async fn a_failed_export_fails_the_body() {
        let response = car_response(|mut out: ChunkSender| async move {
            out.write_all(b"partial")?;
            Err::<ChunkSender, _>(io::Error::other("the store broke"))
        });
        assert!(
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_dropped_body_stops_the_export() {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let response = car_response(move |out| async move {
            // More than the channel and the writer's buffer can hold, so a write must fail.
            let result = produce(out, (CHUNKS_IN_FLIGHT + 4) * CHUNK).await;
            let _ = done_tx.send(result.is_err());
            result
        });
        drop(response);
        let stopped_with_error = tokio::time::timeout(std::time::Duration::from_secs(60), done_rx)
            .await
            .unwrap()
            .unwrap();
        assert!(stopped_with_error);
    }
}
