//! Mutual TLS between two providers: real daemons, real certificates made by the CLI.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::{BIN, Daemon};
use mimi_bridge::protocol::client::{MimiClient, PeerAddress};
use mimi_bridge::protocol::directory::Endpoint;
use mimi_bridge::protocol::tls::{TlsIdentity, load_trust_anchors};
use mimi_bridge::uri::ProviderId;

fn dev_certs(dir: &Path, providers: &[&str]) {
    let mut cmd = Command::new(BIN);
    cmd.args(["dev-certs", "--out"]).arg(dir);
    for p in providers {
        cmd.args(["--provider", p]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ca.pem"));
}

/// Starts the provider `domain` with its MIMI listener; returns it and the MIMI address.
fn start_provider(dir: &Path, certs: &Path, domain: &str) -> (Daemon, String) {
    let home = dir.join(domain);
    std::fs::create_dir_all(&home).unwrap();
    let config = home.join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[provider]\ndomain = \"{domain}\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
             [database]\nurl = \"sqlite://{home}/bridge.db\"\n\
             [mimi.tls]\nlisten = \"127.0.0.1:0\"\ncertificate = \"{certs}/{domain}.pem\"\n\
             private_key = \"{certs}/{domain}.key\"\ntrust_anchors = \"{certs}/ca.pem\"\n",
            home = home.display(),
            certs = certs.display(),
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&home, &["run", "--config", config.to_str().unwrap()]);
    let mimi = daemon
        .logged_addr("MIMI listening on ")
        .expect("the daemon logs its MIMI address");
    (daemon, mimi)
}

fn client_as(certs: &Path, domain: &str, peer: &str, addr: &str) -> MimiClient {
    let identity = TlsIdentity::load(
        &certs.join(format!("{domain}.pem")),
        &certs.join(format!("{domain}.key")),
    )
    .unwrap();
    let roots = load_trust_anchors(&certs.join("ca.pem")).unwrap();
    let mut peers = BTreeMap::new();
    peers.insert(
        peer.to_string(),
        PeerAddress {
            address: addr.parse().unwrap(),
        },
    );
    MimiClient::new(ProviderId::new(domain).unwrap(), &identity, roots, &peers).unwrap()
}

#[tokio::test]
async fn a_peer_with_a_trusted_certificate_discovers_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    dev_certs(&certs, &["a.example", "b.example"]);
    let (b, b_mimi) = start_provider(dir.path(), &certs, "b.example");
    let a = client_as(&certs, "a.example", "b.example", &b_mimi);
    let directory = a
        .directory(&ProviderId::new("b.example").unwrap())
        .await
        .unwrap();
    let port = b_mimi.rsplit(':').next().unwrap();
    assert_eq!(
        directory.template(Endpoint::Notify),
        Some(format!("https://b.example:{port}/mimi/v1/notify/{{roomId}}").as_str())
    );
    assert!(b.stop("-TERM").success());
}

#[tokio::test]
async fn connections_without_a_trusted_client_certificate_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let other = dir.path().join("other-ca");
    dev_certs(&certs, &["a.example", "b.example"]);
    dev_certs(&other, &["a.example"]);
    let (b, b_mimi) = start_provider(dir.path(), &certs, "b.example");
    let url = format!(
        "https://b.example:{}/.well-known/mimi-protocol-directory",
        b_mimi.rsplit(':').next().unwrap()
    );
    let roots = load_trust_anchors(&certs.join("ca.pem")).unwrap();

    // no client certificate at all
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots.clone())
    .with_no_client_auth();
    let anonymous = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .resolve("b.example", b_mimi.parse().unwrap())
        .build()
        .unwrap();
    assert!(
        anonymous.get(&url).send().await.is_err(),
        "a client without a certificate gets no answer"
    );

    // a certificate for a.example, but from an authority b does not trust
    let a = client_as(&other, "a.example", "b.example", &b_mimi);
    let err = a
        .directory(&ProviderId::new("b.example").unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("b.example:"), "{err}");

    // b still serves trusted peers
    let a = client_as(&certs, "a.example", "b.example", &b_mimi);
    assert!(
        a.directory(&ProviderId::new("b.example").unwrap())
            .await
            .is_ok()
    );
    assert!(b.stop("-TERM").success());
}

#[test]
fn check_config_names_a_missing_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bridge.toml");
    std::fs::write(
        &config,
        "[mimi.tls]\nlisten = \"127.0.0.1:0\"\ncertificate = \"/nonexistent/a.pem\"\n\
         private_key = \"/nonexistent/a.key\"\ntrust_anchors = \"/nonexistent/ca.pem\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mimi.tls.certificate"));
}

#[test]
fn dev_certs_refuses_a_bad_domain() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["dev-certs", "--out"])
        .arg(dir.path())
        .args(["--provider", "not a domain"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a domain"));
}

#[tokio::test]
async fn requests_are_refused_with_a_status_and_a_json_reason() {
    use mimi_bridge::mls::bare_member::BareMember;
    use mimi_bridge::protocol::wire::{FanoutBody, FanoutMessage, MlsMessage, join_notify_body};

    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    dev_certs(&certs, &["a.example", "b.example"]);
    let (b, b_mimi) = start_provider(dir.path(), &certs, "b.example");
    let b_id = ProviderId::new("b.example").unwrap();
    let json = |body: &[u8]| -> serde_json::Value { serde_json::from_slice(body).unwrap() };

    // a certificate for a.example claiming to be c.example
    let identity =
        TlsIdentity::load(&certs.join("a.example.pem"), &certs.join("a.example.key")).unwrap();
    let roots = load_trust_anchors(&certs.join("ca.pem")).unwrap();
    let mut peers = BTreeMap::new();
    peers.insert(
        "b.example".to_string(),
        PeerAddress {
            address: b_mimi.parse().unwrap(),
        },
    );
    let liar = MimiClient::new(
        ProviderId::new("c.example").unwrap(),
        &identity,
        roots,
        &peers,
    )
    .unwrap();
    let answer = liar
        .post(&b_id, Endpoint::Notify, "mimi://c.example/r/x", vec![0])
        .await
        .unwrap();
    assert_eq!(answer.status, 403);
    assert_eq!(json(&answer.body)["error"], "source_mismatch");

    let a = client_as(&certs, "a.example", "b.example", &b_mimi);
    // a malformed body
    let answer = a
        .post(
            &b_id,
            Endpoint::Notify,
            "mimi://a.example/r/club",
            vec![1, 2, 3],
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert!(
        json(&answer.body)["message"]
            .as_str()
            .unwrap()
            .contains("notify body")
    );
    let answer = a
        .post(
            &b_id,
            Endpoint::Update,
            "mimi://b.example/r/club",
            vec![9; 5],
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(json(&answer.body)["error"], "malformed_body");
    // a room id that is not a room URI
    let answer = a
        .post(&b_id, Endpoint::Update, "mimi://b.example/u/bob", vec![])
        .await
        .unwrap();
    assert_eq!(answer.status, 400);
    assert_eq!(json(&answer.body)["error"], "malformed_room_id");
    // a well-formed notify for a room b does not know
    let mut m = BareMember::new("mimi://a.example/d/alice/bare");
    m.create_group(b"g");
    let message = MlsMessage::from_bytes(&m.encrypt(b"hello")).unwrap();
    let body = join_notify_body(&[FanoutMessage {
        timestamp: 1,
        message,
        body: FanoutBody::Application { frank: None },
    }])
    .unwrap();
    let answer = a
        .post(&b_id, Endpoint::Notify, "mimi://a.example/r/unknown", body)
        .await
        .unwrap();
    assert_eq!(answer.status, 404);
    assert_eq!(json(&answer.body)["error"], "unknown_room");
    // a notify for a room whose hub is someone else
    let answer = a
        .post(&b_id, Endpoint::Notify, "mimi://c.example/r/x", vec![0])
        .await
        .unwrap();
    assert_eq!(answer.status, 403);
    assert!(b.stop("-TERM").success());
}

#[tokio::test]
async fn a_notify_the_peer_refuses_for_good_is_dead_lettered_and_the_queue_moves_on() {
    use mimi_bridge::mls::{ProxyMls, StateKey};
    use mimi_bridge::protocol::service::MimiService;
    use mimi_bridge::room::code_points::ComponentCodePoints;
    use mimi_bridge::store::outbox::{self, OutboxRecord};
    use mimi_bridge::store::{Store, StoreOptions};

    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    dev_certs(&certs, &["a.example", "b.example"]);
    let (b, b_mimi) = start_provider(dir.path(), &certs, "b.example");
    let store = Store::open_and_migrate(&StoreOptions::new(format!(
        "sqlite://{}/a.db",
        dir.path().display()
    )))
    .await
    .unwrap();
    let a_id = ProviderId::new("a.example").unwrap();
    let mls = Arc::new(ProxyMls::new(
        store.clone(),
        StateKey::from_bytes([3; 32]),
        ComponentCodePoints::default(),
        a_id.clone(),
    ));
    let client = client_as(&certs, "a.example", "b.example", &b_mimi);
    let service = MimiService::new(a_id, store.clone(), mls, Some(Arc::new(client)));
    for (id, body) in [
        ("notify:bad", vec![1, 2, 3]),
        ("notify:also-bad", vec![4, 5]),
    ] {
        outbox::enqueue(
            store.pool(),
            &OutboxRecord {
                id: id.into(),
                room_id: Some("mimi://a.example/r/club".into()),
                destination: "b.example".into(),
                kind: "notify".into(),
                sender: None,
                body,
                attempts: 0,
            },
        )
        .await
        .unwrap();
    }
    service.deliver_due().await.unwrap();
    let dead = outbox::dead_letters(store.pool(), "b.example")
        .await
        .unwrap();
    assert_eq!(
        dead.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        vec!["notify:bad", "notify:also-bad"]
    );
    assert!(
        outbox::heads(store.pool()).await.unwrap().is_empty(),
        "nothing left waiting"
    );
    assert!(b.stop("-TERM").success());
}
