//! The daemon's configuration: defaults, the four layers in order, problems
//! located in the layer that caused them and all reported at once, secrets
//! never shown, and every file under `config/` valid.

use std::path::{Path, PathBuf};
use std::time::Duration;

use loyalty_scorer::commands::load_programs;
use loyalty_scorer::config::{Config, ConfigError, LogFormat, Origin, Problem, env_var, keys};

const FILE: &str = "scorer.toml";

/// The keys without a default.
const REQUIRED: &str = r#"
[kafka]
brokers = ["127.0.0.1:9092"]
input_topic = "purchases"
rewards_topic = "rewards"
dead_letter_topic = "dead-letters"

[redis]
url = "redis://127.0.0.1:6379/"

[programs]
rules = ["config/rules/acme.toml"]
"#;

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn overrides(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    env(pairs)
}

#[track_caller]
fn load(text: &str, vars: &[(&str, &str)], over: &[(&str, &str)]) -> Config {
    match Config::load_str(FILE, text, env(vars), &overrides(over)) {
        Ok(config) => config,
        Err(error) => panic!("expected a valid configuration, got:\n{error}"),
    }
}

#[track_caller]
fn problems(text: &str, vars: &[(&str, &str)], over: &[(&str, &str)]) -> Vec<String> {
    match Config::load_str(FILE, text, env(vars), &overrides(over)) {
        Ok(config) => panic!("expected problems, loaded {config:#?}"),
        Err(ConfigError::Invalid(problems)) => problems.iter().map(Problem::to_string).collect(),
        Err(error) => panic!("expected problems, got {error}"),
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn defaults_fill_every_optional_key() {
    let config = load(REQUIRED, &[], &[]);
    assert_eq!(config.kafka.brokers, ["127.0.0.1:9092"]);
    assert_eq!(config.kafka.group_id, "loyalty-scorer");
    assert_eq!(config.kafka.max_message_bytes, 64 * 1024);
    assert!(config.kafka.properties.is_empty());
    assert_eq!(config.redis.key_prefix, "ls");
    assert_eq!(config.redis.retention_days, 90);
    assert_eq!(config.engine_settings(), loyalty_scorer::rules::engine::Settings::default());
    assert_eq!(config.programs.rules, [PathBuf::from("config/rules/acme.toml")]);
    assert!(config.programs.reload_on_sighup);
    assert_eq!(config.batching.max_batch_events, 512);
    assert_eq!(config.batching.max_batch_wait, Duration::ZERO);
    assert_eq!(config.batching.max_in_flight_events, 20_000);
    assert_eq!(config.admin.listen, "127.0.0.1:9464".parse().unwrap());
    assert_eq!(config.logging.level, tracing::level_filters::LevelFilter::INFO);
    assert_eq!(config.logging.format, LogFormat::Text);
    assert_eq!(config.daemon.shutdown_timeout, Duration::from_secs(10));
}

#[test]
fn without_a_file_the_environment_can_carry_everything() {
    let vars = [
        ("LOYALTY_SCORER__KAFKA__BROKERS", "a:9092, b:9092"),
        ("LOYALTY_SCORER__KAFKA__INPUT_TOPIC", "in"),
        ("LOYALTY_SCORER__KAFKA__REWARDS_TOPIC", "out"),
        ("LOYALTY_SCORER__KAFKA__DEAD_LETTER_TOPIC", "dlq"),
        ("LOYALTY_SCORER__REDIS__URL", "redis+cluster://r1:6379,r2:6379"),
        ("LOYALTY_SCORER__PROGRAMS__RULES", "a.toml,b.toml"),
        ("LOYALTY_SCORER__PROGRAMS__RELOAD_ON_SIGHUP", "false"),
        ("LOYALTY_SCORER__LOGGING__FORMAT", "json"),
        // Not ours: ignored, whatever it holds.
        ("LOYALTY_SCORER_LOG", "debug"),
        ("PATH", "/usr/bin"),
    ];
    let config = Config::load(None, env(&vars), &[]).unwrap();
    assert_eq!(config.kafka.brokers, ["a:9092", "b:9092"]);
    assert_eq!(config.programs.rules, [PathBuf::from("a.toml"), PathBuf::from("b.toml")]);
    assert!(!config.programs.reload_on_sighup);
    assert_eq!(config.logging.format, LogFormat::Json);
    assert_eq!(config.redis.url.expose(), "redis+cluster://r1:6379,r2:6379");
}

#[test]
fn each_layer_overrides_the_one_before() {
    let file = format!("{REQUIRED}\n[batching]\nmax_batch_events = 100\nmax_batch_wait_ms = 20\n");
    // Default -> file.
    let config = load(&file, &[], &[]);
    assert_eq!(config.batching.max_batch_events, 100);
    assert_eq!(config.batching.max_batch_wait, Duration::from_millis(20));
    assert_eq!(config.batching.max_in_flight_events, 20_000);

    // File -> environment.
    let vars = [("LOYALTY_SCORER__BATCHING__MAX_BATCH_EVENTS", "200"), ("LOYALTY_SCORER__REDIS__KEY_PREFIX", "env")];
    let config = load(&file, &vars, &[]);
    assert_eq!(config.batching.max_batch_events, 200);
    assert_eq!(config.batching.max_batch_wait, Duration::from_millis(20));
    assert_eq!(config.redis.key_prefix, "env");

    // Environment -> command line.
    let config = load(&file, &vars, &[("batching.max_batch_events", "300"), ("kafka.brokers", "c:1,d:2")]);
    assert_eq!(config.batching.max_batch_events, 300);
    assert_eq!(config.redis.key_prefix, "env");
    assert_eq!(config.kafka.brokers, ["c:1", "d:2"]);
}

#[test]
fn kafka_properties_merge_one_by_one_across_layers() {
    let file =
        format!("{REQUIRED}\n[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.username\" = \"file\"\n");
    let config = load(
        &file,
        &[
            ("LOYALTY_SCORER__KAFKA__PROPERTIES__SASL_USERNAME", "env"),
            ("LOYALTY_SCORER__KAFKA__PROPERTIES__SASL_PASSWORD", "pw"),
        ],
        &[("kafka.properties.session.timeout.ms", "45000")],
    );
    let properties: Vec<(&str, &str)> = config.kafka.properties.expose().collect();
    assert_eq!(
        properties,
        [
            ("sasl.password", "pw"),
            ("sasl.username", "env"),
            ("security.protocol", "SASL_SSL"),
            ("session.timeout.ms", "45000"),
        ]
    );
}

#[test]
fn an_unknown_key_in_the_file_is_located() {
    let text = "[kafka]\nbrokers = [\"127.0.0.1:9092\"]\n  brokerz = 1\n";
    let got = problems(text, &[], &[]);
    assert!(
        got[0].starts_with(
            "scorer.toml:3:3: kafka.brokerz: unknown key (did you mean brokers?); [kafka] takes: brokers, group_id,"
        ),
        "{got:#?}"
    );
}

#[test]
fn unknown_sections_and_keys_are_all_reported_and_good_keys_kept() {
    let text = format!(
        "{REQUIRED}\n[batching]\nmax_batch_event = 5\nmax_batch_wait_ms = \"5\"\nmax_in_flight_events = 0\nlingering = true\n\n[admn]\nlisten = \"x\"\n"
    );
    let got = problems(&text, &[], &[]);
    assert_eq!(
        got,
        [
            "scorer.toml:15:1: batching.max_batch_event: unknown key (did you mean max_batch_events?); [batching] takes: max_batch_events, max_batch_wait_ms, max_in_flight_events, lanes",
            "scorer.toml:16:21: batching.max_batch_wait_ms = \"5\": expected a whole number, found a string; write numbers without quotes",
            "scorer.toml:17:24: batching.max_in_flight_events = 0: must be at least 1",
            "scorer.toml:18:1: batching.lingering: unknown key; [batching] takes: max_batch_events, max_batch_wait_ms, max_in_flight_events, lanes",
            "scorer.toml:20:2: admn: unknown section (did you mean [admin]?); the file takes the sections [kafka], [redis], [programs], [batching], [admin], [logging], [daemon]",
        ]
    );
}

#[test]
fn an_unknown_variable_is_named() {
    let got = problems(REQUIRED, &[("LOYALTY_SCORER__KAFKA__BROKER", "a:1"), ("LOYALTY_SCORER__NOPE", "x")], &[]);
    assert_eq!(
        got,
        [
            "LOYALTY_SCORER__KAFKA__BROKER: sets no known key (did you mean LOYALTY_SCORER__KAFKA__BROKERS?); [kafka] takes: brokers, group_id, input_topic, rewards_topic, dead_letter_topic, max_message_bytes, properties",
            "LOYALTY_SCORER__NOPE: sets no known key; variables are LOYALTY_SCORER__<SECTION>__<KEY>, sections: kafka, redis, programs, batching, admin, logging, daemon",
        ]
    );
    let got = problems(REQUIRED, &[("LOYALTY_SCORER__KAFKA__PROPERTIES", "sasl.password=hunter2")], &[]);
    assert_eq!(
        got,
        [
            "LOYALTY_SCORER__KAFKA__PROPERTIES: names the whole table; set one property per variable, LOYALTY_SCORER__KAFKA__PROPERTIES__<NAME>"
        ]
    );
    let got = problems(REQUIRED, &[], &[("kafka.groupid", "g")]);
    assert_eq!(
        got,
        [
            "command line: kafka.groupid: unknown key (did you mean kafka.group_id?); see docs/configuration.md for every key"
        ]
    );
}

#[test]
fn every_problem_of_every_layer_is_reported_at_once() {
    let text = r#"
[kafka]
brokers = []
input_topic = "purchases"
rewards_topic = "purchases"
dead_letter_topic = "dead letters"
max_message_bytes = 0

[kafka.properties]
"group.id" = "other"

[batching]
max_batch_events = 100001

[admin]
listen = "localhost:9464"

[logging]
level = "verbose"
"#;
    let got = problems(
        text,
        &[("LOYALTY_SCORER__REDIS__URL", "http://u:pw@h/"), ("LOYALTY_SCORER__DAEMON__SHUTDOWN_TIMEOUT_MS", "soon")],
        &[("redis.key_prefix", "{ls}")],
    );
    assert_eq!(
        got,
        [
            "scorer.toml:3:11: kafka.brokers = []: must list at least one broker, e.g. [\"127.0.0.1:9092\"]",
            "scorer.toml:5:17: kafka.rewards_topic = \"purchases\": is also kafka.input_topic: the scorer would read its own rewards",
            "scorer.toml:6:21: kafka.dead_letter_topic = \"dead letters\": may hold only ASCII letters, digits, '.', '_' and '-'",
            "scorer.toml:7:21: kafka.max_message_bytes = 0: must be at least 1",
            "scorer.toml:10:14: kafka.properties.\"group.id\" = \"other\": the scorer sets it from kafka.group_id; set that instead",
            "scorer.toml:13:20: batching.max_batch_events = 100001: must be at most 100000",
            "scorer.toml:16:10: admin.listen = \"localhost:9464\": not a socket address; write IP:port, e.g. 127.0.0.1:9464 or [::]:9464 (host names are not resolved)",
            "scorer.toml:19:9: logging.level = \"verbose\": unknown value; write one of off, error, warn, info, debug, trace",
            "LOYALTY_SCORER__DAEMON__SHUTDOWN_TIMEOUT_MS: daemon.shutdown_timeout_ms = \"soon\": expected a whole number",
            "LOYALTY_SCORER__REDIS__URL: redis.url = \"http://u:***@h/\": expected redis://, rediss://, redis+cluster:// or rediss+cluster://",
            "command line: redis.key_prefix = \"{ls}\": must not contain { or }: it would become every key's hash tag",
            "programs.rules: required; set it under [programs] in the configuration file, or with LOYALTY_SCORER__PROGRAMS__RULES",
        ]
    );
}

#[test]
fn a_syntax_error_is_one_located_problem() {
    let got = problems("[kafka]\nbrokers = [\"a:1\"\n", &[], &[]);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert!(got[0].starts_with("scorer.toml:2:"), "{got:#?}");
    assert!(got[0].contains("TOML syntax error"), "{got:#?}");
}

#[test]
fn problems_carry_their_origin() {
    let error = Config::load_str(FILE, "[kafka]\nbrokerz = 1\n", no_env(), &[]).unwrap_err();
    let ConfigError::Invalid(problems) = error else { panic!("{error}") };
    assert_eq!(problems[0].origin, Origin::File { file: FILE.to_owned(), line: 2, column: 1 });
    assert!(problems.iter().skip(1).all(|p| p.origin == Origin::Nowhere), "{problems:#?}");
}

#[test]
fn secrets_never_show() {
    let secrets = ["hunter2", "s3cr3t-redis", "keystore-pw", "oauth-secret", "pem-body"];
    let text = format!(
        "{}\n[kafka.properties]\n\"ssl.keystore.password\" = \"keystore-pw\"\n\"ssl.key.pem\" = \"pem-body\"\n",
        REQUIRED.replace("redis://127.0.0.1:6379/", "rediss://scorer:s3cr3t-redis@redis.internal:6380/0")
    );
    let config = load(
        &text,
        &[("LOYALTY_SCORER__KAFKA__PROPERTIES__SASL_PASSWORD", "hunter2")],
        &[("kafka.properties.sasl.oauthbearer.client.secret", "oauth-secret")],
    );
    for shown in [format!("{config:?}"), format!("{config:#?}"), config.redis.url.to_string()] {
        for secret in secrets {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
    assert!(format!("{config:?}").contains("rediss://scorer:***@redis.internal:6380/0"));
    assert_eq!(config.redis.url.expose(), "rediss://scorer:s3cr3t-redis@redis.internal:6380/0");

    // Problems about secret values do not show them either.
    let text = format!(
        "{}\n[kafka.properties]\n\"sasl.password\" = 5\n",
        REQUIRED.replace("redis://127.0.0.1:6379/", "redis://:s3cr3t-redis@h:notaport/")
    );
    let got = problems(&text, &[("LOYALTY_SCORER__KAFKA__PROPERTIES__SSL_KEY_PASSWORD", "hunter2")], &[]).join("\n");
    assert!(got.contains("kafka.properties.\"sasl.password\" = ***: expected a string"), "{got}");
    assert!(got.contains("redis.url = \"redis://:***@h:notaport/\""), "{got}");
    for secret in secrets {
        assert!(!got.contains(secret), "{secret} in {got}");
    }
}

#[test]
fn a_missing_file_is_an_io_error() {
    let error = Config::load(Some(Path::new("/nonexistent/scorer.toml")), no_env(), &[]).unwrap_err();
    assert!(matches!(error, ConfigError::Io { .. }), "{error}");
    assert!(error.to_string().contains("/nonexistent/scorer.toml"), "{error}");
}

/// Every file under `config/` passes its loader: the daemon's through
/// `Config::load` (and the rules files it names through the rules loader),
/// the rules files through `check-rules` in `tests/cli.rs`.
#[test]
fn every_file_under_config_is_valid() {
    let mut daemon_files = Vec::new();
    let mut pending = vec![root().join("config")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let relative = path.strip_prefix(root()).unwrap().to_path_buf();
            if path.is_dir() {
                pending.push(path);
            } else if relative.starts_with("config/rules") && path.extension().is_some_and(|e| e == "toml") {
                // Covered by `check_rules_accepts_every_config_file`.
            } else if relative.parent() == Some(Path::new("config")) && path.extension().is_some_and(|e| e == "toml") {
                daemon_files.push(path);
            } else {
                panic!("{} is under config/ but no test validates it", relative.display());
            }
        }
    }
    assert!(daemon_files.iter().any(|p| p.ends_with("config/scorer.toml")), "{daemon_files:?}");
    for file in daemon_files {
        let config = match Config::load(Some(&file), no_env(), &[]) {
            Ok(config) => config,
            Err(error) => panic!("{}:\n{error}", file.display()),
        };
        // Rules paths are relative to the working directory the daemon is
        // started in: the repository root for these examples.
        let rules: Vec<PathBuf> = config.programs.rules.iter().map(|p| root().join(p)).collect();
        load_programs(&rules).unwrap_or_else(|e| panic!("{}: {e:#}", file.display()));
    }
}

/// The example sets every key (or shows it commented out), and the
/// documentation names each with its variable.
#[test]
fn every_key_is_documented_and_in_the_example() {
    let docs = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    let example = std::fs::read_to_string(root().join("config/scorer.toml")).unwrap();
    for key in keys() {
        let (section, name) = key.split_once('.').unwrap();
        assert!(docs.contains(&format!("`{name}`")) && docs.contains(&format!("[{section}]")), "{key} in docs");
        assert!(docs.contains(&env_var(key)), "{} in docs", env_var(key));
        // Keys without a default (files to name) may be shown commented out.
        assert!(
            example.lines().any(|l| l.starts_with(&format!("{name} = ")) || l.starts_with(&format!("# {name} = "))),
            "{key} in config/scorer.toml"
        );
    }
}

#[test]
fn values_of_the_wrong_type_are_located() {
    let text = "kafka = 5\n\n[redis]\nurl = [\"redis://h:1/\"]\n\n[programs]\nrules = [\"a.toml\", 5]\n\n[kafka2]\n";
    let got = problems(text, &[], &[]);
    assert_eq!(
        got,
        [
            "scorer.toml:1:9: kafka = 5: expected a table; write the keys under [kafka]",
            "scorer.toml:4:7: redis.url = [\"redis://h:1/\"]: expected a string, found an array",
            "scorer.toml:7:20: programs.rules = [\"a.toml\", 5]: expected a list of strings, found an integer in the list",
            "scorer.toml:9:2: kafka2: unknown section (did you mean [kafka]?); the file takes the sections [kafka], [redis], [programs], [batching], [admin], [logging], [daemon]",
        ]
    );
}

#[test]
fn redis_tls_files_are_checked_against_each_other_and_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not checked here: the store parses it").unwrap();
    let ca = ca.display().to_string();
    let tls = REQUIRED.replace("redis://127.0.0.1:6379/", "rediss://127.0.0.1:6380/");

    let config = load(&tls, &[("LOYALTY_SCORER__REDIS__TLS_CA_FILE", &ca)], &[]);
    assert_eq!(config.redis.tls_ca_file.as_deref(), Some(Path::new(&ca)));
    assert_eq!(config.redis.tls_cert_file, None);

    let found = problems(&tls, &[], &[("redis.tls_cert_file", &ca)]);
    assert!(
        found.iter().any(|p| p.contains("redis.tls_cert_file") && p.contains("needs redis.tls_key_file")),
        "{found:?}"
    );

    let missing = dir.path().join("nowhere.pem").display().to_string();
    let found = problems(&tls, &[], &[("redis.tls_ca_file", &missing)]);
    assert!(found.iter().any(|p| p.contains("redis.tls_ca_file") && p.contains("cannot read")), "{found:?}");

    let found = problems(REQUIRED, &[], &[("redis.tls_ca_file", &ca)]);
    assert!(found.iter().any(|p| p.contains("redis.tls_ca_file") && p.contains("does not use TLS")), "{found:?}");
}

/// SASL/SCRAM over TLS, set in the file and the environment, reaches
/// librdkafka whole, and librdkafka (built with TLS and SCRAM) takes it.
#[test]
fn kafka_sasl_scram_over_tls_reaches_librdkafka() {
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::producer::BaseProducer;

    let text = format!(
        "{REQUIRED}\n[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"scorer\"\n"
    );
    let config = load(&text, &[("LOYALTY_SCORER__KAFKA__PROPERTIES__SASL_PASSWORD", "hunter2")], &[]);
    for client in
        [loyalty_scorer::kafka::consumer_config(&config.kafka), loyalty_scorer::kafka::producer_config(&config.kafka)]
    {
        assert_eq!(client.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(client.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(client.get("sasl.username"), Some("scorer"));
        assert_eq!(client.get("sasl.password"), Some("hunter2"));
    }
    loyalty_scorer::kafka::consumer_config(&config.kafka).create::<BaseConsumer>().expect("a SASL_SSL consumer");
    loyalty_scorer::kafka::producer_config(&config.kafka).create::<BaseProducer>().expect("a SASL_SSL producer");

    // A mechanism librdkafka does not know is refused when the client is made.
    let text = text.replace("SCRAM-SHA-512", "SCRAM-MD5");
    let config = load(&text, &[("LOYALTY_SCORER__KAFKA__PROPERTIES__SASL_PASSWORD", "hunter2")], &[]);
    let Err(error) = loyalty_scorer::kafka::consumer_config(&config.kafka).create::<BaseConsumer>() else {
        panic!("librdkafka took an unknown SASL mechanism");
    };
    assert!(
        error.to_string().contains("SCRAM-MD5") || error.to_string().to_lowercase().contains("mechanism"),
        "{error}"
    );
}
