//! Proxy MLS clients: cost of the stored path against bare openmls, and of large local rooms.
//!
//!     cargo bench --bench proxy_mls
//!
//! Environment: `MEMBERS` (default 1000), `MESSAGES` (default 2000), `BATCH` (default 50),
//! `COMMITS` (default 5), `DATABASE_URL` (default: a SQLite file in a temporary folder; a
//! `postgres://…/postgres` URL makes each scenario its own database on that server).
//!
//! Prints, from one run:
//! 1. application messages per second through the stored path (encrypt + persist by one local
//!    client, decrypt + persist by another) and through bare openmls with in-memory storage;
//! 2. the wall time of adding MEMBERS local users (one client each) to a room in one commit;
//! 3. the CPU time of processing a commit in a MEMBERS-member room whose members are all local
//!    proxy clients, against the same commit with one local proxy client, and the stored bytes
//!    of both rooms.

use std::time::{Duration, Instant};

use cpu_time::ProcessTime;
use mimi_bridge::mls::bare_member::{BareMember, parse_key_package};
use mimi_bridge::mls::{ProxyMls, StateKey, UserAddition};
use mimi_bridge::room::code_points::ComponentCodePoints;
use mimi_bridge::room::wire::{self, ParticipantListData, ParticipantListUpdate, UserRolePair};
use mimi_bridge::store::{Store, StoreOptions};
use mimi_bridge::uri::{ClientUri, ProviderId, RoomUri, UserUri};
use openmls::prelude::*;

const ADMIN: u32 = 3;
const ORDINARY: u32 = 2;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Db {
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn database(name: &str) -> Db {
    match std::env::var("DATABASE_URL") {
        Ok(admin) if admin.starts_with("postgres") => {
            let store = Store::open(&StoreOptions::new(&admin))
                .await
                .expect("postgres");
            let db = format!("mimi_bench_{name}");
            for sql in [
                format!("DROP DATABASE IF EXISTS {db}"),
                format!("CREATE DATABASE {db}"),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(store.pool())
                    .await
                    .expect("create database");
            }
            store.close().await;
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            Db {
                url: format!("{base}/{db}"),
                _dir: None,
            }
        }
        _ => {
            let dir = tempfile::tempdir().expect("temp dir");
            Db {
                url: format!("sqlite://{}/bench.db", dir.path().display()),
                _dir: Some(dir),
            }
        }
    }
}

async fn engine(db: &Db, pool: usize) -> ProxyMls {
    let store = Store::open_and_migrate(&StoreOptions::new(&db.url))
        .await
        .expect("store");
    ProxyMls::new(
        store,
        StateKey::from_bytes([7; 32]),
        ComponentCodePoints::default(),
        ProviderId::new("a.example").unwrap(),
    )
    .with_key_package_pool(pool)
}

fn room() -> RoomUri {
    "mimi://a.example/r/bench".parse().unwrap()
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let members = env("MEMBERS", 1000);
    let messages = env("MESSAGES", 2000);
    let batch = env("BATCH", 50).max(1);
    let commits = env("COMMITS", 5).max(1);
    println!(
        "proxy_mls benchmark: MEMBERS={members} MESSAGES={messages} BATCH={batch} COMMITS={commits}"
    );
    println!(
        "store: {}",
        std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite (temporary file)".into())
    );

    application_messages(messages, batch).await;
    let (local_cpu, local_bytes) = large_room(members, commits, true).await;
    let (one_cpu, one_bytes) = large_room(members, commits, false).await;
    println!();
    println!("== commit arriving in a {}-member room", members + 2);
    println!(
        "   CPU per commit (median): all local {:.2} ms, one local {:.2} ms -> ratio {:.2} (target <= 3)",
        local_cpu.as_secs_f64() * 1e3,
        one_cpu.as_secs_f64() * 1e3,
        local_cpu.as_secs_f64() / one_cpu.as_secs_f64()
    );
    println!(
        "   stored room state: all local {:.1} KiB, one local client {:.1} KiB -> ratio {:.2} (target <= 3)",
        local_bytes as f64 / 1024.0,
        one_bytes as f64 / 1024.0,
        local_bytes as f64 / one_bytes as f64
    );
}

async fn application_messages(messages: usize, batch: usize) {
    let payload = vec![0x5a; 1024];
    // bare openmls, in-memory storage
    let mut alice = BareMember::new("mimi://a.example/d/alice/bare");
    let mut bob = BareMember::new("mimi://a.example/d/bob/bare");
    alice.create_group(b"bench-bare");
    let welcome = alice.add(&[bob.key_package_struct()]);
    bob.join(&welcome).unwrap();
    let start = Instant::now();
    for _ in 0..messages {
        let m = alice.encrypt(&payload);
        bob.process(&m).unwrap();
    }
    let bare = rate(messages, start.elapsed());

    // the stored path: carol encrypts and persists, alice (the reader) decrypts and persists
    let db = database("messages").await;
    let a = engine(&db, 2).await;
    let alice =
        ClientUri::new(ProviderId::new("a.example").unwrap(), &["alice", "bridge"]).unwrap();
    let carol =
        ClientUri::new(ProviderId::new("a.example").unwrap(), &["carol", "bridge"]).unwrap();
    a.create_client(&alice).await.unwrap();
    a.create_client(&carol).await.unwrap();
    a.create_room(&room(), &alice, ADMIN).await.unwrap();
    let kp = a.key_package(&carol).await.unwrap();
    a.add_users(
        &room(),
        &alice,
        &[UserAddition {
            user: carol.user_hint().unwrap(),
            role: ORDINARY,
            key_packages: vec![kp],
        }],
    )
    .await
    .unwrap();
    a.confirm_commit(&room(), &alice).await.unwrap();
    let mut results = Vec::new();
    for b in [1, batch] {
        let rounds = (messages / b).max(1);
        let mut latencies = Vec::with_capacity(rounds);
        let start = Instant::now();
        for _ in 0..rounds {
            let t = Instant::now();
            let payloads: Vec<&[u8]> = (0..b).map(|_| payload.as_slice()).collect();
            let sent = a.send_messages(&room(), &carol, &payloads).await.unwrap();
            let got = a.receive_messages(&room(), &sent).await.unwrap();
            assert_eq!(got.len(), b);
            latencies.push(t.elapsed());
        }
        let stored = rate(rounds * b, start.elapsed());
        latencies.sort();
        results.push((b, stored, latencies));
    }
    println!();
    println!("== application messages (1 KiB), encrypt + decrypt");
    println!("   bare openmls, in memory: {bare:.0} msg/s");
    for (b, stored, lat) in results {
        println!(
            "   stored path, {b:>3} per transaction: {stored:.0} msg/s -> ratio {:.2} (target >= 0.5); \
             per transaction p50 {:.2} ms, p99 {:.2} ms",
            stored / bare,
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
        );
    }
}

/// A room of alice (local), `members` users added in one commit (local proxy clients when
/// `all_local`, bare remote members otherwise) and rita, a remote member who then commits.
/// Returns the median CPU time of processing rita's commits and the room's stored bytes.
async fn large_room(members: usize, commits: usize, all_local: bool) -> (Duration, i64) {
    let label = if all_local { "all local" } else { "one local" };
    let db = database(if all_local { "all_local" } else { "one_local" }).await;
    let a = engine(&db, 0).await;
    let provider = ProviderId::new("a.example").unwrap();
    let alice = ClientUri::new(provider.clone(), &["alice", "bridge"]).unwrap();
    a.create_client(&alice).await.unwrap();
    a.create_room(&room(), &alice, ADMIN).await.unwrap();
    let others = members;
    let mut additions = Vec::with_capacity(others + 1);
    let mut create = Duration::ZERO;
    let add_start;
    if all_local {
        let clients: Vec<ClientUri> = (0..others)
            .map(|i| ClientUri::new(provider.clone(), &[&format!("user{i}"), "bridge"]).unwrap())
            .collect();
        let t = Instant::now();
        a.create_clients(&clients, 0).await.unwrap();
        create = t.elapsed();
        add_start = Instant::now();
        let kps = a.key_packages(&clients).await.unwrap();
        for (c, kp) in clients.iter().zip(kps) {
            additions.push(UserAddition {
                user: c.user_hint().unwrap(),
                role: ORDINARY,
                key_packages: vec![kp],
            });
        }
    } else {
        for i in 0..others {
            let m = BareMember::new(&format!("mimi://b.example/d/user{i}/phone"));
            additions.push(UserAddition {
                user: format!("mimi://b.example/u/user{i}").parse().unwrap(),
                role: ORDINARY,
                key_packages: vec![m.key_package()],
            });
        }
        add_start = Instant::now();
    }
    let mut rita = BareMember::new("mimi://b.example/d/rita/phone");
    additions.push(UserAddition {
        user: "mimi://b.example/u/rita".parse().unwrap(),
        role: ADMIN,
        key_packages: vec![rita.key_package()],
    });
    let out = a.add_users(&room(), &alice, &additions).await.unwrap();
    a.confirm_commit(&room(), &alice).await.unwrap();
    let add_wall = add_start.elapsed();
    println!();
    println!("== {label}: room of {} members", members + 2);
    if all_local {
        println!(
            "   creating {others} proxy clients (keys, credential, key package): {:.0} ms",
            create.as_secs_f64() * 1e3
        );
        println!(
            "   adding {others} local users and 1 remote in one commit (key packages taken, commit built and checked, stored, confirmed): {:.0} ms wall (target < 1000 ms)",
            add_wall.as_secs_f64() * 1e3
        );
    } else {
        println!(
            "   adding {} remote users in one commit: {:.0} ms wall",
            others + 1,
            add_wall.as_secs_f64() * 1e3
        );
    }
    rita.join(out.welcome.as_ref().unwrap()).unwrap();

    let cp = ComponentCodePoints::default();
    let mut cpu = Vec::with_capacity(commits);
    let mut wall = Vec::with_capacity(commits);
    for k in 0..commits {
        let zoe = BareMember::new(&format!("mimi://b.example/d/zoe{k}/phone"));
        let mut list: ParticipantListData =
            wire::decode_exact(&rita.component(cp.participant_list).unwrap()).unwrap();
        let zoe_user: UserUri = format!("mimi://b.example/u/zoe{k}").parse().unwrap();
        let update = ParticipantListUpdate {
            added_participants: vec![UserRolePair::new(zoe_user.as_str(), ORDINARY)],
            ..Default::default()
        };
        list.participants
            .push(UserRolePair::new(zoe_user.as_str(), ORDINARY));
        let commit = rita.commit(
            vec![Proposal::AppDataUpdate(Box::new(
                AppDataUpdateProposal::update(cp.participant_list, wire::encode(&update).unwrap()),
            ))],
            vec![parse_key_package(&zoe.key_package()).unwrap()],
            Some((cp.participant_list, wire::encode(&list).unwrap())),
            true,
        );
        let c = ProcessTime::now();
        let w = Instant::now();
        a.process_incoming(&room(), &commit).await.unwrap();
        cpu.push(c.elapsed());
        wall.push(w.elapsed());
    }
    cpu.sort();
    wall.sort();
    let report = a.storage_report(&room()).await.unwrap();
    println!(
        "   a commit arriving (remote Add with its participant-list update): CPU p50 {:.2} ms, wall p50 {:.2} ms, wall max {:.2} ms",
        percentile(&cpu, 0.5).as_secs_f64() * 1e3,
        percentile(&wall, 0.5).as_secs_f64() * 1e3,
        wall.last().unwrap().as_secs_f64() * 1e3
    );
    println!(
        "   stored: {:.1} KiB in client rows, {:.1} KiB in shared blobs",
        report.client_rows as f64 / 1024.0,
        report.blobs as f64 / 1024.0
    );
    (percentile(&cpu, 0.5), report.total())
}
