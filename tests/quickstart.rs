//! The README's quickstart, run as written (with the binary under test instead of a release
//! build): two bridges, two receivers, a room, a message each way.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PORTS: [u16; 6] = [7080, 7081, 8080, 8081, 9080, 9081];

/// The shell block under the quickstart heading.
fn quickstart_script() -> String {
    let readme = include_str!("../README.md");
    let section = readme
        .split("### Quickstart: two providers")
        .nth(1)
        .expect("the README has a quickstart");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("the quickstart has a sh block");
    block.to_string()
}

#[test]
fn the_readme_quickstart_works_as_written() {
    for port in PORTS {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "the quickstart needs 127.0.0.1:{port}, which is in use"
        );
    }
    let script = quickstart_script();
    let build = "cargo build --release\nB=$PWD/target/release/mimi-bridge\n";
    assert!(
        script.starts_with(build),
        "the quickstart starts with the build:\n{script}"
    );
    let script = format!("B={}\n{}", common::BIN, &script[build.len()..]);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Whatever the script left running goes with its process group.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let of_type = |t: &str| {
        lines
            .iter()
            .filter(|l| l["type"] == t)
            .cloned()
            .collect::<Vec<_>>()
    };
    let context = || {
        format!(
            "stdout:\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    };
    // three accepted events from alice, one from bob
    assert_eq!(
        lines.iter().filter(|l| l["status"] == 202).count(),
        4,
        "{}",
        context()
    );
    let created = of_type("room_created");
    assert_eq!(created.len(), 1, "{}", context());
    assert_eq!(created[0]["name"], "General");
    let messages = of_type("message");
    assert_eq!(messages.len(), 2, "{}", context());
    assert_eq!(messages[0]["content"]["body"], "Hello bob");
    assert_eq!(messages[1]["content"]["body"], "Hi **alice**");
    assert_eq!(messages[1]["reply_to"]["legacy_id"], "m1");
    assert_eq!(
        messages[1]["reply_to"]["mimi_id"],
        messages[0]["mimi_message_id"],
        "{}",
        context()
    );
}
