//! End to end across providers: two daemons (three with `THIRD=1`), each a separate process with
//! the webhook connector and a receiver of its commands in this process, speaking MIMI to each
//! other over mutual TLS on loopback. The rooms are hosted by a.example; every room has all the
//! senders, spread over the providers; every message must reach every other provider.
//!
//!     cargo bench --bench e2e
//!
//! Environment: `MESSAGES` (default 2000), `SENDERS` legacy users (default 4), `ROOMS`
//! (default 2), `THIRD=1` (a third provider), `RATE` (messages/s offered in the second run;
//! default half the first run's delivered rate; `FIXED=0` skips that run), `RUNS` (maximum-rate runs in a row, default 1), `MIMI_TEST_LOG` (the
//! daemons' log filter). Each run also prints the daemons' resident memory after it.
//!
//! Two runs: the messages submitted as fast as the webhook API takes them (32 in flight), then
//! at a fixed offered rate. Each prints accepted/s (the webhook API's answers), delivered/s end
//! to end (first submit to last arrival at the other providers' receivers), latency percentiles
//! from submit to arrival, and CPU seconds per 1,000 messages of each daemon (from
//! `/proc/<pid>/stat`); then bare openmls encrypting and decrypting the same number of messages
//! of the same size in memory, and the ratios the targets are stated in.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/webhook.rs"]
mod webhook;

use common::text;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mimi_bridge::mls::bare_member::BareMember;
use mimi_bridge_connector::{CommandKind, ConnectorEvent, EventKind, UserRef};
use webhook::{Provider, Setup, dev_certs, free_port};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Who sends: user `s` of `SENDERS` lives at provider `s % providers`.
struct Sender {
    provider: usize,
    name: String,
}

struct World {
    providers: Vec<Provider>,
    senders: Vec<Sender>,
    /// For each room, its legacy id at each provider.
    rooms: Vec<Vec<String>>,
    _dir: tempfile::TempDir,
}

const DOMAINS: [&str; 3] = ["a.example", "b.example", "c.example"];

/// The body of a message command, if it is one.
fn body(command: &mimi_bridge_connector::BridgeCommand) -> Option<&str> {
    match &command.kind {
        CommandKind::Message { content, .. } => Some(content.body.as_str()),
        _ => None,
    }
}

async fn world(n_providers: usize, n_senders: usize, n_rooms: usize) -> World {
    let dir = tempfile::tempdir().unwrap();
    let domains = &DOMAINS[..n_providers];
    let certs = dev_certs(dir.path(), domains);
    let ports: Vec<u16> = domains.iter().map(|_| free_port()).collect();
    let mut providers = Vec::new();
    for (i, domain) in domains.iter().enumerate() {
        let peers: Vec<(&str, u16)> = domains
            .iter()
            .zip(&ports)
            .filter(|(d, _)| *d != domain)
            .map(|(d, p)| (*d, *p))
            .collect();
        providers.push(
            Provider::start(Setup {
                dir: dir.path(),
                certs: &certs,
                domain,
                mimi_port: ports[i],
                peers: &peers,
                consent: "grant",
                fail_first: 0,
            })
            .await,
        );
    }
    let senders: Vec<Sender> = (0..n_senders.max(n_providers))
        .map(|s| Sender {
            provider: s % n_providers,
            name: format!("user{s}"),
        })
        .collect();
    let all: Vec<&Provider> = providers.iter().collect();
    let mut rooms = Vec::new();
    for r in 0..n_rooms {
        let legacy = format!("room{r}");
        let creator = &senders[0];
        let event =
            |id: String, sender: &str, kind| ConnectorEvent::new(id, legacy.as_str(), sender, kind);
        providers[0]
            .submit(event(
                format!("create-{r}"),
                &creator.name,
                EventKind::RoomCreated {
                    name: Some(format!("Room {r}")),
                },
            ))
            .await;
        for (s, sender) in senders.iter().enumerate().skip(1) {
            let target = if sender.provider == 0 {
                UserRef::legacy(sender.name.as_str())
            } else {
                UserRef::mimi(format!(
                    "mimi://{}/u/{}",
                    DOMAINS[sender.provider], sender.name
                ))
            };
            providers[0]
                .submit(event(
                    format!("invite-{r}-{s}"),
                    &creator.name,
                    EventKind::UserInvited { target },
                ))
                .await;
        }
        // A probe from the creator names the room's legacy id at each other provider.
        let probe = format!("setup probe {r}");
        providers[0]
            .submit(event(
                format!("probe-{r}"),
                &creator.name,
                text(&format!("probe-{r}"), &probe),
            ))
            .await;
        let mut ids = vec![legacy.clone()];
        for p in &providers[1..] {
            let got = p
                .wait_until(&format!("room {r}'s probe"), &all, |c| {
                    c.iter().any(|c| body(c) == Some(probe.as_str()))
                })
                .await;
            let arrived = got
                .iter()
                .find(|c| body(c) == Some(probe.as_str()))
                .unwrap();
            ids.push(arrived.room.legacy_id.as_ref().unwrap().to_string());
        }
        rooms.push(ids);
    }
    World {
        providers,
        senders,
        rooms,
        _dir: dir,
    }
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; USER_HZ is
    // 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

struct RunResult {
    delivered_per_s: f64,
    p99_ms: f64,
}

/// Sends `messages` messages, all at once (32 in flight) or at `rate` per second, and waits for
/// each at every other provider.
async fn run(w: &World, label: &str, messages: usize, rate: Option<f64>) -> RunResult {
    let n_rooms = w.rooms.len();
    let n_senders = w.senders.len();
    let others = w.providers.len() - 1;
    let before_counts: Vec<usize> = w
        .providers
        .iter()
        .map(|p| p.receiver.commands().len())
        .collect();
    let rss_before: Vec<f64> = w
        .providers
        .iter()
        .map(|p| rss_mib(p.bridge.child.id()))
        .collect();
    let cpu_before: Vec<f64> = w
        .providers
        .iter()
        .map(|p| cpu_seconds(p.bridge.child.id()))
        .collect();
    let submitted: Arc<std::sync::Mutex<HashMap<String, (usize, Instant)>>> = Default::default();
    let start = Instant::now();
    let limit = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    let mut ticker = rate.map(|r| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / r));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    for i in 0..messages {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let room = i % n_rooms;
        let sender = &w.senders[(i / n_rooms) % n_senders];
        let body = format!("{label} {i}");
        let event = ConnectorEvent::new(
            format!("{label}-{i}"),
            w.rooms[room][sender.provider].as_str(),
            sender.name.as_str(),
            text(&format!("{label}-m{i}"), &body),
        );
        let client = w.providers[sender.provider].client.clone();
        let permit = limit.clone().acquire_owned().await.unwrap();
        let submitted = submitted.clone();
        let provider = sender.provider;
        tasks.spawn(async move {
            let at = Instant::now();
            let answer = client.submit(&event).await.expect("submit");
            assert_eq!(answer.status, 202, "{}: submit refused", event.event_id);
            submitted.lock().unwrap().insert(body, (provider, at));
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    let accepted_in = start.elapsed();
    // Every message at every provider but its sender's.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut arrivals: Vec<Duration> = Vec::with_capacity(messages * others);
    let mut last = start;
    for (p, provider) in w.providers.iter().enumerate() {
        let expected = (0..messages)
            .filter(|i| w.senders[(i / n_rooms) % n_senders].provider != p)
            .count();
        let got = provider
            .receiver
            .wait_for_since(before_counts[p], expected, deadline - Instant::now())
            .await
            .unwrap_or_else(|got| {
                panic!(
                    "{label}: {} of {expected} messages reached {}",
                    got.len(),
                    provider.domain
                )
            });
        let submitted = submitted.lock().unwrap();
        for (at, command) in got {
            let Some(body) = body(&command) else { continue };
            if let Some((from, sent)) = submitted.get(body)
                && *from != p
            {
                arrivals.push(at.saturating_duration_since(*sent));
                last = last.max(at);
            }
        }
    }
    let delivered_in = last.saturating_duration_since(start);
    let cpu: Vec<f64> = w
        .providers
        .iter()
        .zip(&cpu_before)
        .map(|(p, before)| cpu_seconds(p.bridge.child.id()) - before)
        .collect();
    arrivals.sort();
    let delivered_per_s = messages as f64 / delivered_in.as_secs_f64();
    let p99 = percentile(&arrivals, 0.99);
    println!(
        "{label}: {messages} messages from {n_senders} users in {n_rooms} rooms across {} providers{}",
        w.providers.len(),
        rate.map(|r| format!(", offered at {r:.0}/s"))
            .unwrap_or_default()
    );
    println!(
        "   accepted {:.0}/s; delivered end to end {:.0}/s ({} arrivals); submit → arrival p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        messages as f64 / accepted_in.as_secs_f64(),
        delivered_per_s,
        arrivals.len(),
        percentile(&arrivals, 0.5),
        percentile(&arrivals, 0.95),
        p99,
        percentile(&arrivals, 1.0),
    );
    let per_k: Vec<String> = w
        .providers
        .iter()
        .zip(&cpu)
        .map(|(p, s)| format!("{} {:.2}", p.domain, s * 1000.0 / messages as f64))
        .collect();
    println!(
        "   CPU seconds per 1,000 messages: {} (over {:.1} s wall)",
        per_k.join(", "),
        delivered_in.as_secs_f64()
    );
    let rss: Vec<String> = w
        .providers
        .iter()
        .zip(&rss_before)
        .map(|(p, before)| {
            let now = rss_mib(p.bridge.child.id());
            format!("{} {now:.1} MiB ({:+.1})", p.domain, now - before)
        })
        .collect();
    println!("   resident memory after the run: {}", rss.join(", "));
    RunResult {
        delivered_per_s,
        p99_ms: p99,
    }
}

/// Bare openmls, in memory: one member encrypts, another decrypts, `messages` messages of the
/// size the bridge sends (MIMI content of a short text, about 80 bytes).
fn bare_openmls(messages: usize) -> f64 {
    let mut alice = BareMember::new("mimi://a.example/d/alice/bare");
    let mut bob = BareMember::new("mimi://b.example/d/bob/bare");
    alice.create_group(b"e2e-bare");
    let welcome = alice.add(&[bob.key_package_struct()]);
    bob.join(&welcome).unwrap();
    let payload = vec![0x61u8; 80];
    let start = Instant::now();
    for _ in 0..messages {
        let m = alice.encrypt(&payload);
        bob.process(&m).unwrap();
    }
    messages as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let messages = env("MESSAGES", 2000);
    let senders = env("SENDERS", 4);
    let rooms = env("ROOMS", 2).max(1);
    let providers = if env("THIRD", 0) == 1 { 3 } else { 2 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let w = world(providers, senders, rooms).await;
        // `RUNS=n`: n runs at the maximum rate, one after the other (memory over a long run).
        let mut max = run(&w, "max", messages, None).await;
        for r in 1..env("RUNS", 1) {
            max = run(&w, &format!("max{r}"), messages, None).await;
        }
        let rate = std::env::var("RATE")
            .ok()
            .and_then(|r| r.parse::<f64>().ok())
            .unwrap_or(max.delivered_per_s / 2.0)
            .max(1.0);
        if env("FIXED", 1) == 0 {
            return;
        }
        let fixed = run(&w, "fixed", messages, Some(rate)).await;
        // `E2E_LOGS=dir`: each daemon's log lines, for counting what it did (e.g. with
        // `MIMI_TEST_LOG=info,sqlx::query=debug`).
        if let Ok(dir) = std::env::var("E2E_LOGS") {
            for p in &w.providers {
                let path = std::path::Path::new(&dir).join(format!("{}.log", p.domain));
                std::fs::write(&path, p.bridge.log().join("\n")).unwrap();
            }
        }
        let bare = bare_openmls(messages);
        println!("bare openmls, in memory: {bare:.0} messages/s encrypted and decrypted");
        println!(
            "targets: delivered >= 0.3 x bare: {:.3} ({}); p99 <= 100 ms at half the maximum delivered rate: {:.1} ms ({})",
            max.delivered_per_s / bare,
            if max.delivered_per_s >= 0.3 * bare { "met" } else { "not met" },
            fixed.p99_ms,
            if fixed.p99_ms <= 100.0 { "met" } else { "not met" },
        );
    });
}
