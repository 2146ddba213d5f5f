//! Telling relays about this PDS: `com.atproto.sync.requestCrawl {hostname}` to every host in
//! `PDS_CRAWLERS`, at start-up and again when events arrive after a quiet period (at most once
//! per [`NOTIFY_THRESHOLD`], as the reference PDS). Failures are logged, never fatal.

use std::time::Duration;

use atp_syntax::Nsid;
use pds_store::Store;
use xrpc_client::{XrpcClient, XrpcError};

/// The shortest time between two rounds of notifications.
pub const NOTIFY_THRESHOLD: Duration = Duration::from_secs(20 * 60);

/// How long one `requestCrawl` call may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Calls `com.atproto.sync.requestCrawl {hostname}` on `host` (a base URL). A 2xx answer is
/// success whatever its body.
pub async fn request_crawl(host: &str, hostname: &str) -> Result<(), XrpcError> {
    let client = XrpcClient::new(host)?.with_timeout(Some(REQUEST_TIMEOUT));
    let nsid: Nsid =
        "com.atproto.sync.requestCrawl"
            .parse()
            .map_err(|_| XrpcError::InvalidUrl {
                url: host.to_owned(),
                reason: "bad method name".to_owned(),
            })?;
    let input = serde_json::json!({ "hostname": hostname });
    match client
        .procedure::<_, serde::de::IgnoredAny>(&nsid, &input)
        .await
    {
        Ok(_) | Err(XrpcError::Decode(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Notifies every crawler concurrently, logging each failure; returns the results in order.
pub async fn notify_all(crawlers: &[String], hostname: &str) -> Vec<Result<(), XrpcError>> {
    let calls = crawlers.iter().map(|host| async move {
        let result = request_crawl(host, hostname).await;
        match &result {
            Ok(()) => tracing::info!(crawler = %host, "requested a crawl"),
            Err(e) => tracing::warn!(crawler = %host, "requestCrawl failed: {e}"),
        }
        result
    });
    futures::future::join_all(calls).await
}

/// Starts the notifier: one round at once, then one whenever the event log grows at least
/// `threshold` after the previous round (events within `threshold` of a round are covered by
/// it: the relay is crawling by then). Does nothing without crawlers.
pub fn spawn(
    store: &Store,
    crawlers: Vec<String>,
    hostname: String,
    threshold: Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    if crawlers.is_empty() {
        return None;
    }
    let mut seq = store.subscribe_seq();
    Some(tokio::spawn(async move {
        notify_all(&crawlers, &hostname).await;
        let mut last = tokio::time::Instant::now();
        loop {
            if seq.changed().await.is_err() {
                return;
            }
            if last.elapsed() >= threshold {
                notify_all(&crawlers, &hostname).await;
                last = tokio::time::Instant::now();
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use axum::Json;
    use axum::extract::State;
    use axum::routing::post;
    use chrono::Utc;
    use pds_store::{EventKind, NewEvent};
    use serde_json::Value;

    type Calls = Arc<Mutex<Vec<Value>>>;

    async fn stub(refuse: bool) -> (String, Calls) {
        let calls: Calls = Arc::default();
        async fn handler(
            State((calls, refuse)): State<(Calls, bool)>,
            Json(body): Json<Value>,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            calls.lock().unwrap().push(body);
            if refuse {
                (
                    axum::http::StatusCode::BAD_REQUEST,
                    Json(serde_json::json!({"error": "InvalidRequest", "message": "no"})),
                )
                    .into_response()
            } else {
                axum::http::StatusCode::OK.into_response()
            }
        }
        let app = axum::Router::new()
            .route("/xrpc/com.atproto.sync.requestCrawl", post(handler))
            .with_state((calls.clone(), refuse));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("http://{addr}"), calls)
    }

    async fn wait_for(calls: &Calls, n: usize) {
        for _ in 0..200 {
            if calls.lock().unwrap().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {n} calls, got {:?}", calls.lock().unwrap());
    }

    #[tokio::test]
    async fn request_crawl_reports_refusals_and_network_errors() {
        let (ok, ok_calls) = stub(false).await;
        let (no, _) = stub(true).await;
        request_crawl(&ok, "pds.example.com").await.unwrap();
        assert_eq!(
            ok_calls.lock().unwrap().as_slice(),
            &[serde_json::json!({"hostname": "pds.example.com"})]
        );
        let err = request_crawl(&no, "pds.example.com").await.unwrap_err();
        assert_eq!(err.error_name(), Some("InvalidRequest"));
        // A closed port: a transport error, no status.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let err = request_crawl(&format!("http://{closed}"), "pds.example.com")
            .await
            .unwrap_err();
        assert!(err.status().is_none(), "{err}");
    }

    #[tokio::test]
    async fn notifies_at_start_and_after_a_quiet_period() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (a, a_calls) = stub(false).await;
        let (b, b_calls) = stub(true).await;
        let threshold = Duration::from_millis(300);
        let task = spawn(
            &store,
            vec![a, b, "http://127.0.0.1:1".to_owned()],
            "pds.example.com".to_owned(),
            threshold,
        )
        .unwrap();
        wait_for(&a_calls, 1).await;
        wait_for(&b_calls, 1).await;
        let did: atp_syntax::Did = "did:plc:aaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap();
        let event = || NewEvent {
            kind: EventKind::Identity,
            body: vec![1],
        };
        // Within the threshold: no new round.
        store.append_event(&did, event(), Utc::now()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(a_calls.lock().unwrap().len(), 1);
        // After it: one more round, even though a crawler refused.
        tokio::time::sleep(threshold).await;
        store.append_event(&did, event(), Utc::now()).await.unwrap();
        wait_for(&a_calls, 2).await;
        wait_for(&b_calls, 2).await;
        assert_eq!(
            a_calls.lock().unwrap()[1],
            serde_json::json!({"hostname": "pds.example.com"})
        );
        task.abort();
        assert!(spawn(&store, vec![], "x".to_owned(), threshold).is_none());
    }
}
