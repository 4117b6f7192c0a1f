//! `loadtest drive`: the end-to-end load test. One invocation runs each
//! mode in turn against a real Kafka-protocol broker (Tansu) and a real
//! `redis-server`, and writes a report folder.
//!
//! ```text
//! check the configuration every mode loads (with --scorer-setting's keys)
//! generate the stream in memory, score it once to learn each line's output
//!   (with --duration: generate and score it in chunks as it is offered)
//! for each mode (passthrough, unbatched, scorer):
//!   fresh broker and Redis (or fresh topics and key prefix on the given ones)
//!   start the system under test, wait until it holds its partitions
//!   load producer --input topic--> system under test --outputs--> output reader
//!   meanwhile sample the daemon's RSS and Redis's used_memory
//!   until every expected output is read, or --max-seconds (after --duration)
//!   stop everything started for the mode
//! report.md, throughput.svg, latency.svg, rss.svg; a summary on standard output
//! ```
//!
//! Every process it starts is held by a guard that kills it when dropped,
//! so an error or Ctrl-C (turned into an error) leaves nothing behind. The
//! passthrough and the daemon modes load one configuration file each, that
//! differ only in names and batching: the same librdkafka properties.

mod daemon;
mod measure;
mod passthrough;
mod plot;
mod report;
mod sample;
mod services;
mod stream;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use loyalty_scorer::config::Config;

use self::measure::{Clock, Lines, Offer, Produced, Read, SentTimes};
use self::sample::Sample;
use self::services::{RedisServer, Tansu, Usage, usage};
use self::stream::{Awaits, Classifier, Index, OutputKind, Stream, Tally};

/// The example program the stream is generated for (`--rules` names another).
const ACME_RULES: &str = include_str!("../../../config/rules/acme.toml");

/// librdkafka properties of the generated configuration, for the
/// passthrough and the daemon alike; `--property` adds or replaces.
///
/// `fetch.wait.max.ms`: Tansu 0.6 holds a fetch for up to this long even
/// when records are waiting (at 10,000 events/s offered, the passthrough's
/// median latency was 456 ms with librdkafka's default of 500 ms and 44 ms
/// with 10 ms; unpaced, its rate went from 38,000 to 92,000 events/s). A
/// Kafka broker answers as soon as `fetch.min.bytes` (1) are there, so 10 ms
/// stands for what a consumer sees there.
const PROPERTIES: &[(&str, &str)] = &[("fetch.wait.max.ms", "10")];

/// Warm-up events per partition, and how long they may take to come through.
const WARM_UP_PER_PARTITION: usize = 4;
const WARM_UP_DEADLINE: Duration = Duration::from_secs(60);

/// The daemon's drain timeout at the end of a mode.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Keys the driver sets for each mode, and why: the topics it creates and
/// reads, the servers it starts, the rules it scores the stream with, the
/// port it watches.
const DRIVER_KEYS: &[(&str, &str)] = &[
    ("kafka.brokers", "pass --brokers to use others"),
    ("kafka.group_id", "each mode has a group of its own"),
    ("kafka.input_topic", "each mode has topics of its own"),
    ("kafka.rewards_topic", "each mode has topics of its own"),
    ("kafka.dead_letter_topic", "each mode has topics of its own"),
    ("redis.url", "pass --redis to use another"),
    ("redis.key_prefix", "each mode has a key prefix of its own"),
    ("programs.rules", "pass --rules to use others"),
    ("admin.listen", "on a free port, to tell when the daemon is ready"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// The scorer's Kafka clients and settings, no scoring: the ceiling.
    Passthrough,
    /// The daemon with batches of one event.
    Unbatched,
    /// The daemon with its configured batching.
    Scorer,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Passthrough => "passthrough",
            Mode::Unbatched => "unbatched",
            Mode::Scorer => "scorer",
        }
    }
}

#[derive(Debug, Args)]
pub struct Options {
    /// Events in the stream [default: 100000; 5000 with --smoke].
    #[arg(long)]
    pub events: Option<u64>,
    /// Events offered to the unbatched mode, the first of the stream [default: 5000, at most --events; 500 with --smoke].
    #[arg(long)]
    pub unbatched_events: Option<u64>,
    /// Offer --rate events/s to each mode for this long, a stream generated as it is offered (a soak run; the events are --rate x SECONDS).
    #[arg(long, value_name = "SECONDS", conflicts_with_all = ["events", "unbatched_events"])]
    pub duration: Option<u64>,
    /// Distinct members [default: 50000; 1000 with --smoke].
    #[arg(long)]
    pub members: Option<u32>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Events per second offered to each mode (0: as fast as the broker takes them).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Partitions of each topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// The modes to run, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "passthrough,unbatched,scorer")]
    pub modes: Vec<Mode>,
    /// A mode that has not read every expected output after this long (after --duration) is a timeout [default: 120; 10 with --smoke].
    #[arg(long)]
    pub max_seconds: Option<u64>,
    /// Exit 0 even when a mode timed out.
    #[arg(long)]
    pub allow_incomplete: bool,
    /// Use these brokers (host:port,...) instead of starting Tansu; topics get fresh names.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Use this Redis (redis://host:port/db) instead of starting redis-server; keys get a fresh prefix (and stay).
    #[arg(long)]
    pub redis: Option<String>,
    /// The loyalty-scorer binary [default: next to this program, release before debug].
    #[arg(long, value_name = "FILE")]
    pub scorer_bin: Option<PathBuf>,
    /// Rules file of the program [default: config/rules/acme.toml, built in].
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// A librdkafka property for the passthrough and the daemon alike (repeatable).
    #[arg(long = "property", value_name = "NAME=VALUE")]
    pub properties: Vec<String>,
    /// A key of the configuration every mode loads, e.g. batching.max_batch_events=256 (repeatable; the unbatched mode keeps max_batch_events = 1).
    #[arg(long = "scorer-setting", value_name = "SECTION.KEY=VALUE")]
    pub scorer_settings: Vec<String>,
    /// The report folder.
    #[arg(long, default_value = "target/loadtest")]
    pub out: PathBuf,
    /// The CI preset: 5000 events (500 unbatched), 1000 members, 10 s per mode.
    #[arg(long)]
    pub smoke: bool,
}

/// The options with the preset's defaults filled in.
#[derive(Debug, Clone)]
pub struct Plan {
    pub events: u64,
    pub unbatched_events: u64,
    /// Seconds of a soak run: the stream is generated as it is offered.
    pub duration: Option<u64>,
    pub members: u32,
    pub seed: u64,
    pub rate: u64,
    pub partitions: i32,
    pub modes: Vec<Mode>,
    pub max_seconds: u64,
    pub properties: Vec<(String, String)>,
    /// `--scorer-setting`s: (dotted key, value as given), the last of a key only.
    pub settings: Vec<(String, String)>,
}

impl Plan {
    fn from(options: &Options) -> anyhow::Result<Plan> {
        let events = match options.duration {
            Some(0) => bail!("--duration must be at least 1"),
            Some(_) if options.rate == 0 => bail!("--duration needs --rate: the events offered are rate x duration"),
            Some(seconds) => seconds.saturating_mul(options.rate),
            None => options.events.unwrap_or(if options.smoke { 5_000 } else { 100_000 }),
        };
        if events == 0 {
            bail!("--events must be at least 1");
        }
        // A line is numbered in 32 bits where outputs are matched.
        if events > u64::from(u32::MAX) {
            bail!("{events} events is more than a run can number ({})", u32::MAX);
        }
        if options.partitions < 1 {
            bail!("--partitions must be at least 1");
        }
        let mut properties: Vec<(String, String)> =
            PROPERTIES.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        for pair in &options.properties {
            let (name, value) =
                pair.split_once('=').with_context(|| format!("--property {pair:?}: expected NAME=VALUE"))?;
            match properties.iter_mut().find(|(k, _)| k == name) {
                Some(entry) => entry.1 = value.to_owned(),
                None => properties.push((name.to_owned(), value.to_owned())),
            }
        }
        let mut settings: Vec<(String, String)> = Vec::new();
        for pair in &options.scorer_settings {
            let (key, value) = scorer_setting(pair)?;
            settings.retain(|(k, _)| *k != key);
            settings.push((key, value));
        }
        let mut modes = options.modes.clone();
        modes.dedup();
        let unbatched_default = if options.duration.is_some() {
            events
        } else if options.smoke {
            500
        } else {
            5_000
        };
        Ok(Plan {
            events,
            unbatched_events: options.unbatched_events.unwrap_or(unbatched_default).clamp(1, events),
            duration: options.duration,
            members: options.members.unwrap_or(if options.smoke { 1_000 } else { 50_000 }),
            seed: options.seed,
            rate: options.rate,
            partitions: options.partitions,
            modes,
            max_seconds: options.max_seconds.unwrap_or(if options.smoke { 10 } else { 120 }),
            properties,
            settings,
        })
    }
}

/// `SECTION.KEY=VALUE` of `--scorer-setting`, as (dotted key, value). Which
/// keys exist is the configuration's to say (it is loaded before anything
/// starts); here only the shape, and the keys the driver sets itself.
fn scorer_setting(pair: &str) -> anyhow::Result<(String, String)> {
    let shape = || format!("--scorer-setting {pair:?}: expected SECTION.KEY=VALUE, e.g. batching.max_batch_events=256");
    let (key, value) = pair.split_once('=').with_context(shape)?;
    let key = key.trim();
    let (section, name) = key.split_once('.').with_context(shape)?;
    let bare = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if section == "kafka" && name.starts_with("properties.") {
        bail!("--scorer-setting {key}: a librdkafka property; pass --property {}=VALUE", &name["properties.".len()..]);
    }
    if !bare(section) || !bare(name) {
        bail!("{}", shape());
    }
    if let Some((_, why)) = DRIVER_KEYS.iter().find(|(k, _)| *k == key) {
        bail!("--scorer-setting {key}: the driver sets this key for each mode ({why})");
    }
    Ok((key.to_owned(), value.trim().to_owned()))
}

/// What one mode measured.
#[derive(Debug)]
pub struct Outcome {
    pub mode: Mode,
    /// Input lines offered.
    pub events: usize,
    /// Outputs awaited (rewards and dead letters; every line for the passthrough).
    pub expected: usize,
    pub produced: Produced,
    pub read: Read,
    /// From the first line produced to the last output read (or the timeout).
    pub seconds: f64,
    pub timed_out: bool,
    /// The system under test's memory and CPU when it was ready and when the
    /// last output arrived (the daemon modes).
    pub sut: Option<(Usage, Usage)>,
    /// CPU seconds over the mode, of each process that has a share.
    pub cpu: Vec<(&'static str, f64)>,
    /// From the first warm-up event produced to the last one's output read.
    pub warm_up_seconds: f64,
    /// How the daemon ended on SIGTERM.
    pub exit: Option<String>,
    /// The client settings the system under test was built with.
    pub consumer: Vec<(String, String)>,
    pub producer: Vec<(String, String)>,
    /// The batching the mode's configuration loaded as: max_batch_events,
    /// max_batch_wait_ms, max_in_flight_events.
    pub batching: (usize, u128, usize),
    /// Memory over the mode, from when it was warmed up to its last output.
    pub samples: Vec<Sample>,
    /// What was generated for the mode, when it was generated as offered.
    pub generated: Option<Tally>,
    /// The daemon's batch stages, scraped from its `/metrics` once the last
    /// output was read (the daemon modes).
    pub stages: Option<report::Stages>,
}

impl Outcome {
    pub fn complete(&self) -> bool {
        self.read.missing == 0 && !self.timed_out
    }

    /// From the first line produced to the broker's acknowledgement of the last.
    pub fn input_seconds(&self) -> f64 {
        self.produced.acked_us.saturating_sub(self.produced.first_us) as f64 / 1e6
    }

    /// Input events finished per second: every line offered when complete,
    /// else those whose outputs arrived.
    pub fn events_per_second(&self) -> f64 {
        let finished = if self.complete() { self.events } else { self.read.finished_us.len() };
        finished as f64 / self.seconds.max(1e-6)
    }
}

/// Everything about the run the report states besides the outcomes.
#[derive(Debug)]
pub struct Run {
    pub command_line: String,
    pub plan: Plan,
    pub scorer_bin: Option<PathBuf>,
    pub own_broker: bool,
    pub own_redis: bool,
    /// What the stream held (with --duration: what was generated of it).
    pub stream: Tally,
    pub load_average: String,
}

/// Where each mode's lines come from.
enum Source {
    /// Generated and classified once, offered to every mode.
    Whole(Arc<Stream>),
    /// Generated for each mode as it is offered.
    Chunks(Classifier),
}

pub fn main(options: &Options) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = runtime.block_on(async {
        tokio::select! {
            result = drive(options) => result,
            signal = tokio::signal::ctrl_c() => {
                signal.context("waiting for Ctrl-C")?;
                Err(anyhow::anyhow!("interrupted; stopping everything started"))
            }
        }
    });
    // The drive is dropped by now, and with it every guard: the processes
    // are gone and the producing and reading threads told to end.
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

async fn drive(options: &Options) -> anyhow::Result<()> {
    let plan = Plan::from(options)?;
    let needs_daemon = plan.modes.iter().any(|m| *m != Mode::Passthrough);
    let scorer_bin = if needs_daemon { Some(daemon::find_binary(options.scorer_bin.as_deref())?) } else { None };
    std::fs::create_dir_all(&options.out).with_context(|| format!("creating {}", options.out.display()))?;
    let out = options.out.canonicalize().with_context(|| format!("resolving {}", options.out.display()))?;
    let work = tempfile::Builder::new().prefix("loadtest-").tempdir().context("creating a temporary directory")?;
    let rules = match &options.rules {
        Some(path) => path.canonicalize().with_context(|| format!("--rules {}", path.display()))?,
        None => {
            let path = work.path().join("acme.toml");
            std::fs::write(&path, ACME_RULES).context("writing the rules file")?;
            path
        }
    };
    let run_id = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned();

    // The configuration every mode loads, checked before anything starts.
    let probe = write_config(
        work.path(),
        Mode::Scorer,
        &Names::new(run_id, Mode::Scorer),
        &Setup::placeholder(),
        &rules,
        &plan,
    )?;
    let config = match load_config(&probe) {
        Err(error) if !plan.settings.is_empty() => {
            bail!("the configuration with the --scorer-setting values does not load:\n{error:#}")
        }
        loaded => loaded?,
    };
    // The stream's expectations under that configuration.
    let classifier = Classifier::new(&config.programs.rules, config.engine_settings(), config.kafka.max_message_bytes)?;
    let started = Instant::now();
    let source = match plan.duration {
        Some(seconds) => {
            println!(
                "stream: {} events ({} events/s for {seconds} s), generated as offered in chunks of {}",
                plan.events,
                plan.rate,
                stream::CHUNK_LINES
            );
            Source::Chunks(classifier)
        }
        None => {
            let mut stream = Stream::generate(plan.events, plan.members, plan.seed)?;
            classifier.classify(&mut stream)?;
            let tally = stream.tally();
            println!(
                "stream: {} events, {:.1} MB, {}-{} bytes (mean {}); {} rewards, {} dead letters, {} anonymous expected ({:.1} s)",
                tally.lines,
                tally.bytes as f64 / 1e6,
                tally.smallest,
                tally.largest,
                tally.mean(),
                tally.rewards,
                tally.dead_letters,
                tally.anonymous,
                started.elapsed().as_secs_f64()
            );
            Source::Whole(Arc::new(stream))
        }
    };

    let mut outcomes = Vec::new();
    for &mode in &plan.modes {
        let dir = work.path().join(mode.name());
        std::fs::create_dir_all(&dir).context("creating a mode's directory")?;
        let setup = Setup::start(options, &dir)?;
        let names = Names::new(run_id, mode);
        let config_path = write_config(&dir, mode, &names, &setup, &rules, &plan)?;
        std::fs::copy(&config_path, out.join(format!("{}.toml", mode.name()))).context("copying the configuration")?;
        let config = load_config(&config_path)?;
        let lines = if mode == Mode::Unbatched { plan.unbatched_events } else { plan.events } as usize;
        println!("--- {} ({lines} events)", mode.name());
        let context = ModeContext {
            mode,
            plan: &plan,
            config: &config,
            config_path: &config_path,
            setup: &setup,
            names: &names,
            lines,
        };
        let outcome = run_mode(&context, &source, scorer_bin.as_deref(), &out).await?;
        println!("{}", report::one_line(&outcome));
        outcomes.push(outcome);
    }

    let stream = match &source {
        Source::Whole(stream) => Some(stream.tally()),
        // The same lines in every mode: the longest generation.
        Source::Chunks(_) => outcomes.iter().filter_map(|o| o.generated).max_by_key(|t| t.lines),
    };
    let run = Run {
        command_line: report::command_line(),
        plan: plan.clone(),
        scorer_bin: scorer_bin.clone(),
        own_broker: options.brokers.is_none(),
        own_redis: options.redis.is_none(),
        stream: stream.unwrap_or_default(),
        load_average,
    };
    report::write(&out, &run, &outcomes)?;
    println!();
    print!("{}", report::summary(&run, &outcomes));
    println!("report: {}", out.join("report.md").display());
    let incomplete: Vec<&str> = outcomes.iter().filter(|o| !o.complete()).map(|o| o.mode.name()).collect();
    if !incomplete.is_empty() && !options.allow_incomplete {
        bail!("outputs missing in {} (timed out); --allow-incomplete to accept", incomplete.join(", "));
    }
    Ok(())
}

/// The broker and Redis of a mode: started for it, or the user's.
#[derive(Debug)]
struct Setup {
    brokers: String,
    redis: String,
    tansu: Option<Tansu>,
    redis_server: Option<RedisServer>,
}

impl Setup {
    fn start(options: &Options, dir: &Path) -> anyhow::Result<Setup> {
        let tansu = match &options.brokers {
            Some(_) => None,
            None => Some(Tansu::start(dir)?),
        };
        let redis_server = match &options.redis {
            Some(_) => None,
            None => Some(RedisServer::start(dir)?),
        };
        Ok(Setup {
            brokers: options.brokers.clone().or_else(|| tansu.as_ref().map(Tansu::brokers)).unwrap_or_default(),
            redis: options.redis.clone().or_else(|| redis_server.as_ref().map(RedisServer::url)).unwrap_or_default(),
            tansu,
            redis_server,
        })
    }

    /// Addresses for a configuration that is only loaded, never run.
    fn placeholder() -> Setup {
        Setup {
            brokers: "127.0.0.1:9092".into(),
            redis: "redis://127.0.0.1:6379/".into(),
            tansu: None,
            redis_server: None,
        }
    }

    /// (name, pid) of the processes started for the mode.
    fn processes(&self) -> Vec<(&'static str, u32)> {
        let mut all = Vec::new();
        if let Some(t) = &self.tansu {
            all.push(("broker", t.process.pid()));
        }
        if let Some(r) = &self.redis_server {
            all.push(("redis", r.process.pid()));
        }
        all
    }
}

/// A mode's topics, consumer group and Redis key prefix: fresh for each run.
#[derive(Debug)]
struct Names {
    input: String,
    output: String,
    dead_letters: String,
    group: String,
    prefix: String,
}

impl Names {
    fn new(run: u64, mode: Mode) -> Names {
        let base = format!("lt-{run}-{}", mode.name());
        Names {
            input: format!("{base}-purchases"),
            output: format!("{base}-rewards"),
            dead_letters: format!("{base}-dead-letters"),
            group: format!("{base}-scorer"),
            prefix: base,
        }
    }
}

/// Writes the mode's configuration file.
fn write_config(
    dir: &Path,
    mode: Mode,
    names: &Names,
    setup: &Setup,
    rules: &Path,
    plan: &Plan,
) -> anyhow::Result<PathBuf> {
    // The admin port tells when the daemon is ready.
    let text = config_text(mode, names, setup, rules, plan, services::free_port()?);
    let path = dir.join("scorer.toml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The mode's configuration. The unbatched mode's differs in
/// `batching.max_batch_events` and `batching.lanes` only; keys not written have their defaults.
/// `--scorer-setting`s are written into their sections, over the driver's
/// values, except the unbatched mode's batch size.
fn config_text(mode: Mode, names: &Names, setup: &Setup, rules: &Path, plan: &Plan, admin_port: u16) -> String {
    let brokers: Vec<String> = setup.brokers.split(',').map(|b| quote(b.trim())).collect();
    let mut sections: Vec<(String, Vec<(String, String)>)> = vec![
        (
            "kafka".into(),
            vec![
                ("brokers".into(), format!("[{}]", brokers.join(", "))),
                ("group_id".into(), quote(&names.group)),
                ("input_topic".into(), quote(&names.input)),
                ("rewards_topic".into(), quote(&names.output)),
                ("dead_letter_topic".into(), quote(&names.dead_letters)),
            ],
        ),
        ("kafka.properties".into(), plan.properties.iter().map(|(k, v)| (quote(k), quote(v))).collect()),
        ("redis".into(), vec![("url".into(), quote(&setup.redis)), ("key_prefix".into(), quote(&names.prefix))]),
        (
            "programs".into(),
            vec![
                ("rules".into(), format!("[{}]", quote(&rules.to_string_lossy()))),
                ("reload_on_sighup".into(), "false".into()),
            ],
        ),
        ("admin".into(), vec![("listen".into(), format!("\"127.0.0.1:{admin_port}\""))]),
        ("logging".into(), vec![("level".into(), "\"warn\"".into())]),
        ("daemon".into(), vec![("shutdown_timeout_ms".into(), SHUTDOWN_TIMEOUT.as_millis().to_string())]),
    ];
    let mut set = |key: &str, value: String| {
        let Some((section, name)) = key.split_once('.') else { return };
        let index = match sections.iter().position(|(s, _)| *s == section) {
            Some(index) => index,
            None => {
                sections.push((section.to_owned(), Vec::new()));
                sections.len() - 1
            }
        };
        let keys = &mut sections[index].1;
        match keys.iter_mut().find(|(k, _)| k == name) {
            Some(entry) => entry.1 = value,
            None => keys.push((name.to_owned(), value)),
        }
    };
    for (key, value) in &plan.settings {
        set(key, toml_value(value));
    }
    if mode == Mode::Unbatched {
        // The naive design: one event, one round trip, one at a time.
        set("batching.max_batch_events", "1".into());
        set("batching.lanes", "1".into());
    }
    let mut text = String::from("# Generated by loadtest drive; the other keys have their defaults.\n");
    for (i, (section, keys)) in sections.iter().enumerate() {
        text.push_str(&format!("{}[{section}]\n", if i == 0 { "" } else { "\n" }));
        for (key, value) in keys {
            text.push_str(&format!("{key} = {value}\n"));
        }
    }
    text
}

/// A `--scorer-setting` value as TOML: as given when it is a number, a
/// boolean, a quoted string or an array; else the text as a string
/// (`logging.level=info`).
fn toml_value(text: &str) -> String {
    let literal = text.parse::<i64>().is_ok()
        || text.parse::<f64>().is_ok_and(f64::is_finite)
        || text == "true"
        || text == "false"
        || (text.len() >= 2 && text.starts_with('"') && text.ends_with('"'))
        || (text.starts_with('[') && text.ends_with(']'));
    if literal { text.to_owned() } else { quote(text) }
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The configuration as the daemon loads it: the file, then the environment.
/// Its errors name the file.
fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::load(Some(path), std::env::vars_os(), &[]).map_err(|e| anyhow::anyhow!("{e}"))
}

struct ModeContext<'a> {
    mode: Mode,
    plan: &'a Plan,
    config: &'a Config,
    config_path: &'a Path,
    setup: &'a Setup,
    names: &'a Names,
    lines: usize,
}

/// The system under test of a mode, running.
enum Sut {
    Passthrough(passthrough::Passthrough),
    Daemon(daemon::Daemon),
}

impl Sut {
    fn pid(&self) -> Option<u32> {
        match self {
            Sut::Passthrough(_) => None,
            Sut::Daemon(d) => Some(d.process.pid()),
        }
    }

    /// `Err` with the reason when it stopped by itself.
    fn check_alive(&mut self) -> anyhow::Result<()> {
        match self {
            Sut::Passthrough(p) if !p.is_running() => bail!("the passthrough loop stopped"),
            Sut::Passthrough(_) => Ok(()),
            Sut::Daemon(d) => match d.process.exited() {
                Some(status) => bail!("loyalty-scorer exited ({status}); its log:\n{}", services::tail(&d.log, 30)),
                None => Ok(()),
            },
        }
    }
}

/// Sets its flag when dropped: the mode's threads end with the mode,
/// whether it finishes, fails or is interrupted.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Waits for a thread without blocking the runtime.
async fn join<T>(thread: std::thread::JoinHandle<T>, name: &str) -> anyhow::Result<T> {
    while !thread.is_finished() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    thread.join().map_err(|_| anyhow::anyhow!("the {name} thread panicked"))
}

/// CPU seconds so far of the mode's own processes and of this one.
fn cpu_of(own: &[(&'static str, u32)], sut: Option<u32>) -> Vec<(&'static str, f64)> {
    let mut all: Vec<(&'static str, u32)> = sut.map(|pid| ("scorer", pid)).into_iter().collect();
    all.extend_from_slice(own);
    all.push(("driver", std::process::id()));
    all.into_iter().map(|(name, pid)| (name, usage(pid).map_or(0.0, |u| u.cpu_seconds))).collect()
}

async fn run_mode(
    cx: &ModeContext<'_>,
    source: &Source,
    scorer_bin: Option<&Path>,
    out: &Path,
) -> anyhow::Result<Outcome> {
    let brokers = cx.setup.brokers.as_str();
    let names = cx.names;
    let topics = [names.input.as_str(), names.output.as_str(), names.dead_letters.as_str()];
    services::create_topics(brokers, &topics, cx.plan.partitions).await?;

    let mut sut = match cx.mode {
        Mode::Passthrough => Sut::Passthrough(passthrough::Passthrough::start(cx.config)?),
        Mode::Unbatched | Mode::Scorer => {
            let binary = scorer_bin.context("no scorer binary")?;
            let log = out.join(format!("{}.log", cx.mode.name()));
            let mut daemon = daemon::Daemon::start(binary, cx.config_path, &log, cx.config.admin.listen.port())?;
            daemon.ready().await?;
            Sut::Daemon(daemon)
        }
    };
    if let Sut::Passthrough(p) = &sut {
        let readiness = p.readiness.clone();
        let deadline = Instant::now() + Duration::from_secs(60);
        while readiness.check().is_err() {
            sut.check_alive()?;
            if Instant::now() > deadline {
                bail!("the passthrough consumer got no partitions within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // The output reader first, so that it is fetching before the first line goes out.
    let (awaits, outputs) = match cx.mode {
        Mode::Passthrough => (Awaits::Passthrough, vec![(names.output.clone(), OutputKind::Echo)]),
        Mode::Unbatched | Mode::Scorer => (
            Awaits::Scorer,
            vec![(names.output.clone(), OutputKind::Reward), (names.dead_letters.clone(), OutputKind::Echo)],
        ),
    };
    let mode_stop = Arc::new(AtomicBool::new(false));
    let _stop_threads = StopOnDrop(mode_stop.clone());
    let (index, lines, generator) = match source {
        Source::Whole(stream) => (Index::whole(awaits, stream, cx.lines), Lines::Whole(stream.clone()), None),
        Source::Chunks(classifier) => {
            let (chunks, generator) =
                stream::spawn_chunks(cx.lines as u64, cx.plan.members, cx.plan.seed, classifier.clone())?;
            (Index::open(awaits), Lines::Chunks(chunks), Some(generator))
        }
    };
    let index = Arc::new(Mutex::new(index));
    let clock = Clock::start();
    let sent = Arc::new(SentTimes::new(cx.lines));
    let warmed = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (brokers, group, partitions) = (brokers.to_owned(), format!("{}-reader", names.prefix), cx.plan.partitions);
        let (index, sent, mode_stop, warmed) = (index.clone(), sent.clone(), mode_stop.clone(), warmed.clone());
        std::thread::Builder::new().name("output-reader".into()).spawn(move || {
            measure::read(&brokers, &group, &outputs, partitions, &index, &sent, clock, &mode_stop, &warmed)
        })
    }
    .context("starting the output reader")?;
    let own: Vec<(&'static str, u32)> = cx.setup.processes();
    let offer = Offer {
        topic: names.input.clone(),
        lines: cx.lines,
        rate: cx.plan.rate,
        warm_up: measure::warm_up_lines(WARM_UP_PER_PARTITION * cx.plan.partitions as usize),
    };
    let warm_up_events = offer.warm_up.len();
    let warm_up_started = Instant::now();
    let producer = {
        let brokers = brokers.to_owned();
        let (index, sent, mode_stop, warmed) = (index.clone(), sent.clone(), mode_stop.clone(), warmed.clone());
        std::thread::Builder::new()
            .name("load-producer".into())
            .spawn(move || measure::produce(&brokers, &offer, lines, &index, &sent, clock, &warmed, &mode_stop))
    }
    .context("starting the load producer")?;
    let deadline = warm_up_started + WARM_UP_DEADLINE;
    while warmed.load(Ordering::Relaxed) < warm_up_events {
        sut.check_alive()?;
        if reader.is_finished() || producer.is_finished() || Instant::now() > deadline {
            bail!(
                "{} of {warm_up_events} warm-up events came through within {WARM_UP_DEADLINE:?}",
                warmed.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let warm_up_seconds = warm_up_started.elapsed().as_secs_f64();
    let sut_before = sut.pid().and_then(usage);
    let cpu_before = cpu_of(&own, sut.pid());
    let redis_port = cx.setup.redis_server.as_ref().map(|r| r.port);
    let sampler = sample::spawn(sut.pid(), redis_port, clock, mode_stop.clone())?;

    let limit = cx.plan.duration.unwrap_or(0) + cx.plan.max_seconds;
    let deadline = Instant::now() + Duration::from_secs(limit);
    let mut timed_out = false;
    while !reader.is_finished() {
        if let Err(error) = sut.check_alive() {
            mode_stop.store(true, Ordering::Relaxed);
            return Err(error);
        }
        if Instant::now() > deadline {
            timed_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let sut_after = sut.pid().and_then(usage);
    let stages = match &sut {
        Sut::Daemon(d) => d.metrics().map(|body| report::Stages::parse(&body)),
        Sut::Passthrough(_) => None,
    };
    let cpu_after = cpu_of(&own, sut.pid());
    mode_stop.store(true, Ordering::Relaxed);
    let samples = join(sampler, "memory sampler").await?;
    let read = join(reader, "output reader").await??;
    let produced = join(producer, "load producer").await??;
    let generated = match generator {
        Some(generator) => Some(join(generator, "stream generator").await??),
        None => None,
    };

    let exit = match sut {
        Sut::Passthrough(p) => {
            p.stop().await?;
            None
        }
        Sut::Daemon(d) => Some(match d.stop(SHUTDOWN_TIMEOUT + Duration::from_secs(5)).await? {
            Some(status) if status.success() => "exit 0 on SIGTERM".to_owned(),
            Some(status) => format!("{status} on SIGTERM"),
            None => "did not stop within the drain timeout (killed)".to_owned(),
        }),
    };
    let end_us = if timed_out || read.missing > 0 {
        clock.now_us().min(produced.first_us + limit * 1_000_000)
    } else {
        read.finished_us.iter().copied().max().unwrap_or(produced.last_us)
    };
    let seconds = end_us.saturating_sub(produced.first_us) as f64 / 1e6;
    let cpu = cpu_before.iter().zip(&cpu_after).map(|((name, a), (_, b))| (*name, b - a)).collect();
    let kafka = &cx.config.kafka;
    let batching = &cx.config.batching;
    Ok(Outcome {
        mode: cx.mode,
        events: cx.lines,
        expected: read.awaited,
        produced,
        read,
        seconds,
        timed_out,
        sut: sut_before.zip(sut_after),
        cpu,
        warm_up_seconds,
        exit,
        consumer: report::settings(&loyalty_scorer::kafka::consumer_config(kafka)),
        producer: report::settings(&loyalty_scorer::kafka::producer_config(kafka)),
        batching: (batching.max_batch_events, batching.max_batch_wait.as_millis(), batching.max_in_flight_events),
        samples,
        generated,
        stages,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        options: Options,
    }

    fn plan(args: &[&str]) -> Plan {
        let cli = Cli::try_parse_from(std::iter::once("drive").chain(args.iter().copied())).expect("arguments");
        Plan::from(&cli.options).expect("plan")
    }

    #[test]
    fn presets_and_overrides() {
        let smoke = plan(&["--smoke"]);
        assert_eq!((smoke.events, smoke.unbatched_events, smoke.max_seconds), (5_000, 500, 10));
        assert_eq!(smoke.modes, [Mode::Passthrough, Mode::Unbatched, Mode::Scorer]);
        let given = plan(&["--smoke", "--events", "300", "--max-seconds", "30", "--modes", "scorer,passthrough"]);
        assert_eq!((given.events, given.unbatched_events, given.max_seconds), (300, 300, 30));
        assert_eq!(given.modes, [Mode::Scorer, Mode::Passthrough]);
        let full = plan(&["--property", "linger.ms=1", "--property", "fetch.wait.max.ms=20"]);
        assert_eq!((full.events, full.unbatched_events, full.max_seconds), (100_000, 5_000, 120));
        assert!(full.properties.contains(&("linger.ms".to_owned(), "1".to_owned())));
        let cli = Cli::try_parse_from(["drive", "--property", "linger.ms"]).expect("arguments");
        assert!(Plan::from(&cli.options).is_err(), "a property without a value");
    }

    #[test]
    fn soak_and_settings_options() {
        let soak = plan(&["--modes", "scorer", "--rate", "5000", "--duration", "600"]);
        assert_eq!((soak.events, soak.unbatched_events, soak.duration), (3_000_000, 3_000_000, Some(600)));
        let rejected = |args: &[&str]| {
            let cli = Cli::try_parse_from(std::iter::once("drive").chain(args.iter().copied()));
            match cli {
                Err(error) => error.to_string(),
                Ok(cli) => Plan::from(&cli.options).map(|_| String::new()).unwrap_or_else(|e| e.to_string()),
            }
        };
        assert!(rejected(&["--duration", "60"]).contains("needs --rate"));
        assert!(rejected(&["--duration", "60", "--rate", "10", "--events", "5"]).contains("cannot be used with"));
        assert!(rejected(&["--duration", "0", "--rate", "10"]).contains("at least 1"));

        let given = plan(&[
            "--scorer-setting",
            "batching.max_batch_events=256",
            "--scorer-setting",
            "logging.level = info",
            "--scorer-setting",
            "batching.max_batch_events=128",
        ]);
        assert_eq!(
            given.settings,
            [
                ("logging.level".to_owned(), "info".to_owned()),
                ("batching.max_batch_events".to_owned(), "128".to_owned())
            ]
        );
        for (arg, says) in [
            ("max_batch_events=256", "expected SECTION.KEY=VALUE"),
            ("batching.max_batch_events", "expected SECTION.KEY=VALUE"),
            ("batching.=1", "expected SECTION.KEY=VALUE"),
            ("kafka.properties.linger.ms=5", "--property linger.ms=VALUE"),
            ("kafka.input_topic=x", "the driver sets this key"),
            ("admin.listen=127.0.0.1:1", "the driver sets this key"),
        ] {
            let message = rejected(&["--scorer-setting", arg]);
            assert!(message.contains(says), "{arg}: {message}");
        }
    }

    /// `--scorer-setting` keys land in their sections, over the driver's
    /// values; the configuration's own check rejects keys it does not know.
    #[test]
    fn scorer_settings_are_written_and_checked() {
        let setup = Setup::placeholder();
        let rules = Path::new("/x/acme.toml");
        let load = |mode: Mode, plan: &Plan| {
            let text = config_text(mode, &Names::new(7, mode), &setup, rules, plan, 9_999);
            Config::load_str("test.toml", &text, std::iter::empty::<(String, String)>(), &[]).map_err(|e| e.to_string())
        };
        let given = plan(&[
            "--scorer-setting",
            "batching.max_batch_events=256",
            "--scorer-setting",
            "batching.max_batch_wait_ms=2",
            "--scorer-setting",
            "logging.level=info",
            "--scorer-setting",
            "daemon.shutdown_timeout_ms=4000",
            "--scorer-setting",
            "redis.retention_days=30",
        ]);
        let scorer = load(Mode::Scorer, &given).expect("the scorer's configuration");
        assert_eq!(scorer.batching.max_batch_events, 256);
        assert_eq!(scorer.batching.max_batch_wait, Duration::from_millis(2));
        assert_eq!(scorer.daemon.shutdown_timeout, Duration::from_millis(4_000));
        assert_eq!(scorer.redis.retention_days, 30);
        assert_eq!(scorer.logging.level.to_string(), "info");
        let unbatched = load(Mode::Unbatched, &given).expect("the unbatched configuration");
        assert_eq!(unbatched.batching.max_batch_events, 1);
        assert_eq!(unbatched.batching.lanes, 1);
        assert_eq!(unbatched.batching.max_batch_wait, Duration::from_millis(2));

        for (arg, says) in [
            ("batching.max_batch_evnts=4", "batching.max_batch_evnts"),
            ("tuning.lanes=4", "tuning"),
            ("batching.max_batch_events=many", "batching.max_batch_events"),
        ] {
            let message = load(Mode::Scorer, &plan(&["--scorer-setting", arg])).expect_err(arg);
            assert!(message.contains(says), "{arg}: {message}");
        }
    }

    /// The passthrough and the daemon modes load configurations whose
    /// client settings are the same but for the group, with the properties
    /// given; the unbatched one differs in its batch size and lanes only.
    #[test]
    fn modes_share_client_settings() {
        let plan = plan(&["--property", "linger.ms=2", "--property", "fetch.wait.max.ms=20"]);
        let setup = Setup { brokers: "127.0.0.1:1, 127.0.0.1:2".into(), ..Setup::placeholder() };
        let rules = Path::new("/x/acme \"rules\".toml");
        let load = |mode: Mode| {
            let text = config_text(mode, &Names::new(7, mode), &setup, rules, &plan, 9_999);
            Config::load_str("test.toml", &text, std::iter::empty::<(String, String)>(), &[])
                .unwrap_or_else(|e| panic!("{text}\n{e}"))
        };
        let (passthrough, unbatched, scorer) = (load(Mode::Passthrough), load(Mode::Unbatched), load(Mode::Scorer));
        assert_eq!(unbatched.batching.max_batch_events, 1);
        assert_eq!(unbatched.batching.lanes, 1);
        assert_eq!(scorer.batching.max_batch_events, passthrough.batching.max_batch_events);
        assert!(scorer.batching.max_batch_events > 1);
        assert_eq!(scorer.programs.rules, [rules.to_path_buf()]);
        assert_eq!(scorer.kafka.brokers, ["127.0.0.1:1", "127.0.0.1:2"]);
        assert_ne!(scorer.kafka.input_topic, passthrough.kafka.input_topic);
        let without_group = |c: &Config| {
            let mut consumer = report::settings(&loyalty_scorer::kafka::consumer_config(&c.kafka));
            consumer.retain(|(k, _)| k != "group.id");
            (consumer, report::settings(&loyalty_scorer::kafka::producer_config(&c.kafka)))
        };
        let (consumer, producer) = without_group(&scorer);
        assert_eq!(without_group(&passthrough), (consumer.clone(), producer.clone()));
        assert_eq!(without_group(&unbatched), (consumer.clone(), producer.clone()));
        assert!(producer.contains(&("linger.ms".to_owned(), "2".to_owned())), "{producer:?}");
        assert!(consumer.contains(&("fetch.wait.max.ms".to_owned(), "20".to_owned())), "{consumer:?}");
        assert!(consumer.contains(&("enable.auto.offset.store".to_owned(), "false".to_owned())));
    }

    /// An outcome as a mode would give: `n` outputs 1 ms apart, latencies 1 to n ms.
    pub(super) fn outcome(mode: Mode, n: usize, complete: bool) -> Outcome {
        let mut latency = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("histogram");
        for i in 1..=n as u64 {
            latency.record(i * 1_000).expect("record");
        }
        let finished_us: Vec<u64> = (1..=n as u64).map(|i| 500_000 + (i - 1) * 1_000 + 500).collect();
        let missing = if complete { 0 } else { 100 };
        Outcome {
            mode,
            events: n + missing,
            expected: n + missing,
            produced: Produced { sent: n, failed: 0, first_us: 500_000, last_us: 600_000, acked_us: 700_000 },
            read: Read { latency, finished_us, extra: 0, missing, awaited: n + missing },
            seconds: n as f64 / 1000.0,
            timed_out: !complete,
            sut: None,
            cpu: vec![("broker", 1.5), ("driver", 0.5)],
            warm_up_seconds: 0.5,
            exit: None,
            consumer: vec![("group.id".into(), "g".into())],
            producer: vec![("sasl.password".into(), "***".into())],
            batching: (if mode == Mode::Unbatched { 1 } else { 512 }, 5, 2_048),
            samples: Vec::new(),
            generated: None,
            stages: None,
        }
    }

    #[test]
    fn report_states_timeouts_and_ratios() {
        let outcomes = [
            outcome(Mode::Passthrough, 4_000, true),
            outcome(Mode::Unbatched, 50, false),
            Outcome {
                stages: Some(report::Stages { stages: vec![("gather".into(), 0.012, 4.0)], events: (1_200.0, 4.0) }),
                ..outcome(Mode::Scorer, 2_000, true)
            },
        ];
        let run = Run {
            command_line: "loadtest drive --smoke".into(),
            plan: plan(&["--smoke"]),
            scorer_bin: Some(PathBuf::from("/t/release/loyalty-scorer")),
            own_broker: true,
            own_redis: false,
            stream: Tally {
                lines: 5_000,
                bytes: 2_600_000,
                smallest: 80,
                largest: 1700,
                rewards: 4_790,
                dead_letters: 48,
                anonymous: 162,
            },
            load_average: "0.5 0.5 0.5".into(),
        };
        let text = report::markdown(&run, &outcomes);
        assert!(text.contains("loadtest drive --smoke"));
        assert!(text.contains("**50 of 150: timed out**"), "{text}");
        assert!(text.contains("(release build)"));
        // Both completed in 1 ms per output, offered 4000 and 2000 events.
        assert!(text.contains("scorer / passthrough events/s: **1.00**"), "{text}");
        assert!(text.contains("sasl.password = ***"));
        assert!(text.contains("| scorer | gather | 3.00 | 4 |\n| scorer | events a batch | 300.0 | 4 |"), "{text}");
        assert!(!text.contains("| unbatched | gather"), "a mode without stages has no rows: {text}");
        let summary = report::summary(&run, &outcomes);
        assert!(summary.contains("unbatched timed out: 50 of 150 outputs"), "{summary}");
        assert!(!summary.contains("far below"), "{summary}");
        let slow =
            [outcome(Mode::Passthrough, 4_000, true), Outcome { seconds: 10.0, ..outcome(Mode::Scorer, 4_000, true) }];
        assert!(report::summary(&run, &slow).contains("The scorer is far below the passthrough: 40%"));
    }

    /// A soak's report: the settings given, and each memory series reduced.
    #[test]
    fn report_states_settings_and_memory() {
        const MIB: u64 = 1 << 20;
        let soak = plan(&["--rate", "1000", "--duration", "300", "--scorer-setting", "batching.max_batch_events=256"]);
        let run = Run {
            command_line: "loadtest drive".into(),
            plan: soak,
            scorer_bin: None,
            own_broker: true,
            own_redis: true,
            stream: Tally::default(),
            load_average: String::new(),
        };
        let mut scorer = outcome(Mode::Scorer, 1_000, true);
        scorer.batching.0 = 256;
        // Every 2 s for 300 s from the first event: the daemon flat at 40 MiB,
        // Redis growing by 1 MiB a minute.
        scorer.samples = (0..=150u64)
            .map(|k| Sample {
                at_us: scorer.produced.first_us + k * 2_000_000,
                rss: Some(40 * MIB),
                redis: Some(10 * MIB + k * 2 * MIB / 60),
                driver_rss: Some(30 * MIB),
            })
            .collect();
        let outcomes = [outcome(Mode::Passthrough, 1_000, true), scorer];
        let text = report::markdown(&run, &outcomes);
        assert!(text.contains("`batching.max_batch_events = 256`"), "{text}");
        assert!(text.contains("| `batching.max_batch_events` (given) | 512 | 256 |"), "{text}");
        assert!(
            text.contains("| scorer | daemon RSS | 40.0 (at 60 s) | 40.0 (at 300 s) | 40.0 | +0.00 MiB/min | 151 |")
        );
        assert!(
            text.contains("| scorer | Redis used_memory | 11.0 (at 60 s) | 15.0 (at 300 s) | 15.0 | +1.00 MiB/min |")
        );
        assert!(text.contains("![memory](rss.svg)"));
        let summary = report::summary(&run, &outcomes);
        assert!(summary.contains("scorer RSS: 40.0 MiB at 60 s, 40.0 MiB at the end (300 s)"), "{summary}");
        let csv = report::memory_csv(&outcomes);
        assert_eq!(csv.lines().count(), 1 + 151, "a header and the scorer's samples only");
        assert!(csv.contains(&format!("\nscorer,60.000,{},{},{}\n", 40 * MIB, 11 * MIB, 30 * MIB)), "{csv}");
        let svg = plot::memory(&outcomes).expect("memory plot");
        assert!(svg.contains("scorer RSS") && svg.contains("scorer Redis used_memory") && !svg.contains("passthrough"));
    }

    #[test]
    fn plots_name_every_mode() {
        let outcomes = [outcome(Mode::Passthrough, 3_000, true), outcome(Mode::Scorer, 1_000, false)];
        let throughput = plot::throughput(&outcomes).expect("throughput plot");
        let latency = plot::latency(&outcomes).expect("latency plot");
        for svg in [&throughput, &latency] {
            assert!(svg.starts_with("<svg") && svg.contains("passthrough") && svg.contains("scorer"));
        }
        assert!(latency.contains("99.9%"), "the percentile axis is labelled");
        // 1 ms apart: 1000 outputs per second in every window but the last.
        let points = plot::per_window(&outcomes[0], plot::window_seconds(&outcomes));
        assert_eq!(points.len(), 30);
        assert!(points.iter().all(|(_, rate)| (*rate - 1000.0).abs() < 1e-6), "{points:?}");
    }
}
