//! A real Matrix homeserver (Synapse) on loopback for integration tests, and a plain
//! reqwest + serde_json Matrix client to act as the people on it.
//!
//! Synapse runs from a virtualenv that `bash tests/run.sh` creates (`MIMI_SYNAPSE_VENV`, default
//! `~/.cache/mimi-bridge/synapse-venv`). Each [`Synapse`] lives in a directory of the test's
//! (config, SQLite database, logs, media), listens on a free 127.0.0.1 port, has no federation,
//! presence off and rate limits effectively off, and is killed on drop.
//!
//! Use from a test file as `mod synapse;` (next to `mod common;`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

/// The `registration_shared_secret` (HMAC registration, as `register_new_matrix_user` does it).
pub const REGISTRATION_SHARED_SECRET: &str = "mimi_test_registration_secret";
/// Longest wait for Synapse to answer `/_matrix/client/versions` after a (re)start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Synapse homeserver, killed on drop.
pub struct Synapse {
    dir: PathBuf,
    port: u16,
    venv: PathBuf,
    child: Option<Child>,
    http: reqwest::Client,
}

impl Synapse {
    /// The virtualenv holding Synapse: `MIMI_SYNAPSE_VENV`, or
    /// `~/.cache/mimi-bridge/synapse-venv`. Panics (with what to run) when it is missing.
    pub fn venv() -> PathBuf {
        let venv = match std::env::var_os("MIMI_SYNAPSE_VENV") {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => {
                let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
                PathBuf::from(home).join(".cache/mimi-bridge/synapse-venv")
            }
        };
        if !venv.join("bin/python").exists() || !venv.join("bin/register_new_matrix_user").exists()
        {
            panic!(
                "no Synapse virtualenv at {} (MIMI_SYNAPSE_VENV). The Matrix tests need a real \
                 homeserver: run `bash tests/run.sh` once (it installs Synapse from PyPI there), \
                 or point MIMI_SYNAPSE_VENV at a virtualenv with matrix-synapse installed.",
                venv.display()
            );
        }
        venv
    }

    /// Writes the configuration into `dir` and starts Synapse on a free loopback port; returns
    /// once it answers. `registration` is the appservice registration YAML (written to
    /// `dir/appservice.yaml`); an empty string means no appservice.
    ///
    /// Blocks the calling thread for the start (~1–2 s); inside a multi-thread tokio runtime it
    /// lets the runtime's other tasks run meanwhile, so an in-process appservice keeps answering.
    pub fn start(dir: &Path, registration: &str) -> Synapse {
        let venv = Self::venv();
        std::fs::create_dir_all(dir).expect("create the Synapse dir");
        let dir = dir.canonicalize().expect("canonical Synapse dir");
        let port = free_port();
        write_config(&dir, port, registration);
        let mut synapse = Synapse {
            dir,
            port,
            venv,
            child: None,
            http: reqwest::Client::new(),
        };
        synapse.spawn_and_wait();
        synapse
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Always `localhost`: user ids are `@name:localhost`.
    pub fn server_name(&self) -> &str {
        "localhost"
    }

    /// The unauthenticated download URL of an `mxc://server/id` (served because the config has
    /// `enable_authenticated_media: false`).
    pub fn media_url(&self, mxc: &str) -> String {
        let rest = mxc.strip_prefix("mxc://").expect("an mxc:// URI");
        let (server, id) = rest.split_once('/').expect("mxc://server/id");
        format!(
            "{}/_matrix/media/v3/download/{}/{}",
            self.base_url(),
            enc(server),
            enc(id)
        )
    }

    /// The directory with `homeserver.yaml`, `appservice.yaml`, `homeserver.db`, logs, media.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The last `lines` lines of `homeserver.log` and of Synapse's stderr (for failure messages).
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.dir, lines)
    }

    /// SIGTERM, then wait for the process to exit (SIGKILL after 20 s). No-op when stopped.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        blocking(|| {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => return,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return;
                    }
                }
            }
        });
    }

    /// Stops Synapse and starts it again on the same port, database and configuration; returns
    /// once it answers. Access tokens, rooms and pending appservice transactions survive.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn_and_wait();
    }

    /// Starts Synapse again after [`Synapse::stop`] (same port and database).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "Synapse is already running");
        self.spawn_and_wait();
    }

    fn spawn_and_wait(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("synapse.stdout"))
            .expect("synapse.stdout");
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("synapse.stderr"))
            .expect("synapse.stderr");
        let child = Command::new(self.venv.join("bin/python"))
            .args(["-m", "synapse.app.homeserver", "-c", "homeserver.yaml"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn Synapse");
        self.child = Some(child);
        let port = self.port;
        let dir = self.dir.clone();
        let child = self.child.as_mut().unwrap();
        blocking(move || {
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if versions_ok(port) {
                    return;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "Synapse exited while starting ({status}):\n{}",
                        log_tail(&dir, 40)
                    );
                }
                if Instant::now() > deadline {
                    panic!(
                        "Synapse did not answer on 127.0.0.1:{port} within {START_TIMEOUT:?}:\n{}",
                        log_tail(&dir, 40)
                    );
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    }

    /// Registers a real (non-appservice, non-admin) user with the shared secret (the HMAC flow
    /// of `register_new_matrix_user`: `/_synapse/admin/v1/register`); the answer carries the
    /// access token of a fresh device.
    pub async fn register_user(&self, localpart: &str, password: &str) -> MatrixUser {
        let url = format!("{}/_synapse/admin/v1/register", self.base_url());
        let nonce_resp = self
            .http
            .get(&url)
            .send()
            .await
            .expect("GET register nonce");
        let v: Value = nonce_resp.json().await.expect("nonce JSON");
        let nonce = v["nonce"].as_str().expect("nonce").to_string();
        let message = format!("{nonce}\0{localpart}\0{password}\0notadmin");
        let mac = hex(&hmac_sha1(
            REGISTRATION_SHARED_SECRET.as_bytes(),
            message.as_bytes(),
        ));
        let body = json!({
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": false,
            "mac": mac,
        });
        let resp = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .expect("POST register");
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "register {localpart}: {status} {v}");
        MatrixUser {
            user_id: v["user_id"].as_str().expect("user_id").to_string(),
            token: v["access_token"]
                .as_str()
                .expect("access_token")
                .to_string(),
            base: self.base_url(),
            http: self.http.clone(),
            masquerade: false,
        }
    }

    /// Logs an existing user in (a new device and access token).
    pub async fn login(&self, localpart: &str, password: &str) -> MatrixUser {
        let body = json!({
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": localpart},
            "password": password,
        });
        let url = format!("{}/_matrix/client/v3/login", self.base_url());
        let resp = self
            .http
            .post(&url)
            .json(&body)
            .send()
            .await
            .expect("POST login");
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "login {localpart}: {status} {v}");
        MatrixUser {
            user_id: v["user_id"].as_str().expect("user_id").to_string(),
            token: v["access_token"]
                .as_str()
                .expect("access_token")
                .to_string(),
            base: self.base_url(),
            http: self.http.clone(),
            masquerade: false,
        }
    }

    /// Registers `@localpart:localhost` as an appservice user (`m.login.application_service`
    /// with `as_token`; "already in use" is fine) and returns a client that masquerades as it
    /// (`as_token` plus `?user_id=` on every request).
    pub async fn register_ghost(&self, as_token: &str, localpart: &str) -> MatrixUser {
        let url = format!("{}/_matrix/client/v3/register", self.base_url());
        let resp = self
            .http
            .post(&url)
            .bearer_auth(as_token)
            .json(&json!({"type": "m.login.application_service", "username": localpart}))
            .send()
            .await
            .expect("POST register (appservice)");
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success() || v["errcode"] == "M_USER_IN_USE",
            "appservice registration of {localpart}: {status} {v}"
        );
        self.as_user(as_token, &format!("@{localpart}:localhost"))
    }

    /// A client that acts as `user_id` through the appservice (`as_token` + `?user_id=`),
    /// without registering it.
    pub fn as_user(&self, as_token: &str, user_id: &str) -> MatrixUser {
        MatrixUser {
            user_id: user_id.to_string(),
            token: as_token.to_string(),
            base: self.base_url(),
            http: self.http.clone(),
            masquerade: true,
        }
    }
}

impl Drop for Synapse {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A Matrix client logged in as one user. Every helper panics on a non-2xx answer (with the
/// method, path, status and body); use [`MatrixUser::request`] to look at errors.
#[derive(Clone)]
pub struct MatrixUser {
    pub user_id: String,
    pub token: String,
    base: String,
    http: reqwest::Client,
    /// `token` is an appservice's as_token: add `user_id=` to every request.
    masquerade: bool,
}

/// Percent-encodes one path segment (room ids `!a:b`, event ids `$x`, aliases `#a:b`, ...).
pub fn enc(segment: &str) -> String {
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// A transaction id unique in this process (time + counter).
pub fn txn_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("t{nanos}.{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

impl MatrixUser {
    /// The homeserver's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Any client-server request. `path` starts with `/_matrix/...` and may carry a query;
    /// segments must already be encoded (see [`enc`]). Returns the status and the JSON body
    /// (`Null` when there is none).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (reqwest::StatusCode, Value) {
        let mut url = format!("{}{}", self.base, path);
        if self.masquerade {
            url.push(if path.contains('?') { '&' } else { '?' });
            url.push_str("user_id=");
            url.push_str(&enc(&self.user_id));
        }
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(if text.is_empty() {
            Value::Null
        } else {
            Value::String(text)
        });
        (status, value)
    }

    /// [`MatrixUser::request`] that panics unless the answer is 2xx; returns the body.
    pub async fn api(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
        let (status, value) = self.request(method.clone(), path, body).await;
        assert!(
            status.is_success(),
            "{} {method} {path}: {status} {value}",
            self.user_id
        );
        value
    }

    async fn get(&self, path: &str) -> Value {
        self.api(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.api(reqwest::Method::POST, path, Some(&body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Value {
        self.api(reqwest::Method::PUT, path, Some(&body)).await
    }

    /// `GET /account/whoami` -> the user id the server sees.
    pub async fn whoami(&self) -> String {
        let v = self.get("/_matrix/client/v3/account/whoami").await;
        v["user_id"].as_str().unwrap_or_default().to_string()
    }

    /// Creates a private room (optionally named) inviting `invite`; returns the room id.
    pub async fn create_room(&self, name: Option<&str>, invite: &[&str]) -> String {
        let mut body = json!({"preset": "private_chat", "invite": invite});
        if let Some(name) = name {
            body["name"] = json!(name);
        }
        self.create_room_with(body).await
    }

    /// `POST /createRoom` with any body; returns the room id.
    pub async fn create_room_with(&self, body: Value) -> String {
        let v = self.post("/_matrix/client/v3/createRoom", body).await;
        v["room_id"].as_str().expect("room_id").to_string()
    }

    pub async fn invite(&self, room: &str, user: &str) {
        let path = format!("/_matrix/client/v3/rooms/{}/invite", enc(room));
        self.post(&path, json!({"user_id": user})).await;
    }

    /// Joins a room by id or alias; returns the room id.
    pub async fn join(&self, room: &str) -> String {
        let path = format!("/_matrix/client/v3/join/{}", enc(room));
        let v = self.post(&path, json!({})).await;
        v["room_id"].as_str().unwrap_or(room).to_string()
    }

    pub async fn leave(&self, room: &str) {
        let path = format!("/_matrix/client/v3/rooms/{}/leave", enc(room));
        self.post(&path, json!({})).await;
    }

    pub async fn kick(&self, room: &str, user: &str, reason: Option<&str>) {
        let path = format!("/_matrix/client/v3/rooms/{}/kick", enc(room));
        self.post(&path, member_body(user, reason)).await;
    }

    pub async fn ban(&self, room: &str, user: &str, reason: Option<&str>) {
        let path = format!("/_matrix/client/v3/rooms/{}/ban", enc(room));
        self.post(&path, member_body(user, reason)).await;
    }

    pub async fn unban(&self, room: &str, user: &str) {
        let path = format!("/_matrix/client/v3/rooms/{}/unban", enc(room));
        self.post(&path, member_body(user, None)).await;
    }

    /// `PUT /rooms/{room}/send/{event_type}/{txn}`; a fresh txn id when `txn_id` is `None`.
    /// Returns the event id (the same one again when a txn id is reused).
    pub async fn send_content(
        &self,
        room: &str,
        event_type: &str,
        content: Value,
        txn_id: Option<&str>,
    ) -> String {
        let txn = txn_id.map(str::to_string).unwrap_or_else(self::txn_id);
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/{}/{}",
            enc(room),
            enc(event_type),
            enc(&txn)
        );
        let v = self.put(&path, content).await;
        v["event_id"].as_str().expect("event_id").to_string()
    }

    /// An `m.text` message.
    pub async fn send_text(&self, room: &str, body: &str) -> String {
        let content = json!({"msgtype": "m.text", "body": body});
        self.send_content(room, "m.room.message", content, None)
            .await
    }

    /// An `m.text` message with an HTML `formatted_body`.
    pub async fn send_html(&self, room: &str, body: &str, html: &str) -> String {
        let content = json!({
            "msgtype": "m.text",
            "body": body,
            "format": "org.matrix.custom.html",
            "formatted_body": html,
        });
        self.send_content(room, "m.room.message", content, None)
            .await
    }

    /// An `m.text` reply (`m.relates_to.m.in_reply_to`, no fallback).
    pub async fn reply(&self, room: &str, to_event: &str, body: &str) -> String {
        let content = json!({
            "msgtype": "m.text",
            "body": body,
            "m.relates_to": {"m.in_reply_to": {"event_id": to_event}},
        });
        self.send_content(room, "m.room.message", content, None)
            .await
    }

    /// An edit (`m.replace` with `m.new_content`, body `* new_body`).
    pub async fn edit(&self, room: &str, original: &str, new_body: &str) -> String {
        let content = json!({
            "msgtype": "m.text",
            "body": format!("* {new_body}"),
            "m.new_content": {"msgtype": "m.text", "body": new_body},
            "m.relates_to": {"rel_type": "m.replace", "event_id": original},
        });
        self.send_content(room, "m.room.message", content, None)
            .await
    }

    /// An `m.reaction` annotation with `key` (e.g. "👍") on `event`.
    pub async fn react(&self, room: &str, event: &str, key: &str) -> String {
        let content = json!({
            "m.relates_to": {"rel_type": "m.annotation", "event_id": event, "key": key},
        });
        self.send_content(room, "m.reaction", content, None).await
    }

    /// Redacts `event`; returns the redaction's event id.
    pub async fn redact(&self, room: &str, event: &str) -> String {
        self.redact_with_reason(room, event, None).await
    }

    pub async fn redact_with_reason(
        &self,
        room: &str,
        event: &str,
        reason: Option<&str>,
    ) -> String {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/{}",
            enc(room),
            enc(event),
            enc(&txn_id())
        );
        let body = match reason {
            Some(r) => json!({"reason": r}),
            None => json!({}),
        };
        let v = self.put(&path, body).await;
        v["event_id"].as_str().expect("event_id").to_string()
    }

    /// `PUT /rooms/{room}/state/{type}/{state_key}`; returns the event id.
    pub async fn set_state(
        &self,
        room: &str,
        event_type: &str,
        state_key: &str,
        content: Value,
    ) -> String {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{}/{}",
            enc(room),
            enc(event_type),
            enc(state_key)
        );
        let v = self.put(&path, content).await;
        v["event_id"].as_str().expect("event_id").to_string()
    }

    /// The room's current state event content, or `None` (404).
    pub async fn state(&self, room: &str, event_type: &str, state_key: &str) -> Option<Value> {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/{}/{}",
            enc(room),
            enc(event_type),
            enc(state_key)
        );
        let (status, v) = self.request(reqwest::Method::GET, &path, None).await;
        if status == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert!(status.is_success(), "GET {path}: {status} {v}");
        Some(v)
    }

    pub async fn set_name(&self, room: &str, name: &str) -> String {
        self.set_state(room, "m.room.name", "", json!({"name": name}))
            .await
    }

    pub async fn set_topic(&self, room: &str, topic: &str) -> String {
        self.set_state(room, "m.room.topic", "", json!({"topic": topic}))
            .await
    }

    /// Sets this user's global display name.
    pub async fn set_displayname(&self, name: &str) {
        let path = format!(
            "/_matrix/client/v3/profile/{}/displayname",
            enc(&self.user_id)
        );
        self.put(&path, json!({"displayname": name})).await;
    }

    /// One event by id (`GET /rooms/{room}/event/{event}`).
    pub async fn event(&self, room: &str, event: &str) -> Value {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            enc(room),
            enc(event)
        );
        self.get(&path).await
    }

    /// Every timeline event of the room this user may see, oldest first (state events
    /// included), following `end` tokens of `/messages?dir=f`.
    pub async fn messages(&self, room: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut from: Option<String> = None;
        loop {
            let mut path = format!(
                "/_matrix/client/v3/rooms/{}/messages?dir=f&limit=1000",
                enc(room)
            );
            if let Some(from) = &from {
                path.push_str("&from=");
                path.push_str(&enc(from));
            }
            let v = self.get(&path).await;
            let chunk = v["chunk"].as_array().cloned().unwrap_or_default();
            let empty = chunk.is_empty();
            events.extend(chunk);
            match v["end"].as_str() {
                Some(end) if !empty && Some(end) != from.as_deref() => from = Some(end.to_string()),
                _ => return events,
            }
        }
    }

    /// The `m.room.message` events of the room, oldest first.
    pub async fn text_messages(&self, room: &str) -> Vec<Value> {
        let mut all = self.messages(room).await;
        all.retain(|e| e["type"] == "m.room.message");
        all
    }

    /// `(user_id, membership)` for every member event of the room (join, invite, leave, ban, knock).
    pub async fn members(&self, room: &str) -> Vec<(String, String)> {
        let path = format!("/_matrix/client/v3/rooms/{}/members", enc(room));
        let v = self.get(&path).await;
        v["chunk"]
            .as_array()
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|e| {
                        (
                            e["state_key"].as_str().unwrap_or_default().to_string(),
                            e["content"]["membership"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// This user's membership in the room (`None` when it has no member event there).
    pub async fn membership_of(&self, room: &str, user: &str) -> Option<String> {
        self.members(room)
            .await
            .into_iter()
            .find(|(u, _)| u == user)
            .map(|(_, m)| m)
    }

    /// Polls [`MatrixUser::messages`] until an event matches; panics after `timeout` with the
    /// room's events.
    pub async fn wait_for_event(
        &self,
        room: &str,
        predicate: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let events = self.messages(room).await;
            if let Some(e) = events.iter().find(|e| predicate(e)) {
                return e.clone();
            }
            if Instant::now() > deadline {
                let dump: Vec<String> = events.iter().map(Value::to_string).collect();
                panic!(
                    "{}: no matching event in {room} within {timeout:?}; the room has:\n{}",
                    self.user_id,
                    dump.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for an `m.room.message` whose `body` equals `body`.
    pub async fn wait_for_text(&self, room: &str, body: &str, timeout: Duration) -> Value {
        self.wait_for_event(
            room,
            |e| e["type"] == "m.room.message" && e["content"]["body"] == body,
            timeout,
        )
        .await
    }

    /// Polls until `user`'s membership in the room is `membership`; panics after `timeout`.
    pub async fn wait_for_membership(
        &self,
        room: &str,
        user: &str,
        membership: &str,
        timeout: Duration,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.membership_of(room, user).await;
            if now.as_deref() == Some(membership) {
                return;
            }
            assert!(
                Instant::now() <= deadline,
                "{user} in {room}: membership {now:?}, expected {membership} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn joined_rooms(&self) -> Vec<String> {
        let v = self.get("/_matrix/client/v3/joined_rooms").await;
        v["joined_rooms"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Room ids this user is invited to (a full `/sync?timeout=0`).
    pub async fn invites(&self) -> Vec<String> {
        // Synapse caches an initial sync's answer for a while: a filter of its own each time
        // makes every call a fresh one.
        let filter = json!({"room": {"timeline": {"limit": 1, "not_types": [format!("x.nonce.{}", txn_id())]}}});
        let v = self
            .get(&format!(
                "/_matrix/client/v3/sync?timeout=0&set_presence=offline&filter={}",
                enc(&filter.to_string())
            ))
            .await;
        v["rooms"]["invite"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Joins every room this user is invited to; returns their ids.
    pub async fn accept_invites(&self) -> Vec<String> {
        let rooms = self.invites().await;
        for room in &rooms {
            self.join(room).await;
        }
        rooms
    }

    /// Polls until invited to at least one room, joins all pending invites; returns their ids.
    pub async fn wait_and_accept_invites(&self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let rooms = self.accept_invites().await;
            if !rooms.is_empty() {
                return rooms;
            }
            assert!(
                Instant::now() <= deadline,
                "{}: no invite within {timeout:?}",
                self.user_id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Uploads bytes to the media repository; returns the `mxc://` URI.
    pub async fn upload(&self, bytes: Vec<u8>, content_type: &str, filename: &str) -> String {
        let mut url = format!(
            "{}/_matrix/media/v3/upload?filename={}",
            self.base,
            enc(filename)
        );
        if self.masquerade {
            url.push_str("&user_id=");
            url.push_str(&enc(&self.user_id));
        }
        let resp = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(bytes)
            .send()
            .await
            .expect("upload");
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "upload: {status} {v}");
        v["content_uri"].as_str().expect("content_uri").to_string()
    }

    /// Downloads an `mxc://server/id` (authenticated media endpoint).
    pub async fn download(&self, mxc: &str) -> Vec<u8> {
        let rest = mxc.strip_prefix("mxc://").expect("an mxc:// URI");
        let (server, id) = rest.split_once('/').expect("mxc://server/id");
        let url = format!(
            "{}/_matrix/client/v1/media/download/{}/{}",
            self.base,
            enc(server),
            enc(id)
        );
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("download");
        let status = resp.status();
        assert!(status.is_success(), "download {mxc}: {status}");
        resp.bytes().await.expect("download body").to_vec()
    }
}

/// HMAC-SHA1 (RFC 2104), all that the shared-secret registration needs; SHA-1 is written out
/// here because the crate has no SHA-1 dependency.
fn hmac_sha1(key: &[u8], message: &[u8]) -> [u8; 20] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..20].copy_from_slice(&sha1(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(message);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha1(&inner));
    sha1(&outer)
}

fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn member_body(user: &str, reason: Option<&str>) -> Value {
    let mut body = json!({"user_id": user});
    if let Some(reason) = reason {
        body["reason"] = json!(reason);
    }
    body
}

/// Runs blocking work; inside a multi-thread tokio runtime, without starving its other tasks.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A plain HTTP/1.0 `GET /_matrix/client/versions`: true on a 200.
fn versions_ok(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /_matrix/client/versions HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

fn log_tail(dir: &Path, lines: usize) -> String {
    let mut out = String::new();
    for name in ["homeserver.log", "synapse.stderr", "synapse.stdout"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = &all[all.len().saturating_sub(lines)..];
        if !tail.is_empty() {
            out.push_str(&format!("--- {name} (last {} lines)\n", tail.len()));
            out.push_str(&tail.join("\n"));
            out.push('\n');
        }
    }
    out
}

/// Writes `homeserver.yaml`, `log.config`, `appservice.yaml` and a signing key into `dir`.
fn write_config(dir: &Path, port: u16, registration: &str) {
    let d = dir.display();
    let has_as = !registration.trim().is_empty();
    if has_as {
        std::fs::write(dir.join("appservice.yaml"), registration).expect("appservice.yaml");
    }
    let appservices = if has_as {
        format!("app_service_config_files:\n  - {d}/appservice.yaml\n")
    } else {
        String::new()
    };
    let log_config = format!(
        r#"version: 1
formatters:
  precise:
    format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s'
handlers:
  file:
    class: logging.FileHandler
    formatter: precise
    filename: {d}/homeserver.log
    filters: [context]
filters:
  context:
    (): synapse.logging.context.LoggingContextFilter
    request: ""
loggers:
  synapse.storage.SQL:
    level: WARNING
root:
  level: INFO
  handlers: [file]
disable_existing_loggers: false
"#
    );
    std::fs::write(dir.join("log.config"), log_config).expect("log.config");
    let rc = "{per_second: 10000, burst_count: 10000}";
    let homeserver = format!(
        r#"# Written by tests/synapse/mod.rs: loopback only, SQLite, no federation, no rate limits.
server_name: "localhost"
public_baseurl: "http://127.0.0.1:{port}/"
listeners:
  - port: {port}
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: {d}/homeserver.db
log_config: {d}/log.config
media_store_path: {d}/media_store
signing_key_path: {d}/localhost.signing.key
report_stats: false
registration_shared_secret: "{REGISTRATION_SHARED_SECRET}"
macaroon_secret_key: "mimi_test_macaroon_secret"
form_secret: "mimi_test_form_secret"
enable_registration: false
bcrypt_rounds: 4
trusted_key_servers: []
federation_domain_whitelist: []
suppress_key_server_warning: true
enable_authenticated_media: false
url_preview_enabled: false
presence:
  enabled: false
{appservices}rc_message: {rc}
rc_registration: {rc}
rc_login:
  address: {rc}
  account: {rc}
  failed_attempts: {rc}
rc_joins:
  local: {rc}
  remote: {rc}
rc_joins_per_room: {rc}
rc_invites:
  per_room: {rc}
  per_user: {rc}
  per_issuer: {rc}
rc_room_creation: {rc}
rc_media_create: {rc}
rc_presence:
  per_user: {rc}
rc_profile: {rc}
rc_3pid_validation: {rc}
rc_admin_redaction: {rc}
rc_delayed_event_mgmt: {rc}
rc_key_requests: {rc}
rc_reports: {rc}
rc_user_directory: {rc}
"#
    );
    std::fs::write(dir.join("homeserver.yaml"), homeserver).expect("homeserver.yaml");
    // The signing key (what `--generate-keys` would write, without a second Python start):
    // "ed25519 <version> <unpadded base64 of a 32-byte seed>". Federation is off, so any key does.
    let key_path = dir.join("localhost.signing.key");
    if !key_path.exists() {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("random seed");
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD.encode(seed);
        std::fs::write(&key_path, format!("ed25519 a_test {b64}\n")).expect("signing key");
    }
}
