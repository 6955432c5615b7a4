//! A hub whose own users have all left keeps serving the room: three daemons (a.example hosts
//! the room, b.example and c.example follow), driven through their operator APIs over mutual
//! TLS. After alice, a's only user, leaves, bob (b) and carol (c) go on through a: messages
//! both ways, an add and a removal committed from b, a second device of carol joining by
//! external commit with the GroupInfo a serves. Each daemon's view of the room, a's included,
//! must follow every step.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, Daemon};
use serde_json::{Value, json};

const TOKEN: &str = "test-admin-token";
const ROOM: &str = "mimi://a.example/r/commons";

const ALICE: &str = "mimi://a.example/d/alice/bridge";
const BOB: &str = "mimi://b.example/d/bob/bridge";
const CAROL: &str = "mimi://c.example/d/carol/bridge";
const CAROL_PHONE: &str = "mimi://c.example/d/carol/phone";
const DAVE: &str = "mimi://b.example/d/dave/bridge";

/// How long one wait lasts at most.
const WAIT: Duration = Duration::from_secs(20);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn room_path(suffix: &str) -> String {
    format!("/admin/v1/rooms/{}{suffix}", url_encode(ROOM))
}

/// The user URI of a client URI (`mimi://p/d/user/device` → `mimi://p/u/user`).
fn user_of(client: &str) -> String {
    let (provider, rest) = client
        .strip_prefix("mimi://")
        .and_then(|r| r.split_once("/d/"))
        .unwrap();
    let user = rest.split('/').next().unwrap();
    format!("mimi://{provider}/u/{user}")
}

struct Provider {
    domain: String,
    daemon: Daemon,
    http: reqwest::Client,
}

impl Provider {
    fn start(dir: &Path, certs: &Path, domain: &str, port: u16, peers: &[(&str, u16)]) -> Provider {
        let home = dir.join(domain);
        std::fs::create_dir_all(&home).unwrap();
        let config = home.join("bridge.toml");
        let mut text = format!(
            "[provider]\ndomain = \"{domain}\"\n\
             [server]\nlisten = \"127.0.0.1:0\"\nadmin_token = \"{TOKEN}\"\nshutdown_grace_seconds = 2\n\
             [database]\nurl = \"sqlite://{home}/bridge.db\"\n\
             [mimi.tls]\nlisten = \"127.0.0.1:{port}\"\ncertificate = \"{certs}/{domain}.pem\"\n\
             private_key = \"{certs}/{domain}.key\"\ntrust_anchors = \"{certs}/ca.pem\"\n",
            home = home.display(),
            certs = certs.display(),
        );
        for (peer, peer_port) in peers {
            text.push_str(&format!(
                "[mimi.peers.\"{peer}\"]\naddress = \"127.0.0.1:{peer_port}\"\n"
            ));
        }
        std::fs::write(&config, text).unwrap();
        Provider {
            domain: domain.to_string(),
            daemon: Daemon::start(&home, &["run", "--config", config.to_str().unwrap()]),
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(self.daemon.url(path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.daemon.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// The three daemons; every failure message carries their logs.
struct Net {
    a: Provider,
    b: Provider,
    c: Provider,
}

impl Net {
    fn all(&self) -> [&Provider; 3] {
        [&self.a, &self.b, &self.c]
    }

    /// What the daemons logged since last asked (the last lines of each).
    fn logs(&self) -> String {
        self.all()
            .iter()
            .map(|p| {
                let lines = p.daemon.log();
                let skip = lines.len().saturating_sub(150);
                format!(
                    "----- {} (last {} of {} log lines) -----\n{}",
                    p.domain,
                    lines.len() - skip,
                    lines.len(),
                    lines[skip..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A POST that must be answered `status`.
    async fn expect(&self, p: &Provider, status: u16, path: &str, body: Value) -> Value {
        let (s, answer) = p.post(path, body.clone()).await;
        if s != status {
            panic!(
                "POST {path} {body} on {} answered {s} (not {status}): {answer}\n{}",
                p.domain,
                self.logs()
            );
        }
        answer
    }

    /// Polls GET `path` on `p` until `check` accepts the answer, at most [`WAIT`].
    async fn wait_for(
        &self,
        p: &Provider,
        path: &str,
        what: &str,
        check: impl Fn(u16, &Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, body) = p.get(path).await;
            if check(status, &body) {
                return body;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {} s waiting for {what} on {}; last answer {status}: {body}\n{}",
                    WAIT.as_secs(),
                    p.domain,
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every daemon of `on` (a first) shows the room at `epoch`, then checks that
    /// they agree on its participants and members, and that those with a member of their own
    /// in the room agree on the epoch authenticator. Returns a's view.
    async fn agree_at(&self, on: &[&Provider], epoch: u64, what: &str) -> Value {
        let mut views = Vec::new();
        for p in on {
            let view = self
                .wait_for(
                    p,
                    &room_path(""),
                    &format!("{what}: epoch {epoch}"),
                    |s, v| s == 200 && v["epoch"] == epoch,
                )
                .await;
            views.push(view);
        }
        let on_a = &views[0];
        for (p, view) in on.iter().zip(&views).skip(1) {
            assert_eq!(
                sorted(&on_a["participants"]),
                sorted(&view["participants"]),
                "{what}: the participants on {} and {} differ\n{}",
                on[0].domain,
                p.domain,
                self.logs()
            );
            assert_eq!(
                sorted(&on_a["members"]),
                sorted(&view["members"]),
                "{what}: the members on {} and {} differ\n{}",
                on[0].domain,
                p.domain,
                self.logs()
            );
        }
        let with_members: Vec<(&str, &Value)> = on
            .iter()
            .zip(&views)
            .filter(|(p, v)| {
                v["members"].as_array().is_some_and(|m| {
                    m.iter().any(|m| {
                        m["client"]
                            .as_str()
                            .is_some_and(|c| c.starts_with(&format!("mimi://{}/", p.domain)))
                    })
                })
            })
            .map(|(p, v)| (p.domain.as_str(), &v["epoch_authenticator"]))
            .collect();
        for (domain, authenticator) in with_members.iter().skip(1) {
            assert_eq!(
                *authenticator, with_members[0].1,
                "{what}: {domain} and {} are in different group contexts",
                with_members[0].0
            );
        }
        on_a.clone()
    }

    /// Sends `text` from `sender` (a client on `from`) and waits until it is on `to`.
    async fn message(&self, from: &Provider, sender: &str, text: &str, to: &Provider) {
        self.expect(
            from,
            202,
            &room_path("/messages"),
            json!({ "sender": sender, "text": text }),
        )
        .await;
        self.wait_for(
            to,
            &room_path("/messages"),
            &format!("`{text}` from {sender}"),
            |s, v| s == 200 && count(v, sender, text) > 0,
        )
        .await;
    }
}

/// A JSON array of objects, sorted by their text, for order-free comparison.
fn sorted(list: &Value) -> Vec<String> {
    let mut items: Vec<String> = list
        .as_array()
        .map(|a| a.iter().map(Value::to_string).collect())
        .unwrap_or_default();
    items.sort();
    items
}

/// The users on a room view's participant list, sorted.
fn users(view: &Value) -> Vec<String> {
    let mut users: Vec<String> = view["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["user"].as_str().unwrap().to_string())
        .collect();
    users.sort();
    users
}

/// How many of the received messages `list` are `text` from `sender`.
fn count(list: &Value, sender: &str, text: &str) -> usize {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter(|m| m["sender"] == sender && m["text"] == text)
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_serves_a_room_after_its_last_local_user_left() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let out = Command::new(BIN)
        .args(["dev-certs", "--out"])
        .arg(&certs)
        .args([
            "--provider",
            "a.example",
            "--provider",
            "b.example",
            "--provider",
            "c.example",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let net = Net {
        a: Provider::start(
            dir.path(),
            &certs,
            "a.example",
            pa,
            &[("b.example", pb), ("c.example", pc)],
        ),
        b: Provider::start(
            dir.path(),
            &certs,
            "b.example",
            pb,
            &[("a.example", pa), ("c.example", pc)],
        ),
        c: Provider::start(
            dir.path(),
            &certs,
            "c.example",
            pc,
            &[("a.example", pa), ("b.example", pb)],
        ),
    };
    let (a, b, c) = (&net.a, &net.b, &net.c);
    for (p, client) in [(a, ALICE), (b, BOB), (b, DAVE), (c, CAROL)] {
        net.expect(p, 201, "/admin/v1/clients", json!({ "client": client }))
            .await;
    }

    // alice creates the room on a, its hub
    let room = net
        .expect(
            a,
            201,
            "/admin/v1/rooms",
            json!({ "room": ROOM, "creator": ALICE }),
        )
        .await;
    assert_eq!(room["epoch"], 0);

    // bob (b) and carol (c) consent and are added by alice
    let mut epoch = 0;
    for (p, user, on) in [
        (b, user_of(BOB), vec![a, b]),
        (c, user_of(CAROL), vec![a, b, c]),
    ] {
        let parties = json!({ "requester": user_of(ALICE), "target": user, "room": ROOM });
        net.expect(a, 202, "/admin/v1/consent/requests", parties.clone())
            .await;
        let mut answer = parties;
        answer["grant"] = json!(true);
        net.expect(p, 202, "/admin/v1/consent/answers", answer)
            .await;
        net.expect(
            a,
            202,
            &room_path("/members"),
            json!({ "committer": ALICE, "user": user }),
        )
        .await;
        epoch += 1;
        net.agree_at(&on, epoch, &format!("{user} added")).await;
    }
    // bob becomes a group admin (3), so that he can add and remove users later
    net.expect(
        a,
        202,
        &room_path("/roles"),
        json!({ "committer": ALICE, "user": user_of(BOB), "role": 3 }),
    )
    .await;
    epoch += 1;
    let on_a = net.agree_at(&[a, b, c], epoch, "bob made an admin").await;
    assert_eq!(
        users(&on_a),
        [user_of(ALICE), user_of(BOB), user_of(CAROL)],
        "{on_a}"
    );

    // alice leaves: her proposals are cached by the hub and reach b and c
    net.expect(a, 202, &room_path("/leave"), json!({ "client": ALICE }))
        .await;
    for p in [a, b, c] {
        net.wait_for(p, &room_path(""), "alice's leave proposals", |s, v| {
            s == 200 && v["pending_proposals"] == 2
        })
        .await;
    }
    // bob commits them; a is left with no member of its own in the room
    net.expect(b, 202, &room_path("/commit"), json!({ "committer": BOB }))
        .await;
    epoch += 1;
    let on_a = net
        .agree_at(&[a, b, c], epoch, "alice's leave committed")
        .await;
    assert_eq!(users(&on_a), [user_of(BOB), user_of(CAROL)], "{on_a}");
    assert_eq!(on_a["pending_proposals"], 0, "{on_a}");
    assert!(
        !on_a["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["client"] == ALICE),
        "alice's client is gone: {on_a}"
    );

    // bob and carol talk through a, both ways
    net.message(b, BOB, "hello carol, a has no one left", c)
        .await;
    net.message(c, CAROL, "hello bob, a still relays", b).await;
    net.message(b, BOB, "second from bob", c).await;

    // bob adds dave of b: key material from b, the commit through a's /update
    net.expect(
        b,
        202,
        &room_path("/members"),
        json!({ "committer": BOB, "user": user_of(DAVE) }),
    )
    .await;
    epoch += 1;
    let on_a = net.agree_at(&[a, b, c], epoch, "dave added by bob").await;
    assert_eq!(
        users(&on_a),
        [user_of(BOB), user_of(DAVE), user_of(CAROL)],
        "{on_a}"
    );
    net.message(c, CAROL, "welcome dave", b).await;

    // and removes him again
    net.expect(
        b,
        202,
        &room_path("/removals"),
        json!({ "committer": BOB, "user": user_of(DAVE) }),
    )
    .await;
    epoch += 1;
    let on_a = net.agree_at(&[a, b, c], epoch, "dave removed by bob").await;
    assert_eq!(users(&on_a), [user_of(BOB), user_of(CAROL)], "{on_a}");
    assert!(
        !on_a["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["client"] == DAVE),
        "dave's client is gone: {on_a}"
    );

    // carol's phone joins by external commit, with the GroupInfo from a's /groupInfo
    net.expect(
        c,
        201,
        "/admin/v1/clients",
        json!({ "client": CAROL_PHONE }),
    )
    .await;
    net.expect(
        c,
        202,
        &room_path("/devices"),
        json!({ "client": CAROL_PHONE }),
    )
    .await;
    epoch += 1;
    let on_a = net
        .agree_at(&[a, b, c], epoch, "carol's phone joined")
        .await;
    let carols = on_a["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["user"] == user_of(CAROL).as_str())
        .count();
    assert_eq!(carols, 2, "both of carol's clients are members: {on_a}");

    // the phone speaks, b hears it
    net.message(c, CAROL_PHONE, "from carol's phone", b).await;
    net.message(b, BOB, "bob to both of carol's devices", c)
        .await;

    // each message arrived once on the other side (given time for a duplicate to show)
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, on_b) = b.get(&room_path("/messages")).await;
    let (_, on_c) = c.get(&room_path("/messages")).await;
    for (list, sender, text) in [
        (&on_c, BOB, "hello carol, a has no one left"),
        (&on_b, CAROL, "hello bob, a still relays"),
        (&on_c, BOB, "second from bob"),
        (&on_b, CAROL, "welcome dave"),
        (&on_b, CAROL_PHONE, "from carol's phone"),
        (&on_c, BOB, "bob to both of carol's devices"),
    ] {
        assert_eq!(
            count(list, sender, text),
            1,
            "`{text}` from {sender} arrived once: {list}"
        );
    }

    assert!(net.c.daemon.stop("-TERM").success());
    assert!(net.b.daemon.stop("-TERM").success());
    assert!(net.a.daemon.stop("-TERM").success());
}
