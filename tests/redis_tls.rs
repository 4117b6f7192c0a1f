//! `score --state rediss://user:password@.../#insecure` through the real
//! binary against a real `redis-server` with TLS and an ACL user: the same
//! outputs as the embedded store and the contract's example, the data in
//! Redis, and clear failures (that never show the password) for a wrong
//! password, keys outside the user's prefix and an untrusted certificate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::redis::{RedisServer, Reply};

const PASSWORD: &str = "s3cret";

/// The scorer's ACL user: its own keys (`ls:`, the default prefix) and only
/// the commands the store sends (`GET`, `HMGET`, `EVALSHA`, `SCRIPT LOAD`)
/// and its scripts run. A command the store starts to need fails here with
/// NOPERM before it fails a deployment whose ACL followed this list.
const SCORER_USER: &[&str] = &[
    "--user",
    "scorer",
    "on",
    ">s3cret",
    "resetkeys",
    "~ls:*",
    "resetchannels",
    "-@all",
    "+get",
    "+hmget",
    "+evalsha",
    "+script|load",
    "+getrange",
    "+set",
    "+hget",
    "+hset",
    "+hgetall",
    "+hdel",
    "+hincrby",
    "+pexpire",
];

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/basic")
}

/// A run of `score` on the basic example: its exit, rewards, dead letters and stderr.
struct Run {
    output: Output,
    dead: Vec<Value>,
}

impl Run {
    fn rewards(&self) -> Vec<Value> {
        json_lines(&String::from_utf8_lossy(&self.output.stdout))
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

fn score(state: &str, extra: &[&str]) -> Run {
    let dir = example();
    let tmp = tempfile::tempdir().unwrap();
    let dlq = tmp.path().join("dlq.jsonl");
    let output = Command::new(env!("CARGO_BIN_EXE_loyalty-scorer"))
        .arg("score")
        .arg("--rules")
        .arg(dir.join("rules.toml"))
        .arg("--input")
        .arg(dir.join("events.jsonl"))
        .args(["--state", state, "--dlq"])
        .arg(&dlq)
        .args(extra)
        .output()
        .expect("run loyalty-scorer");
    let dead = json_lines(&std::fs::read_to_string(&dlq).unwrap_or_default());
    Run { output, dead }
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect("JSON line")).collect()
}

fn read_json_lines(path: &Path) -> Vec<Value> {
    json_lines(&std::fs::read_to_string(path).unwrap())
}

/// `rules_version` is left out of the contract's examples.
fn without_version(mut values: Vec<Value>) -> Vec<Value> {
    for v in &mut values {
        v.as_object_mut().unwrap().remove("rules_version");
    }
    values
}

/// Every key of the server, read through its plain port as the default user.
fn keys(server: &RedisServer) -> BTreeSet<String> {
    match server.call(&["KEYS", "*"]) {
        Reply::Array(Some(items)) => items.iter().map(|k| k.expect_text("key")).collect(),
        other => panic!("KEYS: {other:?}"),
    }
}

#[test]
fn an_acl_user_over_tls_scores_like_memory_and_its_data_lands_in_redis() {
    let server = RedisServer::start_tls(SCORER_USER);
    let tls = score(&server.tls_url("scorer", PASSWORD), &[]);
    assert!(tls.output.status.success(), "score over TLS failed: {}", tls.stderr());
    let memory = score("memory", &[]);
    assert!(memory.output.status.success(), "{}", memory.stderr());
    assert_eq!(tls.rewards(), memory.rewards(), "the same lines as the embedded store");
    assert_eq!(tls.dead, memory.dead);
    assert_eq!(
        without_version(tls.rewards()),
        without_version(read_json_lines(&example().join("expected-rewards.jsonl")))
    );
    assert_eq!(tls.dead, read_json_lines(&example().join("expected-dlq.jsonl")));

    // The harness reads the plain port as the default user, not the scorer.
    assert_eq!(server.call(&["ACL", "WHOAMI"]).expect_text("ACL WHOAMI"), "default");
    let rewards = tls.rewards();
    let members: BTreeSet<&str> = rewards.iter().map(|r| r["member_id"].as_str().unwrap()).collect();
    let wanted: BTreeSet<String> =
        members.iter().flat_map(|m| [format!("ls:{{acme:{m}}}"), format!("ls:{{acme:{m}}}:r")]).collect();
    assert_eq!(keys(&server), wanted, "a state and a records hash per member, nothing else");
    for member in &members {
        // One batch, one write per member: version 1.
        match server.call(&["GETRANGE", &format!("ls:{{acme:{member}}}"), "0", "7"]) {
            Reply::Bulk(Some(version)) => assert_eq!(version, 1u64.to_be_bytes(), "{member}"),
            other => panic!("{member}: {other:?}"),
        }
    }
    for reward in &rewards {
        let (member, event) = (reward["member_id"].as_str().unwrap(), reward["event_id"].as_str().unwrap());
        let records = format!("ls:{{acme:{member}}}:r");
        assert_eq!(server.call(&["HEXISTS", &records, event]), Reply::Int(1), "{event} recorded under {records}");
    }
}

#[test]
fn a_wrong_password_fails_clearly_without_showing_either_password() {
    let server = RedisServer::start_tls(SCORER_USER);
    let wrong = "n0t-the-pw-7731";
    let run = score(&server.tls_url("scorer", wrong), &[]);
    let stderr = run.stderr();
    assert!(!run.output.status.success(), "{stderr}");
    assert!(run.output.stdout.is_empty(), "nothing scored");
    assert!(stderr.to_lowercase().contains("authentication failed"), "{stderr}");
    assert!(stderr.contains(&format!("rediss://scorer:***@127.0.0.1:{}/#insecure", server.tls_port())), "{stderr}");
    assert!(!stderr.contains(wrong) && !stderr.contains(PASSWORD), "{stderr}");
    assert!(keys(&server).is_empty());
}

#[test]
fn the_acl_user_cannot_touch_keys_outside_its_prefix() {
    let server = RedisServer::start_tls(SCORER_USER);
    let run = score(&server.tls_url("scorer", PASSWORD), &["--key-prefix", "other"]);
    let stderr = run.stderr();
    assert!(!run.output.status.success(), "{stderr}");
    assert!(run.output.stdout.is_empty(), "nothing emitted before its state is written");
    assert!(stderr.contains("NOPERM") && stderr.contains("other:{acme:"), "names the refusal and the key: {stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    assert!(keys(&server).is_empty());
}

#[test]
fn without_insecure_a_certificate_from_an_unknown_ca_is_refused() {
    let server = RedisServer::start_tls(SCORER_USER);
    let url = server.tls_url("scorer", PASSWORD);
    let run = score(url.trim_end_matches("#insecure"), &[]);
    let stderr = run.stderr();
    assert!(!run.output.status.success(), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(!stderr.contains(PASSWORD), "{stderr}");
    assert!(keys(&server).is_empty());
}

#[test]
fn a_private_ca_file_verifies_the_server_without_insecure() {
    let server = RedisServer::start_tls(SCORER_USER);
    let url = server.tls_url("scorer", PASSWORD);
    let files = server.tls_files();
    let ca = files.ca_cert.display().to_string();
    let run = score(url.trim_end_matches("#insecure"), &["--redis-tls-ca", &ca]);
    assert!(run.output.status.success(), "{}", run.stderr());
    assert_eq!(
        without_version(run.rewards()),
        without_version(read_json_lines(&example().join("expected-rewards.jsonl")))
    );
    assert!(!keys(&server).is_empty());
}

#[test]
fn a_server_that_asks_for_a_client_certificate_gets_the_configured_one() {
    let mut args = SCORER_USER.to_vec();
    args.extend(["--tls-auth-clients", "yes"]);
    let server = RedisServer::start_tls(&args);
    let url = server.tls_url("scorer", PASSWORD);
    let url = url.trim_end_matches("#insecure");
    let files = server.tls_files();
    let (ca, cert, key) = (
        files.ca_cert.display().to_string(),
        files.client_cert.display().to_string(),
        files.client_key.display().to_string(),
    );

    let refused = score(url, &["--redis-tls-ca", &ca]);
    assert!(!refused.output.status.success(), "a server that requires a client certificate let one without in");
    assert!(!refused.stderr().contains(PASSWORD), "{}", refused.stderr());
    assert!(keys(&server).is_empty());

    let run = score(url, &["--redis-tls-ca", &ca, "--redis-tls-cert", &cert, "--redis-tls-key", &key]);
    assert!(run.output.status.success(), "{}", run.stderr());
    assert_eq!(
        without_version(run.rewards()),
        without_version(read_json_lines(&example().join("expected-rewards.jsonl")))
    );
}

#[test]
fn tls_files_for_a_url_without_tls_are_refused() {
    let server = RedisServer::start_tls(SCORER_USER);
    let ca = server.tls_files().ca_cert.display().to_string();
    let run = score(&server.url(), &["--redis-tls-ca", &ca]);
    assert!(!run.output.status.success());
    assert!(run.stderr().contains("rediss://"), "{}", run.stderr());
}
