//! The commands through the real binary: check-rules verdicts, simulate's
//! report, score's streams (every reward and dead letter checked against
//! `docs/schema/`), and every file under `config/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use support::schema::{assert_dead_letter_valid, assert_reward_valid};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loyalty-scorer"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run loyalty-scorer")
}

/// `score`'s reward events, one JSON value a line, each checked against the schema.
fn reward_lines(stdout: &[u8]) -> Vec<Value> {
    let rewards: Vec<Value> = text(stdout).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    rewards.iter().for_each(assert_reward_valid);
    rewards
}

#[test]
fn check_rules_accepts_every_config_file() {
    let dir = root().join("config/rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("config/rules")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let out = run(bin().arg("check-rules").args(&files));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), files.len(), "{stdout}");
    assert!(stdout.lines().all(|l| l.contains(": ok: ") && l.contains("rules_version")), "{stdout}");
}

#[test]
fn check_rules_reports_each_problem_with_its_position() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("broken.toml");
    std::fs::write(
        &file,
        "[program]\nid = \"x\"\ncurrency = \"EUR\"\n\n[[tiers]]\nname = \"a\"\nthreshold = \"0\"\n\n[[tiers]]\nname = \"b\"\nthreshold = \"0\"\n\n[[rules]]\nid = \"r\"\nkind = \"stamp_card\"\nstamps_required = 0\n",
    )
    .expect("write");
    let out = run(bin().arg("check-rules").arg(&file));
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let name = file.display().to_string();
    assert!(stderr.contains(&format!("{name}:11:13: tiers.b.threshold")), "{stderr}");
    assert!(stderr.contains(&format!("{name}:16:19: rules.r.stamps_required")), "{stderr}");
    assert!(stderr.contains("2 problems"), "{stderr}");
}

#[test]
fn score_refuses_to_start_on_invalid_rules() {
    let out = run(bin()
        .args(["score", "--rules"])
        .arg(root().join("tests/rules/many-problems.toml"))
        .args(["--input", "/dev/null"]));
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("invalid rules") && stderr.contains("many-problems.toml:4:12: program.currency"),
        "{stderr}"
    );
}

#[test]
fn score_reads_stdin_and_skips_blank_lines() {
    use std::io::Write;
    let mut child = bin()
        .args(["score", "--rules"])
        .arg(root().join("config/rules/acme.toml"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let input = "\n  \t\r\n{\"event_id\":\"A\",\"member_id\":\"M\",\"occurred_at\":\"2026-11-02T08:15:00Z\",\"currency\":\"EUR\",\"total\":\"10\"}\r\n\nbroken\n";
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let rewards = reward_lines(&out.stdout);
    assert_eq!(rewards.len(), 1);
    assert_eq!(rewards[0]["points"], 510);
    let dead: Vec<Value> = text(&out.stderr).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    dead.iter().for_each(assert_dead_letter_valid);
    assert_eq!(dead.len(), 1, "dead letters go to stderr without --dlq");
    assert_eq!(dead[0]["line"], 5);
    assert_eq!(dead[0]["reason"], "invalid_json");
}

#[test]
fn simulate_reports_the_basic_example() {
    let dir = root().join("tests/golden/basic");
    let out = run(bin()
        .args(["simulate", "--json", "--rules"])
        .arg(dir.join("rules.toml"))
        .arg("--input")
        .arg(dir.join("events.jsonl")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    let p = &report["programs"][0];
    assert_eq!(p["program"], "acme");
    let e = &p["events"];
    assert_eq!(
        (&e["purchases"], &e["refunds"], &e["refunds_unknown_original"], &e["redeems"], &e["redeems_rejected"]),
        (&Value::from(8), &Value::from(3), &Value::from(1), &Value::from(2), &Value::from(1))
    );
    assert_eq!((&e["repeats"], &e["anonymous"]), (&Value::from(1), &Value::from(1)));
    assert_eq!(p["members"], 3);
    assert_eq!(p["points_issued"], 24_520);
    assert_eq!(p["points_refunded"], 3_370);
    assert_eq!(p["points_redeemed"], 1_000);
    assert_eq!(p["points_expired"], 1_316);
    assert_eq!(p["points_outstanding"], 20_502);
    assert_eq!(p["points_owed"], 1_668);
    assert_eq!(p["liability"], "205.02");
    assert_eq!(p["gifts"]["tote-bag"], 3);
    assert_eq!(p["gifts"]["free-coffee"], 2);
    assert_eq!(p["gifts"]["voucher-50"], 2);
    assert_eq!(p["tiers"]["silver"], 1);
    assert_eq!(p["tiers"]["platinum"], 1);
    assert_eq!(p["tiers"]["basic"], 1);
    assert_eq!(p["points_by_rule"]["welcome"], 1_000);
    let dead = &report["dead_letters"];
    assert_eq!((&dead["invalid_amount"], &dead["invalid_field"]), (&Value::from(2), &Value::from(2)));
}

#[test]
fn simulate_reports_budgets_in_text() {
    let dir = root().join("tests/golden/coalition");
    let out = run(bin()
        .args(["simulate", "--rules"])
        .arg(dir.join("rules.toml"))
        .arg("--input")
        .arg(dir.join("events.jsonl")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Program citypoints (PLN)"), "{stdout}");
    assert!(stdout.lines().any(|l| l.contains("weekend-breakfast") && l.contains("100 of 100 (100.00%)")), "{stdout}");
}

#[test]
fn several_programs_are_served_by_their_ids() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("events.jsonl");
    std::fs::write(
        &input,
        "{\"event_id\":\"A\",\"member_id\":\"M\",\"occurred_at\":\"2026-11-02T08:15:00Z\",\"currency\":\"EUR\",\"total\":\"10\"}\n\
         {\"event_id\":\"A\",\"program\":\"citypoints\",\"member_id\":\"M\",\"occurred_at\":\"2026-11-02T08:15:00Z\",\"currency\":\"PLN\",\"total\":\"10\"}\n",
    )
    .expect("write");
    let out = run(bin()
        .args(["score", "--rules"])
        .arg(root().join("config/rules/acme.toml"))
        .arg("--rules")
        .arg(root().join("config/rules/citypoints.toml"))
        .args(["--input", "-"])
        .stdin(std::fs::File::open(&input).expect("open")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rewards = reward_lines(&out.stdout);
    assert_eq!(rewards.len(), 2, "the same event id in two programs is two events");
    assert_eq!((&rewards[0]["program"], &rewards[0]["points"]), (&Value::from("acme"), &Value::from(510)));
    assert_eq!((&rewards[1]["program"], &rewards[1]["points"]), (&Value::from("citypoints"), &Value::from(5)));
}

#[test]
fn simulate_reports_the_member_lifecycle() {
    let dir = root().join("tests/golden/lifecycle");
    let out = run(bin()
        .args(["simulate", "--json", "--rules"])
        .arg(dir.join("rules.toml"))
        .arg("--input")
        .arg(dir.join("events.jsonl")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    let p = &report["programs"][0];
    assert_eq!((&p["events"]["profiles"], &p["events"]["adjustments"]), (&Value::from(2), &Value::from(2)));
    assert_eq!(p["points_pending"], 130, "F1 20 + F2 110");
    assert_eq!(p["points_outstanding"], 0);
    assert_eq!(p["liability"], "0.650", "130 pending points at 0.005");
    assert_eq!(p["points_expired"], 80);
    assert_eq!(p["points_expired_end_of_period"], 80);
    assert_eq!((&p["points_expired_rolling"], &p["points_expired_inactivity"]), (&Value::from(0), &Value::from(0)));
    assert_eq!(p["birthday_bonuses"], 2);
    assert_eq!(p["points_by_rule"]["birthday-treat"], 200);
    assert_eq!((&p["points_adjusted_credit"], &p["points_adjusted_debit"]), (&Value::from(25), &Value::from(650)));
}

#[test]
fn simulate_compares_two_rule_sets_over_one_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    let current = std::fs::read_to_string(root().join("config/rules/acme.toml")).expect("rules");
    // The candidate pays silver 1.5x instead of 1.25x and drops the welcome bonus.
    let candidate = current
        .replace("multiplier = \"1.25\"", "multiplier = \"1.5\"")
        .replace("bonus_points = 500", "bonus_points = 0");
    assert_ne!(current, candidate);
    let candidate_path = dir.path().join("candidate.toml");
    std::fs::write(&candidate_path, candidate).expect("write");
    let out = run(bin()
        .args(["simulate", "--json", "--rules"])
        .arg(root().join("config/rules/acme.toml"))
        .arg("--compare")
        .arg(&candidate_path)
        .arg("--input")
        .arg(root().join("tests/golden/basic/events.jsonl")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    let c = &report["programs"][0];
    // Welcome: M1 and M2 lose 500 each (M3's first purchase is capped anyway).
    assert_eq!(c["by_rule"]["welcome"], serde_json::json!({"current": 1000, "candidate": 0, "difference": -1000}));
    // Silver: only E004 (base 80) and E011 (base 10) earn at silver: 20 + 2 -> 40 + 5.
    assert_eq!(c["by_rule"]["tier:silver"]["difference"], 23);
    assert_eq!(c["points_issued"]["difference"], -977);
    assert_eq!(c["points_issued"]["current"], report["current"]["programs"][0]["points_issued"]);
    assert_eq!(c["members_changing_tier"], 0);
    let top = c["top_members"].as_array().expect("top members");
    assert_eq!(
        (&top[0]["member_id"], &top[0]["points_issued"]["difference"]),
        (&Value::from("M2"), &Value::from(-500))
    );
    assert_eq!(
        (&top[1]["member_id"], &top[1]["points_issued"]["difference"]),
        (&Value::from("M1"), &Value::from(-477))
    );
    assert_eq!(top.len(), 2, "M3 earns the same under both");
}

#[test]
fn simulate_refuses_a_candidate_for_another_program() {
    let out = run(bin()
        .args(["simulate", "--rules"])
        .arg(root().join("config/rules/acme.toml"))
        .arg("--compare")
        .arg(root().join("config/rules/citypoints.toml"))
        .arg("--input")
        .arg(root().join("tests/golden/basic/events.jsonl")));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("\"citypoints\" matches no --rules program (acme)"), "{}", text(&out.stderr));
}

#[test]
fn a_refunded_zero_spend_never_prints_negative_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("events.jsonl");
    std::fs::write(
        &input,
        "{\"event_id\":\"A\",\"member_id\":\"M\",\"occurred_at\":\"2026-11-02T08:15:00Z\",\"currency\":\"EUR\",\"total\":\"30\",\"items\":[{\"category\":\"tobacco\",\"amount\":\"30\"}]}\n\
         {\"event_id\":\"B\",\"kind\":\"refund\",\"original_event_id\":\"A\",\"member_id\":\"M\",\"occurred_at\":\"2026-11-03T08:15:00Z\",\"currency\":\"EUR\",\"total\":\"10\"}\n\
         {\"event_id\":\"C\",\"kind\":\"refund\",\"original_event_id\":\"A\",\"member_id\":\"M\",\"occurred_at\":\"2026-11-03T09:15:00Z\",\"currency\":\"EUR\",\"total\":\"20\"}\n",
    )
    .expect("write");
    let out =
        run(bin().args(["score", "--rules"]).arg(root().join("config/rules/acme.toml")).arg("--input").arg(&input));
    assert!(out.status.success());
    let rewards = reward_lines(&out.stdout);
    assert_eq!(rewards.len(), 3);
    assert!(rewards.iter().all(|r| r["qualifying_spend"] == "0.00"), "{rewards:?}");
}

/// `run`'s logs follow `[logging]`: JSON lines when asked, and only what
/// the level lets through. The daemon stops at once here (no Redis on port
/// 1), after logging where its admin endpoints are.
#[test]
fn run_logs_as_its_logging_section_says() {
    let dir = tempfile::tempdir().unwrap();
    let rules = root().join("config/rules/acme.toml");
    let run_with = |logging: &str| -> String {
        let config = dir.path().join("scorer.toml");
        let toml = format!(
            "[kafka]\nbrokers = [\"127.0.0.1:1\"]\ninput_topic = \"in\"\nrewards_topic = \"out\"\ndead_letter_topic = \"dlq\"\n[redis]\nurl = \"redis://127.0.0.1:1/\"\n[programs]\nrules = [{rules:?}]\n[admin]\nlisten = \"127.0.0.1:0\"\n[logging]\n{logging}\n"
        );
        std::fs::write(&config, toml).unwrap();
        let out = run(bin().arg("run").arg("--config").arg(&config).env_remove("LOYALTY_SCORER_LOG"));
        assert!(!out.status.success(), "run without Redis should stop");
        text(&out.stderr)
    };
    let json = run_with("format = \"json\"\nlevel = \"info\"");
    let logged: Vec<Value> = json.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        logged
            .iter()
            .any(|v| v["level"] == "INFO" && v["message"].as_str().is_some_and(|m| m.contains("admin endpoints"))),
        "no JSON line for the admin endpoints in:\n{json}"
    );
    let quiet = run_with("format = \"text\"\nlevel = \"warn\"");
    assert!(!quiet.contains("admin endpoints"), "an info line at level warn:\n{quiet}");
    assert!(quiet.contains("connecting to Redis"), "the error is still said:\n{quiet}");
}
