//! A peer that accepts connections and never answers, or answers 500, costs the others nothing:
//! three daemons, a.example hosting a room with b.example and another with c.example; c is
//! killed and its address taken by a listener that accepts and holds every connection in
//! silence (or by one that answers every request 500). a's
//! fan-out to c and its request for key material of another c user (an invitation) wait out
//! their time-outs, while a's messages to b keep arriving within a second.

mod common;

use common::text;
#[path = "common/webhook.rs"]
mod webhook;

use std::time::{Duration, Instant};

use mimi_bridge_connector::{BridgeCommand, CommandKind, ConnectorEvent, EventKind, UserRef};
use webhook::{Provider, Setup, dev_certs, free_port};

fn says(commands: &[BridgeCommand], body: &str) -> bool {
    commands
        .iter()
        .any(|c| matches!(&c.kind, CommandKind::Message { content, .. } if content.body == body))
}

/// alice creates `room` at a and invites `invitee`; her first message there reaches `at`.
async fn room_with(a: &Provider, at: &Provider, all: &[&Provider], room: &str, invitee: &str) {
    a.submit(ConnectorEvent::new(
        format!("{room}-create"),
        room,
        "alice",
        EventKind::RoomCreated { name: None },
    ))
    .await;
    a.submit(ConnectorEvent::new(
        format!("{room}-invite"),
        room,
        "alice",
        EventKind::UserInvited {
            target: UserRef::mimi(invitee),
        },
    ))
    .await;
    let hello = format!("hello {room}");
    a.submit(ConnectorEvent::new(
        format!("{room}-hello"),
        room,
        "alice",
        text(&format!("{room}-m0"), &hello),
    ))
    .await;
    at.wait_until(&format!("alice's first message in {room}"), all, |c| {
        says(c, &hello)
    })
    .await;
}

#[tokio::test]
async fn a_black_holed_peer_does_not_delay_another() {
    with_c_failing(Failure::Silent).await;
}

/// The same with c answering every request `500 Internal Server Error` (over its real TLS
/// identity): its queue backs off and its circuit opens, b's messages go on.
#[tokio::test]
async fn a_peer_answering_500_does_not_delay_another() {
    with_c_failing(Failure::ServerError).await;
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Failure {
    /// Accepts connections and never answers.
    Silent,
    /// Answers every request 500.
    ServerError,
}

/// Serves c's address with a MIMI listener (c's certificate, mutual TLS) whose every answer
/// is 500; counts the requests.
async fn serve_500(
    certs: &std::path::Path,
    port: u16,
) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    use mimi_bridge::protocol::{listener::MimiListener, tls};
    let identity =
        tls::TlsIdentity::load(&certs.join("c.example.pem"), &certs.join("c.example.key")).unwrap();
    let roots = tls::load_trust_anchors(&certs.join("ca.pem")).unwrap();
    let config = tls::server_config(&identity, roots).unwrap();
    let listener = MimiListener::bind(([127, 0, 0, 1], port).into(), config)
        .await
        .expect("take c's address");
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    let router = axum::Router::new().fallback(move || {
        seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async {
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "down for maintenance",
            )
        }
    });
    tokio::spawn(listener.serve(router, std::future::pending(), Duration::from_secs(1)));
    count
}

async fn with_c_failing(failure: Failure) {
    let dir = tempfile::tempdir().unwrap();
    let certs = dev_certs(dir.path(), &["a.example", "b.example", "c.example"]);
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let setup = |domain, port, peers| Setup {
        dir: dir.path(),
        certs: &certs,
        domain,
        mimi_port: port,
        peers,
        consent: "grant",
        fail_first: 0,
    };
    let (peers_a, peers_bc) = ([("b.example", pb), ("c.example", pc)], [("a.example", pa)]);
    let a = Provider::start(setup("a.example", pa, &peers_a)).await;
    let b = Provider::start(setup("b.example", pb, &peers_bc)).await;
    let mut c = Provider::start(setup("c.example", pc, &peers_bc)).await;
    room_with(&a, &b, &[&a, &b, &c], "with-b", "mimi://b.example/u/bob").await;
    room_with(&a, &c, &[&a, &b, &c], "with-c", "mimi://c.example/u/carol").await;

    // c goes silent: its daemon dies and a listener that never answers takes its address.
    c.bridge.child.kill().unwrap();
    c.bridge.child.wait().unwrap();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (held, answered) = match failure {
        Failure::Silent => {
            let hole = std::net::TcpListener::bind(("127.0.0.1", pc)).expect("take c's address");
            let stop = done.clone();
            let held = std::thread::spawn(move || {
                let mut held = Vec::new();
                hole.set_nonblocking(true).unwrap();
                let until = Instant::now() + Duration::from_secs(60);
                while Instant::now() < until && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match hole.accept() {
                        Ok((socket, _)) => held.push(socket),
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                held.len()
            });
            (Some(held), None)
        }
        Failure::ServerError => (None, Some(serve_500(&certs, pc).await)),
    };

    // An invitation of another user of c (its key material is asked of the silent c) and
    // messages for c first, each a fan-out that waits for ever; then messages for b.
    let all = [&a, &b];
    a.submit(ConnectorEvent::new(
        "c2-create",
        "with-c2",
        "alice",
        EventKind::RoomCreated { name: None },
    ))
    .await;
    a.submit(ConnectorEvent::new(
        "c2-invite",
        "with-c2",
        "alice",
        EventKind::UserInvited {
            target: UserRef::mimi("mimi://c.example/u/carla"),
        },
    ))
    .await;
    for i in 0..5 {
        a.submit(ConnectorEvent::new(
            format!("to-c-{i}"),
            "with-c",
            "alice",
            text(&format!("c-m{i}"), &format!("into the void {i}")),
        ))
        .await;
    }
    let mut worst = Duration::ZERO;
    for i in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let body = format!("still here {i}");
        let sent = Instant::now();
        a.submit(ConnectorEvent::new(
            format!("to-b-{i}"),
            "with-b",
            "alice",
            text(&format!("b-m{i}"), &body),
        ))
        .await;
        b.wait_until(&format!("`{body}` at b"), &all, |c| says(c, &body))
            .await;
        worst = worst.max(sent.elapsed());
    }
    assert!(
        worst < Duration::from_secs(1),
        "a message to b took {worst:?} while c was failing ({failure:?})"
    );
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let tried = match (held, answered) {
        (Some(held), _) => held.join().unwrap(),
        (_, Some(answered)) => answered.load(std::sync::atomic::Ordering::Relaxed),
        _ => unreachable!(),
    };
    assert!(tried > 0, "a never tried to reach c");
}
