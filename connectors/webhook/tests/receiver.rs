//! The command receiver and the provider client over real HTTP on 127.0.0.1.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use mimi_bridge_connector::{
    BridgeCommand, CommandKind, ConnectorError, ConnectorEvent, Delivery, EventKind,
    MessageContent, MessageRef, MimiMessageId, MimiRoom, MimiUser,
};
use mimi_bridge_webhook::{
    ProviderClient, ProviderError, Receiver, ReceiverOptions, SubmitAnswer, Verifier,
    WebhookSecret, WebhookSender, check, serve, sign_all,
};

fn secret(byte: u8) -> WebhookSecret {
    WebhookSecret::from_bytes(vec![byte; 32]).unwrap()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A receiver served on a fresh port; its base URL.
async fn start_receiver(secrets: Vec<WebhookSecret>, fail_first: usize) -> (String, Receiver) {
    let receiver = Receiver::new(ReceiverOptions {
        secrets,
        fail_first,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, receiver.clone(), false));
    (format!("http://{addr}"), receiver)
}

fn command(id: &str, kind: CommandKind) -> BridgeCommand {
    BridgeCommand {
        kind,
        command_id: id.into(),
        room: MimiRoom {
            uri: "mimi://a.example/r/general".into(),
            legacy_id: Some("general".into()),
        },
        sender: MimiUser::new("mimi://b.example/u/bob"),
        hub_timestamp_ms: 1,
    }
}

fn message(id: &str) -> BridgeCommand {
    command(
        id,
        CommandKind::Message {
            mimi_message_id: MimiMessageId::new("01".repeat(32)),
            content: MessageContent::text("hello"),
            reply_to: None,
            expires: None,
        },
    )
}

#[tokio::test]
async fn signed_commands_are_recorded_and_answered_with_legacy_ids() {
    let (url, receiver) = start_receiver(vec![secret(1)], 0).await;
    let sender = WebhookSender::new(url.clone(), vec![secret(1)]).unwrap();
    let room = command(
        "c-1",
        CommandKind::RoomCreated {
            name: Some("General".into()),
            participants: vec![],
        },
    );
    assert_eq!(sender.send(&room).await.unwrap(), Delivery::room("room-1"));
    assert_eq!(
        sender.send(&message("c-2")).await.unwrap(),
        Delivery::message("msg-1")
    );
    // `/commands` is the same endpoint
    let at_commands = WebhookSender::new(format!("{url}/commands"), vec![secret(1)]).unwrap();
    let reaction = command(
        "c-3",
        CommandKind::Reaction {
            mimi_message_id: MimiMessageId::new("02".repeat(32)),
            message: MessageRef {
                mimi_id: MimiMessageId::new("01".repeat(32)),
                legacy_id: Some("msg-1".into()),
            },
            key: "👍".into(),
        },
    );
    assert_eq!(
        at_commands.send(&reaction).await.unwrap(),
        Delivery::message("msg-2")
    );
    let renamed = command("c-4", CommandKind::RoomRenamed { name: "G".into() });
    assert_eq!(sender.send(&renamed).await.unwrap(), Delivery::done());

    let all = receiver.wait_for(4, Duration::from_secs(5)).await.unwrap();
    assert_eq!(all, vec![room, message("c-2"), reaction, renamed]);
    assert_eq!(receiver.attempts(), 4);
}

#[tokio::test]
async fn refused_calls_get_a_status_and_a_json_error() {
    let (url, receiver) = start_receiver(vec![secret(2)], 0).await;
    let http = reqwest::Client::new();
    let body = serde_json::to_vec(&message("c-1")).unwrap();
    let post = |id: &str, signature: Option<String>, body: Vec<u8>| {
        let mut request = http
            .post(&url)
            .header("webhook-id", id)
            .header("webhook-timestamp", now().to_string());
        if let Some(signature) = signature {
            request = request.header("webhook-signature", signature);
        }
        async move {
            let response = request.body(body).send().await.unwrap();
            let status = response.status().as_u16();
            let json: serde_json::Value = response.json().await.unwrap();
            (status, json)
        }
    };

    // signed with a secret the receiver does not know
    let wrong = sign_all(&[secret(3)], "c-1", now(), &body);
    let (status, json) = post("c-1", Some(wrong), body.clone()).await;
    assert_eq!(status, 401);
    assert_eq!(json["error"], "invalid_signature");
    assert!(json["message"].as_str().unwrap().contains("no signature"));

    // no signature at all
    let (status, json) = post("c-1", None, body.clone()).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("missing_header"))
    );

    // properly signed, but not a command
    let junk = br#"{"type": "message"}"#.to_vec();
    let signed = sign_all(&[secret(2)], "c-2", now(), &junk);
    let (status, json) = post("c-2", Some(signed), junk).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("invalid_command"))
    );

    assert!(receiver.commands().is_empty());
    assert_eq!(receiver.attempts(), 3);
    let waited = receiver.wait_for(1, Duration::from_millis(50)).await;
    assert_eq!(waited, Err(vec![]));
}

#[tokio::test]
async fn induced_failures_are_transient_and_the_retry_is_recorded_once() {
    let (url, receiver) = start_receiver(vec![secret(4)], 2).await;
    let sender = WebhookSender::new(url, vec![secret(4)]).unwrap();
    for _ in 0..2 {
        let err = sender.send(&message("c-7")).await.unwrap_err();
        assert!(matches!(err, ConnectorError::Transient { .. }), "{err}");
        assert!(err.to_string().contains("induced_failure"), "{err}");
    }
    assert_eq!(
        sender.send(&message("c-7")).await.unwrap(),
        Delivery::message("msg-1")
    );
    assert_eq!(receiver.commands(), vec![message("c-7")]);
    assert_eq!(receiver.attempts(), 3);
}

#[tokio::test]
async fn a_redelivered_webhook_id_is_recorded_once_and_answered_the_same() {
    let (url, receiver) = start_receiver(vec![secret(5)], 0).await;
    // the sender signs with a new and an old secret, as during a rotation
    let sender = WebhookSender::new(url, vec![secret(6), secret(5)]).unwrap();
    let first = sender.send(&message("c-1")).await.unwrap();
    assert_eq!(first, Delivery::message("msg-1"));
    assert_eq!(sender.send(&message("c-1")).await.unwrap(), first);
    assert_eq!(
        sender.send(&message("c-2")).await.unwrap(),
        Delivery::message("msg-2")
    );
    assert_eq!(receiver.commands(), vec![message("c-1"), message("c-2")]);
    assert_eq!(receiver.attempts(), 3);
}

#[tokio::test]
async fn wait_for_wakes_up_when_a_command_arrives() {
    let (url, receiver) = start_receiver(vec![secret(7)], 0).await;
    let waiting = tokio::spawn({
        let receiver = receiver.clone();
        async move { receiver.wait_for(1, Duration::from_secs(10)).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let sender = WebhookSender::new(url, vec![secret(7)]).unwrap();
    sender.send(&message("c-1")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("woken up well before the timeout")
        .unwrap();
    assert_eq!(got, Ok(vec![message("c-1")]));
}

// ----- the provider client, against a stand-in for the bridge's inbound API -----

/// A tiny bridge: checks calls with `inbound::check`, de-duplicates by webhook id.
#[derive(Clone)]
struct Bridge {
    verifier: Verifier,
    seen: Arc<Mutex<HashMap<String, ConnectorEvent>>>,
}

async fn inbound(
    State(bridge): State<Bridge>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match check(&bridge.verifier, header, &body, now()) {
        Ok(call) => {
            let mut seen = bridge.seen.lock().unwrap();
            let duplicate = seen.contains_key(&call.webhook_id);
            seen.entry(call.webhook_id).or_insert(call.event);
            (
                StatusCode::ACCEPTED,
                serde_json::json!({ "duplicate": duplicate }).to_string(),
            )
        }
        Err(e) => (
            StatusCode::from_u16(e.status()).unwrap(),
            serde_json::json!({"error": e.code(), "message": e.to_string()}).to_string(),
        ),
    }
}

async fn start_bridge(secret: WebhookSecret) -> (String, Bridge) {
    let bridge = Bridge {
        verifier: Verifier::new(vec![secret]),
        seen: Arc::default(),
    };
    let app = Router::new()
        .route("/webhook/v1/events", post(inbound))
        .with_state(bridge.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), bridge)
}

fn event(id: &str) -> ConnectorEvent {
    ConnectorEvent::new(
        id,
        "general",
        "alice",
        EventKind::Message {
            message_id: "m-17".into(),
            content: MessageContent::text("Hello"),
            reply_to: None,
            expires: None,
        },
    )
}

#[tokio::test]
async fn the_provider_client_signs_as_the_bridge_checks() {
    let (url, bridge) = start_bridge(secret(8)).await;
    // the client signs with the bridge's secret and another, as during a rotation
    let client = ProviderClient::new(format!("{url}/"), vec![secret(9), secret(8)]).unwrap();

    let answer = client.submit(&event("evt-1")).await.unwrap();
    assert_eq!(
        answer,
        SubmitAnswer {
            status: 202,
            duplicate: false
        }
    );
    // a fresh webhook id each time: not a duplicate for the bridge
    assert!(!client.submit(&event("evt-1")).await.unwrap().duplicate);
    assert_eq!(bridge.seen.lock().unwrap().len(), 2);
    assert!(
        bridge
            .seen
            .lock()
            .unwrap()
            .keys()
            .all(|id| id.starts_with("msg_") && id.len() == 20),
        "generated webhook ids"
    );

    // the same webhook id again is a duplicate
    assert!(
        !client
            .submit_with_id("msg_again", &event("evt-2"))
            .await
            .unwrap()
            .duplicate
    );
    assert!(
        client
            .submit_with_id("msg_again", &event("evt-2"))
            .await
            .unwrap()
            .duplicate
    );
}

#[tokio::test]
async fn the_provider_client_reports_the_bridges_refusals() {
    let (url, bridge) = start_bridge(secret(10)).await;
    let client = ProviderClient::new(url.clone(), vec![secret(10)]).unwrap();

    // a tampered body under the original body's signature
    let body = serde_json::to_vec(&event("evt-1")).unwrap();
    let ts = now();
    let signature = sign_all(&[secret(10)], "msg_t", ts, &body);
    let tampered = String::from_utf8(body.clone())
        .unwrap()
        .replace("Hello", "Hallo")
        .into_bytes();
    let answer = client
        .submit_raw("msg_t", ts, tampered, Some(signature.clone()))
        .await
        .unwrap();
    assert_eq!(answer.status, 401);
    assert_eq!(answer.body["error"], "invalid_signature");
    // and the untampered one goes through
    let answer = client
        .submit_raw("msg_t", ts, body.clone(), Some(signature))
        .await
        .unwrap();
    assert_eq!(
        (answer.status, &answer.body["duplicate"]),
        (202, &serde_json::json!(false))
    );

    // signed by the client, but too old
    let answer = client
        .submit_raw("msg_old", ts - 3600, body, None)
        .await
        .unwrap();
    assert_eq!(answer.status, 401);
    assert_eq!(answer.body["error"], "timestamp_out_of_range");

    // an invalid event: a 400 the client reports as Refused
    let mut empty = event("evt-2");
    empty.sender = "".into();
    let err = client.submit(&empty).await.unwrap_err();
    assert!(
        matches!(&err, ProviderError::Refused { status: 400, error, .. } if error == "invalid_event"),
        "{err}"
    );
    assert!(!err.is_retryable());

    // the wrong secret
    let stranger = ProviderClient::new(url, vec![secret(11)]).unwrap();
    let err = stranger.submit(&event("evt-3")).await.unwrap_err();
    match &err {
        ProviderError::Refused {
            status,
            error,
            message,
        } => {
            assert_eq!((*status, error.as_str()), (401, "invalid_signature"));
            assert!(message.contains("no signature"), "{message}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(
        bridge.seen.lock().unwrap().len(),
        1,
        "only the untampered call"
    );
}

#[tokio::test]
async fn an_unreachable_bridge_is_a_transport_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = ProviderClient::new(format!("http://127.0.0.1:{port}"), vec![secret(1)]).unwrap();
    let err = client.submit(&event("evt-1")).await.unwrap_err();
    assert!(matches!(err, ProviderError::Transport(_)), "{err}");
    assert!(err.is_retryable());
}
