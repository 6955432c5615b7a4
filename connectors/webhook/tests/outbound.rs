//! The sender against a real HTTP receiver that checks Standard Webhooks signatures.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use mimi_bridge_connector::{
    BridgeCommand, CommandKind, ConnectorError, MessageContent, MimiMessageId, MimiRoom, MimiUser,
};
use mimi_bridge_webhook::{Verifier, WebhookSecret, WebhookSender};

#[derive(Default)]
struct Receiver {
    /// Answer 500 to this many calls, then 200.
    fail_first: usize,
    calls: usize,
    accepted: Vec<(String, serde_json::Value)>,
}

async fn receive(
    State(state): State<(Arc<Mutex<Receiver>>, Verifier)>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let (receiver, verifier) = state;
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let id = match verifier.verify(
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
        &body,
        now,
    ) {
        Ok(id) => id.to_string(),
        Err(e) => return (StatusCode::UNAUTHORIZED, e.to_string()),
    };
    let mut r = receiver.lock().unwrap();
    r.calls += 1;
    if r.calls <= r.fail_first {
        return (StatusCode::INTERNAL_SERVER_ERROR, "not now".into());
    }
    r.accepted
        .push((id, serde_json::from_slice(&body).unwrap()));
    (StatusCode::OK, r#"{"message_id": "legacy-42"}"#.into())
}

async fn start(secret: &WebhookSecret, fail_first: usize) -> (String, Arc<Mutex<Receiver>>) {
    let receiver = Arc::new(Mutex::new(Receiver {
        fail_first,
        ..Default::default()
    }));
    let app = Router::new()
        .route("/events", post(receive))
        .with_state((receiver.clone(), Verifier::new(vec![secret.clone()])));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/events"), receiver)
}

fn command(id: &str) -> BridgeCommand {
    BridgeCommand {
        kind: CommandKind::Message {
            mimi_message_id: MimiMessageId::new("01".repeat(32)),
            content: MessageContent::text("hello"),
            reply_to: None,
            expires: None,
        },
        command_id: id.into(),
        room: MimiRoom {
            uri: "mimi://a.example/r/general".into(),
            legacy_id: Some("general".into()),
        },
        sender: MimiUser {
            uri: "mimi://b.example/u/bob".into(),
            legacy_id: None,
            display_name: None,
            role: None,
        },
        hub_timestamp_ms: 1,
    }
}

#[tokio::test]
async fn a_signed_command_is_accepted_and_its_legacy_id_returned() {
    let secret = WebhookSecret::from_bytes(vec![5; 32]).unwrap();
    let (url, receiver) = start(&secret, 0).await;
    let sender = WebhookSender::new(url, vec![secret]).unwrap();
    let delivery = sender.send(&command("c-1")).await.unwrap();
    assert_eq!(delivery.message_id.unwrap().as_str(), "legacy-42");
    let r = receiver.lock().unwrap();
    assert_eq!(r.accepted.len(), 1);
    assert_eq!(r.accepted[0].0, "c-1", "webhook-id is the command id");
    assert_eq!(r.accepted[0].1["type"], "message");
}

#[tokio::test]
async fn server_errors_are_transient_and_retries_reuse_the_webhook_id() {
    let secret = WebhookSecret::from_bytes(vec![6; 32]).unwrap();
    let (url, receiver) = start(&secret, 2).await;
    let sender = WebhookSender::new(url, vec![secret]).unwrap();
    for _ in 0..2 {
        let err = sender.send(&command("c-7")).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }
    sender.send(&command("c-7")).await.unwrap();
    let r = receiver.lock().unwrap();
    assert_eq!(r.calls, 3);
    assert_eq!(
        r.accepted.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(),
        vec!["c-7"]
    );
}

#[tokio::test]
async fn a_wrong_secret_is_a_permanent_refusal() {
    let (url, _receiver) = start(&WebhookSecret::from_bytes(vec![7; 32]).unwrap(), 0).await;
    let sender =
        WebhookSender::new(url, vec![WebhookSecret::from_bytes(vec![8; 32]).unwrap()]).unwrap();
    let err = sender.send(&command("c-9")).await.unwrap_err();
    assert!(matches!(err, ConnectorError::Permanent { .. }), "{err}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn an_unreachable_receiver_is_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sender = WebhookSender::new(
        format!("http://127.0.0.1:{port}/events"),
        vec![WebhookSecret::from_bytes(vec![1; 32]).unwrap()],
    )
    .unwrap();
    let err = sender.send(&command("c-2")).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}
