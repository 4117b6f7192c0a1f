//! The deployment assets under `deploy/`, checked with the tools that consume
//! them and against the daemon itself:
//!
//! - the Dockerfile passes hadolint, and its build context holds what the
//!   build needs;
//! - the Kubernetes manifests parse, their scorer.toml is a valid
//!   configuration, and the probes, ports and grace period agree with it;
//! - the systemd unit passes `systemd-analyze verify`, and its environment
//!   file names real configuration keys;
//! - the alerting rules pass `promtool check rules` and their unit tests,
//!   and each one's runbook is a section of docs/operations.md;
//! - every metric the dashboard and the alerts query is exported by a
//!   running daemon (`demo`), which the `probe` command finds ready.
//!
//! The tools come from `.ci/deps` (hadolint in a virtual environment under
//! the user's cache directory, promtool, systemd-analyze); a missing tool
//! fails the test with what to run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests fail loudly on purpose")]

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use loyalty_scorer::config::Config;
use serde::Deserialize;
use serde_yaml_ng::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `name` on PATH, or in one of `also`; fails with how to install it.
fn tool(name: &str, also: &[PathBuf]) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path.into_iter().chain(also.iter().cloned()).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!("{name} not found on PATH or in {also:?}: run `source .ci/deps` once (it installs {name})")
    })
}

fn hadolint() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")));
    let venv: Vec<PathBuf> = cache.map(|c| c.join("loyalty-scorer/hadolint/bin/hadolint")).into_iter().collect();
    tool("hadolint", &venv)
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn assert_success(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed ({}):\n{}{}", out.status, text(&out.stdout), text(&out.stderr));
}

/// Every YAML document of `path`.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&source)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

fn str_at<'v>(value: &'v Value, what: &str) -> &'v str {
    value.as_str().unwrap_or_else(|| panic!("{what}: expected a string, found {value:?}"))
}

fn seq_at<'v>(value: &'v Value, what: &str) -> &'v [Value] {
    value.as_sequence().map(Vec::as_slice).unwrap_or_else(|| panic!("{what}: expected a list, found {value:?}"))
}

/// The milliseconds of a systemd time span such as `30s`, `1min 30s` or `45`.
fn systemd_span_ms(span: &str) -> u64 {
    let mut total = 0;
    for part in span.split_whitespace() {
        let digits = part.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let n: u64 = digits.parse().unwrap_or_else(|_| panic!("time span {span:?}"));
        total += match &part[digits.len()..] {
            "" | "s" | "sec" => n * 1000,
            "ms" | "msec" => n,
            "m" | "min" => n * 60_000,
            unit => panic!("time span {span:?}: unit {unit:?}"),
        };
    }
    total
}

// ---------------------------------------------------------------- container

#[test]
fn dockerfile_passes_hadolint() {
    let hadolint = hadolint();
    let out = run(Command::new(&hadolint).arg(root().join("deploy/Dockerfile")));
    assert_success(&out, "hadolint deploy/Dockerfile");

    // The linter really lints: a Dockerfile with the classic mistakes fails.
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("Dockerfile");
    std::fs::write(&bad, "FROM debian\nRUN apt-get update && apt-get install curl\nCMD curl localhost\n")
        .expect("write");
    let out = run(Command::new(&hadolint).arg(&bad));
    assert!(!out.status.success(), "hadolint accepted a bad Dockerfile:\n{}", text(&out.stdout));
}

/// The instructions of the Dockerfile, continuation lines joined.
fn dockerfile_instructions() -> Vec<(String, String)> {
    let source = read("deploy/Dockerfile");
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in source.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                let (keyword, rest) = current.split_once(' ').unwrap_or((current.as_str(), ""));
                instructions.push((keyword.to_ascii_uppercase(), rest.trim().to_owned()));
                current.clear();
            }
        }
    }
    instructions
}

#[test]
fn image_runs_unprivileged_and_checks_its_own_health() {
    let instructions = dockerfile_instructions();
    let of = |keyword: &str| -> Vec<&str> {
        instructions.iter().filter(|(k, _)| k == keyword).map(|(_, rest)| rest.as_str()).collect()
    };
    assert!(of("FROM").len() >= 2, "multi-stage: a builder and a runtime stage");
    let user = of("USER");
    let user = user.last().expect("a USER instruction");
    let uid: u32 = user.split(':').next().unwrap().parse().expect("a numeric USER, for runAsNonRoot");
    assert_ne!(uid, 0, "the image must not run as root");

    let expose = of("EXPOSE");
    let port = expose.last().expect("EXPOSE of the admin port").trim();
    let healthcheck = of("HEALTHCHECK").last().copied().expect("a HEALTHCHECK");
    assert!(healthcheck.contains("\"loyalty-scorer\", \"probe\""), "the health check runs the binary: {healthcheck}");
    assert!(
        healthcheck.contains(&format!("http://127.0.0.1:{port}/health/readyz")),
        "the health check asks the exposed port's readiness: {healthcheck}"
    );

    // The Kubernetes pod runs as the image's user.
    let deployment = kubernetes().remove("Deployment").expect("a Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(u64::from(uid)));
}

#[test]
fn build_context_holds_what_the_build_needs() {
    // .dockerignore excludes everything, then lets in what the Dockerfile copies.
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    assert_eq!(patterns.first(), Some(&"*"), ".dockerignore starts by excluding everything");
    let allowed: BTreeSet<&str> =
        patterns.iter().filter_map(|p| p.strip_prefix('!')).map(|p| p.trim_end_matches('/')).collect();

    let mut copied = BTreeSet::new();
    for (keyword, rest) in dockerfile_instructions() {
        if keyword != "COPY" || rest.starts_with("--from") {
            continue;
        }
        let parts: Vec<&str> = rest.split_whitespace().collect();
        for source in &parts[..parts.len() - 1] {
            let source = source.trim_end_matches('/');
            assert!(allowed.contains(source), "COPY {source}: excluded by .dockerignore (allowed: {allowed:?})");
            copied.insert(source.to_owned());
        }
    }

    // Those files alone make a workspace cargo can resolve, locked.
    let dir = tempfile::tempdir().expect("tempdir");
    for source in &copied {
        copy_tree(&root().join(source), &dir.path().join(source));
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = run(Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(dir.path())
        .env_remove("CARGO_TARGET_DIR"));
    assert_success(&out, "cargo metadata over the Docker build context");
    assert!(text(&out.stdout).contains("\"name\":\"loyalty-scorer\""), "the package is in the context");
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read_dir") {
            let entry = entry.expect("entry");
            if entry.file_name() != "target" {
                copy_tree(&entry.path(), &to.join(entry.file_name()));
            }
        }
    } else {
        std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

// --------------------------------------------------------------- kubernetes

/// The manifests under deploy/kubernetes by kind, each kind once.
fn kubernetes() -> HashMap<String, Value> {
    let dir = root().join("deploy/kubernetes");
    let mut by_kind = HashMap::new();
    for entry in std::fs::read_dir(&dir).expect("deploy/kubernetes") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        for doc in yaml_documents(&path) {
            let kind = str_at(&doc["kind"], "kind").to_owned();
            assert!(doc["apiVersion"].as_str().is_some(), "{}: {kind} without apiVersion", path.display());
            if kind != "Kustomization" {
                assert!(doc["metadata"]["name"].as_str().is_some(), "{}: {kind} without a name", path.display());
            }
            assert!(by_kind.insert(kind.clone(), doc).is_none(), "two {kind} manifests");
        }
    }
    by_kind
}

fn scorer_toml(manifests: &HashMap<String, Value>) -> &str {
    str_at(&manifests["ConfigMap"]["data"]["scorer.toml"], "ConfigMap data.scorer.toml")
}

/// The Secret's keys and values, as the container's environment gets them.
fn secret_env(manifests: &HashMap<String, Value>) -> Vec<(String, String)> {
    let data = manifests["Secret"]["stringData"].as_mapping().expect("Secret stringData");
    data.iter().map(|(k, v)| (str_at(k, "Secret key").to_owned(), str_at(v, "Secret value").to_owned())).collect()
}

fn load_configmap(manifests: &HashMap<String, Value>) -> Config {
    Config::load_str("configmap.yaml:scorer.toml", scorer_toml(manifests), secret_env(manifests), &[])
        .unwrap_or_else(|e| panic!("the ConfigMap's scorer.toml with the Secret's variables:\n{e}"))
}

#[test]
fn kustomization_lists_every_manifest_but_the_secret_example() {
    let dir = root().join("deploy/kubernetes");
    let kustomization = yaml_documents(&dir.join("kustomization.yaml")).remove(0);
    let listed: BTreeSet<&str> =
        seq_at(&kustomization["resources"], "resources").iter().map(|r| str_at(r, "resource")).collect();
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("deploy/kubernetes") {
        let name = entry.expect("entry").file_name().into_string().expect("utf-8 name");
        if name.ends_with(".yaml") && name != "kustomization.yaml" && !name.contains(".example.") {
            files.insert(name);
        }
    }
    assert_eq!(listed, files.iter().map(String::as_str).collect(), "kustomization.yaml resources");
}

#[test]
fn configmap_holds_a_valid_configuration_reachable_by_the_kubelet() {
    let manifests = kubernetes();
    // Valid with and without the Secret's variables (they only add secrets).
    Config::load_str(
        "configmap.yaml:scorer.toml",
        scorer_toml(&manifests),
        std::iter::empty::<(String, String)>(),
        &[],
    )
    .unwrap_or_else(|e| panic!("the ConfigMap's scorer.toml:\n{e}"));
    let config = load_configmap(&manifests);
    assert!(
        !config.admin.listen.ip().is_loopback(),
        "admin.listen {} is a loopback address: the kubelet's probes and Prometheus could not reach it",
        config.admin.listen
    );
    assert!(config.redis.url.expose().contains("CHANGE-ME"), "the Secret's Redis URL overrides the ConfigMap's");
    for rules in &config.programs.rules {
        // Relative paths resolve in the image's working directory, which holds config/.
        if rules.is_relative() {
            assert!(root().join(rules).is_file(), "{} is not shipped in the image", rules.display());
        }
    }
}

#[test]
fn deployment_probes_ports_and_grace_period_agree_with_the_configuration() {
    let manifests = kubernetes();
    let config = load_configmap(&manifests);
    let admin_port = config.admin.listen.port();
    let deployment = &manifests["Deployment"];
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = seq_at(&pod["containers"], "containers");
    assert_eq!(containers.len(), 1);
    let container = &containers[0];

    // A probe's port: a number, or the name of one of the container's ports.
    let port_of = |port: &Value| -> u16 {
        if let Some(n) = port.as_u64() {
            return u16::try_from(n).expect("a port");
        }
        let name = str_at(port, "probe port");
        let found = seq_at(&container["ports"], "ports").iter().find(|p| p["name"].as_str() == Some(name));
        let number = found.and_then(|p| p["containerPort"].as_u64()).unwrap_or_else(|| panic!("no port named {name}"));
        u16::try_from(number).expect("a port")
    };
    for (probe, path) in [("livenessProbe", "/health/livez"), ("readinessProbe", "/health/readyz")] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe} path");
        assert_eq!(port_of(&get["port"]), admin_port, "{probe} port against admin.listen {}", config.admin.listen);
    }

    let grace_s = pod["terminationGracePeriodSeconds"].as_u64().expect("terminationGracePeriodSeconds");
    let shutdown = config.daemon.shutdown_timeout;
    assert!(
        Duration::from_secs(grace_s) > shutdown,
        "terminationGracePeriodSeconds {grace_s} s must exceed daemon.shutdown_timeout_ms {} ms",
        shutdown.as_millis()
    );

    // The configuration file the container reads is the ConfigMap's.
    let args: Vec<&str> = seq_at(&container["args"], "args").iter().map(|a| str_at(a, "arg")).collect();
    let at = args.iter().position(|a| *a == "--config").expect("--config in args");
    let config_path = Path::new(args[at + 1]);
    let mount = seq_at(&container["volumeMounts"], "volumeMounts")
        .iter()
        .find(|m| config_path.starts_with(str_at(&m["mountPath"], "mountPath")))
        .expect("a volume mounted where --config points");
    let volume =
        seq_at(&pod["volumes"], "volumes").iter().find(|v| v["name"] == mount["name"]).expect("the mounted volume");
    assert_eq!(volume["configMap"]["name"], manifests["ConfigMap"]["metadata"]["name"]);
    assert_eq!(config_path.file_name().and_then(|n| n.to_str()), Some("scorer.toml"));

    let env_from = seq_at(&container["envFrom"], "envFrom");
    assert!(env_from.iter().any(|e| e["secretRef"]["name"] == manifests["Secret"]["metadata"]["name"]));

    assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"].as_bool(), Some(false));
    for bound in ["requests", "limits"] {
        for resource in ["cpu", "memory"] {
            assert!(!container["resources"][bound][resource].is_null(), "resources.{bound}.{resource}");
        }
    }

    // The PodDisruptionBudget and the Service select the Deployment's pods.
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    assert_eq!(&manifests["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"], selector);
    let service = &manifests["Service"];
    assert_eq!(&service["spec"]["selector"], selector);
    let ports = seq_at(&service["spec"]["ports"], "Service ports");
    assert!(ports.iter().any(|p| port_of(&p["targetPort"]) == admin_port), "the Service targets the admin port");
    let annotations = &service["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"].as_str(), Some("true"));
    assert_eq!(annotations["prometheus.io/port"].as_str(), Some(admin_port.to_string().as_str()));
    assert_eq!(annotations["prometheus.io/path"].as_str(), Some("/metrics"));
}

// ------------------------------------------------------------------ systemd

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let analyze = tool("systemd-analyze", &[]);
    let unit = read("deploy/systemd/loyalty-scorer.service");
    let exec_start = unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("ExecStart=");
    let (binary, rest) = exec_start.split_once(' ').expect("ExecStart= with arguments");
    assert!(rest.starts_with("run --config "), "{exec_start}");

    // The same unit, starting the binary this test built.
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("loyalty-scorer.service");
    let built = env!("CARGO_BIN_EXE_loyalty-scorer");
    std::fs::write(&copy, unit.replace(&format!("ExecStart={binary} "), &format!("ExecStart={built} ")))
        .expect("write the unit");
    let out = run(Command::new(&analyze).arg("verify").arg(&copy));
    assert_success(&out, "systemd-analyze verify");
    // Unknown keys and sections are only warned about: none is allowed.
    let warnings: Vec<String> =
        text(&out.stderr).lines().filter(|l| l.contains("loyalty-scorer.service")).map(str::to_owned).collect();
    assert!(warnings.is_empty(), "systemd-analyze verify warned:\n{}", warnings.join("\n"));

    // It does check: a unit whose binary is missing fails.
    std::fs::write(&copy, unit.replace(&format!("ExecStart={binary} "), "ExecStart=/nonexistent/loyalty-scorer "))
        .expect("write the unit");
    assert!(!run(Command::new(&analyze).arg("verify").arg(&copy)).status.success());
}

#[test]
fn systemd_unit_outwaits_the_drain_and_reloads_rules_on_sighup() {
    let unit = read("deploy/systemd/loyalty-scorer.service");
    let key = |name: &str| -> Vec<&str> {
        unit.lines().filter_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('='))).collect()
    };
    assert_eq!(key("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(key("Restart"), ["on-failure"]);
    let user = key("User");
    assert!(!user.is_empty() && user != ["root"], "a dedicated user: {user:?}");
    for hardening in ["NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes"] {
        assert!(unit.lines().any(|l| l == hardening), "{hardening}");
    }

    // The unit runs the configuration of config/ once installed: its drain
    // must end before systemd's SIGKILL.
    let config = Config::load(Some(&root().join("config/scorer.toml")), std::iter::empty::<(String, String)>(), &[])
        .expect("config/scorer.toml");
    let stop = systemd_span_ms(key("TimeoutStopSec").first().expect("TimeoutStopSec"));
    assert!(
        u128::from(stop) > config.daemon.shutdown_timeout.as_millis(),
        "TimeoutStopSec {stop} ms must exceed daemon.shutdown_timeout_ms {} ms",
        config.daemon.shutdown_timeout.as_millis()
    );
}

#[test]
fn systemd_environment_file_names_real_configuration_keys() {
    let env_file = read("deploy/systemd/loyalty-scorer.env");
    // Every variable, set or shown commented out, is one the configuration takes.
    let vars: Vec<(String, String)> = env_file
        .lines()
        .map(|l| l.trim_start_matches('#'))
        .filter(|l| l.starts_with("LOYALTY_SCORER__"))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert!(vars.len() >= 2, "{vars:?}");
    let config = Config::load(Some(&root().join("config/scorer.toml")), vars, &[])
        .unwrap_or_else(|e| panic!("config/scorer.toml with deploy/systemd/loyalty-scorer.env:\n{e}"));
    assert!(config.redis.url.expose().contains("CHANGE-ME"));
}

// --------------------------------------------------------------- prometheus

fn promtool() -> PathBuf {
    tool("promtool", &[])
}

/// Each alerting rule of alerts.yml: (name, expression, annotations).
fn alerts() -> Vec<(String, String, Value)> {
    let doc = yaml_documents(&root().join("deploy/prometheus/alerts.yml")).remove(0);
    let mut alerts = Vec::new();
    for group in seq_at(&doc["groups"], "groups") {
        for rule in seq_at(&group["rules"], "rules") {
            let name = str_at(&rule["alert"], "alert").to_owned();
            alerts.push((name, str_at(&rule["expr"], "expr").to_owned(), rule["annotations"].clone()));
        }
    }
    alerts
}

#[test]
fn alerting_rules_pass_promtool_check_and_their_unit_tests() {
    let promtool = promtool();
    let dir = root().join("deploy/prometheus");
    let out = run(Command::new(&promtool).args(["check", "rules", "alerts.yml"]).current_dir(&dir));
    assert_success(&out, "promtool check rules");
    let out = run(Command::new(&promtool).args(["test", "rules", "alerts.test.yml"]).current_dir(&dir));
    assert_success(&out, "promtool test rules");

    // Every alert is tested both firing and staying quiet.
    let tests = yaml_documents(&dir.join("alerts.test.yml")).remove(0);
    let mut firing = BTreeSet::new();
    let mut quiet = BTreeSet::new();
    for test in seq_at(&tests["tests"], "tests") {
        for case in seq_at(&test["alert_rule_test"], "alert_rule_test") {
            let name = str_at(&case["alertname"], "alertname").to_owned();
            if seq_at(&case["exp_alerts"], "exp_alerts").is_empty() {
                quiet.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    for (name, _, _) in alerts() {
        assert!(firing.contains(&name), "{name} has no test where it fires");
        assert!(quiet.contains(&name), "{name} has no test where it stays quiet");
    }
}

/// GitHub's anchor of a Markdown heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_alert_explains_itself_and_links_its_runbook_section() {
    let guide = read("docs/operations.md");
    let anchors: BTreeSet<String> =
        guide.lines().filter(|l| l.starts_with('#')).map(|l| anchor(l.trim_start_matches('#'))).collect();
    let alerts = alerts();
    assert!(!alerts.is_empty());
    for (name, _, annotations) in alerts {
        for key in ["summary", "description", "runbook_url"] {
            assert!(annotations[key].as_str().is_some_and(|v| !v.is_empty()), "{name}: annotation {key}");
        }
        let url = str_at(&annotations["runbook_url"], "runbook_url");
        let (page, section) = url.split_once('#').unwrap_or_else(|| panic!("{name}: {url} has no anchor"));
        assert_eq!(page, "docs/operations.md", "{name}");
        assert_eq!(section, name.to_lowercase(), "{name}: the anchor is the alert's name");
        assert!(anchors.contains(section), "{name}: docs/operations.md has no section #{section}");
    }
}

/// Every expression of the dashboard: its panels' queries and its variables'.
fn dashboard_expressions() -> Vec<String> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/loyalty-scorer.json")).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().expect("a target's expr").to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().expect("templating") {
        let query = &variable["query"];
        let query = query.as_str().or_else(|| query["query"].as_str()).expect("a variable's query");
        // label_values(SELECTOR, label): the selector is what Prometheus is asked.
        let inner = query.strip_prefix("label_values(").and_then(|q| q.rsplit_once(',')).map(|(s, _)| s);
        exprs.push(inner.unwrap_or(query).to_owned());
    }
    exprs
}

#[test]
fn dashboard_is_importable_and_its_queries_are_valid_promql() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/loyalty-scorer.json")).expect("the dashboard is JSON");
    let input = &dashboard["__inputs"][0];
    assert_eq!((input["name"].as_str(), input["pluginId"].as_str()), (Some("DS_PROMETHEUS"), Some("prometheus")));
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(ids.insert(panel["id"].as_u64().expect("panel id")), "panel ids are unique");
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{}", panel["title"]);
        }
    }

    // promtool parses each query, Grafana's variables given values, as a recording rule.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in dashboard_expressions().iter().enumerate() {
        let expr =
            expr.replace("$__rate_interval", "5m").replace("$job", ".+").replace("$instance", ".+").replace('\'', "''");
        rules.push_str(&format!("      - record: dashboard_query_{i}\n        expr: '{expr}'\n"));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, rules).expect("write");
    let out = run(Command::new(promtool()).args(["check", "rules"]).arg(&file));
    assert_success(&out, "promtool check rules over the dashboard's queries");
}

// --------------------------------------------------- against a running daemon

/// Names of the metrics `exprs` query, and the selectors of anything else.
fn queried(exprs: &[String]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut ours = BTreeSet::new();
    let mut others = BTreeSet::new();
    for expr in exprs {
        let bytes = expr.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if c.is_ascii_alphabetic() || c == b'_' {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b':') {
                    i += 1;
                }
                let word = &expr[start..i];
                if word.starts_with("loyalty_scorer_") {
                    ours.insert(word.to_owned());
                } else if bytes.get(i) == Some(&b'{') && (start == 0 || bytes[start - 1] != b'$') {
                    others.insert(word.to_owned());
                }
            } else if c == b'"' {
                // Skip label values and strings.
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            } else {
                i += 1;
            }
        }
    }
    (ours, others)
}

/// A running `loyalty-scorer demo`, killed when dropped.
struct Demo {
    child: Child,
    admin: SocketAddr,
    /// Lines of its standard output after the admin address.
    stdout: mpsc::Receiver<String>,
}

impl Demo {
    fn start() -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_loyalty-scorer"))
            // Paced, so that it runs long enough for the consumer's statistics
            // (every 5 s) to report lag; port 0: a free port, printed.
            .args(["demo", "--events", "30000", "--rate", "2000", "--admin", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start loyalty-scorer demo");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut demo = Demo { child, admin: SocketAddr::from(([127, 0, 0, 1], 0)), stdout: rx };
        loop {
            let line = demo.stdout.recv_timeout(Duration::from_secs(60)).expect("the demo prints its metrics address");
            if let Some(rest) = line.split_once("metrics: http://").map(|(_, r)| r) {
                let addr = rest.trim_end_matches("/metrics");
                demo.admin = addr.parse().unwrap_or_else(|_| panic!("admin address in {line:?}"));
                return demo;
            }
        }
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.admin, Duration::from_secs(5)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.admin);
        stream.write_all(request.as_bytes()).ok()?;
        let mut raw = String::new();
        stream.read_to_string(&mut raw).ok()?;
        let (head, body) = raw.split_once("\r\n\r\n")?;
        Some((head.split(' ').nth(1)?.parse().ok()?, body.to_owned()))
    }

    fn probe(&self, path: &str) -> Output {
        run(Command::new(env!("CARGO_BIN_EXE_loyalty-scorer")).args([
            "probe",
            "--url",
            &format!("http://{}{path}", self.admin),
            "--timeout-ms",
            "5000",
        ]))
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sample names of a Prometheus text exposition.
fn exported(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn every_queried_metric_is_exported_by_a_running_daemon() {
    let mut exprs = dashboard_expressions();
    exprs.extend(alerts().into_iter().map(|(_, expr, _)| expr));
    let (wanted, others) = queried(&exprs);
    assert!(wanted.len() >= 10, "{wanted:?}");
    let builtins: BTreeSet<String> = ["up"].into_iter().map(str::to_owned).collect();
    assert!(others.is_subset(&builtins), "queries of metrics loyalty-scorer does not export: {others:?}");

    let mut demo = Demo::start();

    // The health check the image runs, against the daemon: ready once it
    // holds its partitions; 404 on a path that is no endpoint.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let out = demo.probe("/health/readyz");
        if out.status.code() == Some(0) {
            break;
        }
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert!(demo.running() && Instant::now() < deadline, "never ready: {}", text(&out.stderr));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(demo.probe("/health/livez").status.code(), Some(0));
    let out = demo.probe("/health/nothing");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("404"), "{}", text(&out.stderr));

    // Some series (the lag, points debited) appear once the stream flows.
    let mut seen = BTreeSet::new();
    while demo.running() && Instant::now() < deadline {
        if let Some((200, body)) = demo.get("/metrics") {
            seen = exported(&body);
            if wanted.is_subset(&seen) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let missing: Vec<&String> = wanted.difference(&seen).collect();
    let rest: Vec<String> = demo.stdout.try_iter().collect();
    assert!(missing.is_empty(), "queried but not exported: {missing:?}\nexported: {seen:?}\ndemo: {}", rest.join("\n"));
}
