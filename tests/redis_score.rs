//! `score --state redis://` through the real binary against a real
//! `redis-server`: the contract's examples, the same outputs as the embedded
//! store, a stream split over two runs, a replay, and two scorers on the
//! same members at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::redis::RedisServer;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn score(rules: &Path, input: &Path, state: &str, extra: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_loyalty-scorer"))
        .arg("score")
        .arg("--rules")
        .arg(rules)
        .arg("--input")
        .arg(input)
        .args(["--state", state, "--dlq", "/dev/null"])
        .args(extra)
        .output()
        .expect("run loyalty-scorer");
    assert!(out.status.success(), "score failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON")).collect()
}

fn without_version(mut values: Vec<Value>) -> Vec<Value> {
    for v in &mut values {
        v.as_object_mut().unwrap().remove("rules_version");
    }
    values
}

#[test]
fn examples_with_redis_state() {
    let server = RedisServer::start();
    for name in ["basic", "coalition", "lifecycle"] {
        let dir = root().join("tests/golden").join(name);
        let out = score(&dir.join("rules.toml"), &dir.join("events.jsonl"), &server.url(), &["--key-prefix", name]);
        let want: Vec<Value> = std::fs::read_to_string(dir.join("expected-rewards.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(without_version(lines(&out)), without_version(want), "{name}");
    }
}

#[test]
fn redis_and_memory_give_the_same_outputs() {
    let server = RedisServer::start();
    let dir = root().join("tests/regression/part1");
    let (rules, events) = (dir.join("acme.toml"), dir.join("acme-events.jsonl"));
    let memory = score(&rules, &events, "memory", &[]);
    for (n, batch) in ["1", "64", "512"].into_iter().enumerate() {
        let redis = score(&rules, &events, &server.url(), &["--batch-events", batch, "--key-prefix", &format!("b{n}")]);
        assert_eq!(lines(&redis), lines(&memory), "batches of {batch}");
    }
}

#[test]
fn a_stream_split_over_two_runs_continues_where_the_first_stopped() {
    let server = RedisServer::start();
    let dir = root().join("tests/golden/lifecycle");
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let all: Vec<&str> = text.lines().collect();
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (tmp.path().join("first.jsonl"), tmp.path().join("second.jsonl"));
    std::fs::write(&first, all[..7].join("\n")).unwrap();
    std::fs::write(&second, all[7..].join("\n")).unwrap();
    let rules = dir.join("rules.toml");
    let whole = lines(&score(&rules, &dir.join("events.jsonl"), "memory", &[]));
    let mut split = lines(&score(&rules, &first, &server.url(), &[]));
    split.extend(lines(&score(&rules, &second, &server.url(), &[])));
    assert_eq!(split, whole);
}

#[test]
fn scoring_the_same_file_twice_re_emits_and_changes_nothing() {
    let server = RedisServer::start();
    let dir = root().join("tests/golden/basic");
    let (rules, events) = (dir.join("rules.toml"), dir.join("events.jsonl"));
    let first = lines(&score(&rules, &events, &server.url(), &[]));
    let dump = |server: &RedisServer| -> Vec<(String, String)> {
        let keys = server.cli(&["--scan", "--pattern", "ls:*"]);
        let mut keys: Vec<String> = keys.lines().map(str::to_owned).collect();
        keys.sort();
        // Fields sorted: a hash's field order may change without a write.
        let fields = |k: &str| -> Vec<(String, String)> {
            let text = server.cli(&["--no-raw", "HGETALL", k]);
            let items: Vec<&str> =
                text.lines().map(|l| l.trim_start().split_once(") ").map_or(l, |(_, v)| v)).collect();
            let mut pairs: Vec<(String, String)> =
                items.chunks(2).map(|p| (p[0].to_owned(), p.get(1).copied().unwrap_or_default().to_owned())).collect();
            pairs.sort();
            pairs
        };
        keys.into_iter().map(|k| (k.clone(), format!("{:?}", fields(&k)))).collect()
    };
    let before = dump(&server);
    assert!(!before.is_empty());
    let second = lines(&score(&rules, &events, &server.url(), &[]));
    assert_eq!(second, first, "every line re-emitted unchanged");
    assert_eq!(dump(&server), before, "no key changed");
}

#[test]
fn two_scorers_on_the_same_members_at_once_lose_nothing_and_double_nothing() {
    let server = RedisServer::start();
    let rules = root().join("config/rules/acme.toml");
    let tmp = tempfile::tempdir().unwrap();
    let events = std::fs::read_to_string(root().join("tests/regression/part1/acme-events.jsonl")).unwrap();
    // Alternate events go to two scorers: the same members, disjoint events.
    let halves = |parity: usize| -> Vec<&str> {
        events.lines().enumerate().filter(|(n, _)| n % 2 == parity).map(|(_, l)| l).collect()
    };
    let (even, odd) = (halves(0), halves(1));
    let write = |name: &str, part: &[&str]| {
        let path = tmp.path().join(name);
        std::fs::write(&path, part.join("\n")).unwrap();
        path
    };
    let (a, b) = (write("a.jsonl", &even), write("b.jsonl", &odd));
    let spawn = |input: &Path| {
        Command::new(env!("CARGO_BIN_EXE_loyalty-scorer"))
            .args(["score", "--rules"])
            .arg(&rules)
            .arg("--input")
            .arg(input)
            .args(["--state", &server.url(), "--dlq", "/dev/null", "--batch-events", "16"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (pa, pb) = (spawn(&a), spawn(&b));
    let (oa, ob) = (pa.wait_with_output().unwrap(), pb.wait_with_output().unwrap());
    assert!(oa.status.success() && ob.status.success());

    // One outcome per event: a reward id emitted by both scorers is the same reward.
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for reward in lines(&oa).into_iter().chain(lines(&ob)) {
        let id = reward["reward_id"].as_str().unwrap().to_owned();
        if let Some(seen) = by_id.get(&id) {
            assert_eq!(seen, &reward, "{id} emitted twice with different content");
        }
        by_id.insert(id, reward);
    }
    let mut sums: HashMap<String, i64> = HashMap::new();
    for reward in by_id.values() {
        *sums.entry(reward["member_id"].as_str().unwrap().to_owned()).or_default() +=
            reward["points"].as_i64().unwrap();
    }
    // Each member's balance now equals the sum of its outcomes' points.
    let probes: Vec<String> = sums
        .keys()
        .map(|m| {
            format!(
                r#"{{"event_id":"probe-{m}","kind":"profile","member_id":"{m}","occurred_at":"2027-03-06T00:00:00Z"}}"#
            )
        })
        .collect();
    let probe_file = tmp.path().join("probe.jsonl");
    std::fs::write(&probe_file, probes.join("\n")).unwrap();
    for probe in lines(&score(&rules, &probe_file, &server.url(), &[])) {
        let member = probe["member_id"].as_str().unwrap();
        let expired = -probe["points"].as_i64().unwrap();
        assert_eq!(probe["balance"].as_i64().unwrap() + expired, sums[member], "member {member}");
    }
}

#[test]
fn a_redis_restart_mid_stream_loses_nothing_and_doubles_nothing() {
    use std::io::Write as _;
    let mut server = RedisServer::start_with_args(&["--appendonly", "yes", "--appendfsync", "always"]);
    let rules = root().join("tests/regression/part1/acme.toml");
    let events_path = root().join("tests/regression/part1/acme-events.jsonl");
    let events = std::fs::read_to_string(&events_path).unwrap();
    let all: Vec<&str> = events.lines().collect();
    let tmp = tempfile::tempdir().unwrap();
    let output = tmp.path().join("rewards.jsonl");
    // Rewards go to a file: a piped stdout would fill up while this test
    // is still writing the scorer's input.
    let mut child = Command::new(env!("CARGO_BIN_EXE_loyalty-scorer"))
        .args(["score", "--rules"])
        .arg(&rules)
        .args(["--state", &server.url(), "--dlq", "/dev/null", "--batch-events", "8", "--output"])
        .arg(&output)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for line in &all[..600] {
        writeln!(stdin, "{line}").unwrap();
    }
    stdin.flush().unwrap();
    // Wait until the scorer has written state, then restart Redis under it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while server.cli(&["DBSIZE"]).trim() == "0" {
        assert!(std::time::Instant::now() < deadline, "the scorer wrote nothing");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    server.restart();
    for line in &all[600..] {
        writeln!(stdin, "{line}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: Vec<Value> =
        std::fs::read_to_string(&output).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let memory = score(&rules, &events_path, "memory", &[]);
    assert_eq!(got, lines(&memory));
}

#[test]
fn examples_on_a_cluster_across_a_slot_migration() {
    let cluster = support::redis::RedisCluster::start(3);
    let target = cluster.seed_urls().join(",");
    let dir = root().join("tests/golden/basic");
    let rules = dir.join("rules.toml");
    let text = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let all: Vec<&str> = text.lines().collect();
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (tmp.path().join("first.jsonl"), tmp.path().join("second.jsonl"));
    std::fs::write(&first, all[..6].join("\n")).unwrap();
    std::fs::write(&second, all[6..].join("\n")).unwrap();
    let mut got = lines(&score(&rules, &first, &target, &[]));
    // M1's state moves to another node between the runs: the second run
    // follows the MOVED redirection and finds it.
    let slot = support::redis::key_slot("ls:{acme:M1}");
    let owner = cluster.slot_owner(slot);
    cluster.migrate_slot(slot, (owner + 1) % 3);
    got.extend(lines(&score(&rules, &second, &target, &[])));
    let whole = lines(&score(&rules, &dir.join("events.jsonl"), "memory", &[]));
    assert_eq!(got, whole);
}

#[test]
fn two_scorers_share_a_promotion_budget_without_overspending_it() {
    let server = RedisServer::start();
    let rules = root().join("tests/regression/part1/citypoints.toml");
    let tmp = tempfile::tempdir().unwrap();
    // Weekend breakfasts at the grocer: each earns the budgeted promotion
    // (budget 100 points in all), far more than the budget allows.
    let events: String = (0..200)
        .map(|n| {
            format!(
                r#"{{"event_id":"W{n}","member_id":"K{}","merchant_id":"grocer","channel":"store","occurred_at":"2026-01-{:02}T07:{:02}:00+01:00","currency":"PLN","total":"20.00","items":[{{"sku":"EGG","category":"breakfast","amount":"20.00"}}]}}"#,
                n % 20,
                [10, 11, 17, 18][n % 4],
                n % 60
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let half = |parity: usize| -> PathBuf {
        let path = tmp.path().join(format!("{parity}.jsonl"));
        let part: Vec<&str> = events.lines().enumerate().filter(|(n, _)| n % 2 == parity).map(|(_, l)| l).collect();
        std::fs::write(&path, part.join("\n")).unwrap();
        path
    };
    let spawn = |input: PathBuf| {
        Command::new(env!("CARGO_BIN_EXE_loyalty-scorer"))
            .args(["score", "--rules"])
            .arg(&rules)
            .arg("--input")
            .arg(input)
            .args(["--state", &server.url(), "--dlq", "/dev/null", "--batch-events", "8"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(half(0)), spawn(half(1)));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let mut by_id: HashMap<String, Value> = HashMap::new();
    for reward in lines(&a).into_iter().chain(lines(&b)) {
        by_id.insert(reward["reward_id"].as_str().unwrap().to_owned(), reward);
    }
    let awarded: i64 = by_id
        .values()
        .flat_map(|r| r["breakdown"].as_array().unwrap().clone())
        .filter(|l| l["rule"] == "weekend-breakfast")
        .map(|l| l["points"].as_i64().unwrap())
        .sum();
    let spent: i64 = server.cli(&["HGET", "ls:{citypoints:budget:weekend-breakfast}", "spent"]).trim().parse().unwrap();
    // Demand is far above the budget: it is spent exactly, never beyond,
    // and every point awarded was reserved.
    assert_eq!((awarded, spent), (100, 100));
}
