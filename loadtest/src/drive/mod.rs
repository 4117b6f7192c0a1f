//! `loadtest drive`: the end-to-end load test. One invocation runs each
//! mode in turn against a real Kafka-protocol broker (Tansu) and a real
//! `redis-server`, and writes a report folder.
//!
//! ```text
//! generate the stream in memory, score it once to learn each line's output
//! for each mode (passthrough, unbatched, scorer):
//!   fresh broker and Redis (or fresh topics and key prefix on the given ones)
//!   start the system under test, wait until it holds its partitions
//!   load producer --input topic--> system under test --outputs--> output reader
//!   until every expected output is read, or --max-seconds
//!   stop everything started for the mode
//! report.md, throughput.svg, latency.svg; a summary on standard output
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
mod services;
mod stream;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use loyalty_scorer::config::Config;

use self::measure::{Clock, Offer, Produced, Read, SentTimes};
use self::services::{RedisServer, Tansu, Usage, usage};
use self::stream::{Index, OutputKind, Stream};

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
    /// A mode that has not read every expected output after this long is a timeout [default: 120; 10 with --smoke].
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
    pub members: u32,
    pub seed: u64,
    pub rate: u64,
    pub partitions: i32,
    pub modes: Vec<Mode>,
    pub max_seconds: u64,
    pub properties: Vec<(String, String)>,
}

impl Plan {
    fn from(options: &Options) -> anyhow::Result<Plan> {
        let events = options.events.unwrap_or(if options.smoke { 5_000 } else { 100_000 });
        if events == 0 {
            bail!("--events must be at least 1");
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
        let mut modes = options.modes.clone();
        modes.dedup();
        Ok(Plan {
            events,
            unbatched_events: options
                .unbatched_events
                .unwrap_or(if options.smoke { 500 } else { 5_000 })
                .clamp(1, events),
            members: options.members.unwrap_or(if options.smoke { 1_000 } else { 50_000 }),
            seed: options.seed,
            rate: options.rate,
            partitions: options.partitions,
            modes,
            max_seconds: options.max_seconds.unwrap_or(if options.smoke { 10 } else { 120 }),
            properties,
        })
    }
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
    pub stream_sizes: (usize, usize, usize),
    pub expected: (usize, usize, usize),
    pub load_average: String,
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

    let started = Instant::now();
    let mut stream = Stream::generate(plan.events, plan.members, plan.seed)?;
    // The stream's expectations under the configuration every mode loads.
    let probe = write_config(
        work.path(),
        Mode::Scorer,
        &Names::new(run_id, Mode::Scorer),
        &Setup::placeholder(),
        &rules,
        &plan,
    )?;
    let config = load_config(&probe)?;
    stream.classify(&config.programs.rules, config.engine_settings(), config.kafka.max_message_bytes)?;
    let expected = (
        stream.count(|e| matches!(e, stream::Expect::Reward(_))),
        stream.count(|e| *e == stream::Expect::DeadLetter),
        stream.count(|e| *e == stream::Expect::Nothing),
    );
    let (min, mean, max) = stream.sizes();
    let stream = Arc::new(stream);
    println!(
        "stream: {} events, {:.1} MB, {min}-{max} bytes (mean {mean}); {} rewards, {} dead letters, {} anonymous expected ({:.1} s)",
        stream.len(),
        stream.bytes_total() as f64 / 1e6,
        expected.0,
        expected.1,
        expected.2,
        started.elapsed().as_secs_f64()
    );
    let run = Run {
        command_line: report::command_line(),
        plan: plan.clone(),
        scorer_bin: scorer_bin.clone(),
        own_broker: options.brokers.is_none(),
        own_redis: options.redis.is_none(),
        stream_sizes: (min, mean, max),
        expected,
        load_average: std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned(),
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
        let lines = if mode == Mode::Unbatched { plan.unbatched_events as usize } else { stream.len() };
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
        let outcome = run_mode(&context, &stream, scorer_bin.as_deref(), &out).await?;
        println!("{}", report::one_line(&outcome));
        outcomes.push(outcome);
    }

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
/// `batching.max_batch_events` only; keys not written have their defaults.
fn config_text(mode: Mode, names: &Names, setup: &Setup, rules: &Path, plan: &Plan, admin_port: u16) -> String {
    let brokers: Vec<String> = setup.brokers.split(',').map(|b| quote(b.trim())).collect();
    let mut text = String::from("# Generated by loadtest drive; the other keys have their defaults.\n[kafka]\n");
    text.push_str(&format!("brokers = [{}]\n", brokers.join(", ")));
    text.push_str(&format!("group_id = {}\n", quote(&names.group)));
    text.push_str(&format!("input_topic = {}\n", quote(&names.input)));
    text.push_str(&format!("rewards_topic = {}\n", quote(&names.output)));
    text.push_str(&format!("dead_letter_topic = {}\n", quote(&names.dead_letters)));
    text.push_str("\n[kafka.properties]\n");
    for (name, value) in &plan.properties {
        text.push_str(&format!("{} = {}\n", quote(name), quote(value)));
    }
    text.push_str(&format!("\n[redis]\nurl = {}\nkey_prefix = {}\n", quote(&setup.redis), quote(&names.prefix)));
    text.push_str(&format!("\n[programs]\nrules = [{}]\nreload_on_sighup = false\n", quote(&rules.to_string_lossy())));
    text.push_str(&format!("\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n"));
    text.push_str("\n[logging]\nlevel = \"warn\"\n");
    text.push_str(&format!("\n[daemon]\nshutdown_timeout_ms = {}\n", SHUTDOWN_TIMEOUT.as_millis()));
    if mode == Mode::Unbatched {
        text.push_str("\n[batching]\nmax_batch_events = 1\n");
    }
    text
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The configuration as the daemon loads it: the file, then the environment.
fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::load(Some(path), std::env::vars_os(), &[]).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
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
    stream: &Arc<Stream>,
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
    let (index, outputs) = match cx.mode {
        Mode::Passthrough => (Index::passthrough(stream, cx.lines), vec![(names.output.clone(), OutputKind::Echo)]),
        Mode::Unbatched | Mode::Scorer => (
            Index::scorer(stream, cx.lines),
            vec![(names.output.clone(), OutputKind::Reward), (names.dead_letters.clone(), OutputKind::Echo)],
        ),
    };
    let expected = index.expected;
    let clock = Clock::start();
    let sent = Arc::new(SentTimes::new(stream.len()));
    let mode_stop = Arc::new(AtomicBool::new(false));
    let _stop_threads = StopOnDrop(mode_stop.clone());
    let warmed = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (brokers, group, partitions) = (brokers.to_owned(), format!("{}-reader", names.prefix), cx.plan.partitions);
        let (sent, mode_stop, warmed) = (sent.clone(), mode_stop.clone(), warmed.clone());
        std::thread::Builder::new().name("output-reader".into()).spawn(move || {
            measure::read(&brokers, &group, &outputs, partitions, index, &sent, clock, &mode_stop, &warmed)
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
        let (sent, mode_stop, stream, warmed) = (sent.clone(), mode_stop.clone(), stream.clone(), warmed.clone());
        std::thread::Builder::new()
            .name("load-producer".into())
            .spawn(move || measure::produce(&brokers, &offer, &stream, &sent, clock, &warmed, &mode_stop))
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

    let deadline = Instant::now() + Duration::from_secs(cx.plan.max_seconds);
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
    let cpu_after = cpu_of(&own, sut.pid());
    mode_stop.store(true, Ordering::Relaxed);
    let read = join(reader, "output reader").await??;
    let produced = join(producer, "load producer").await??;

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
        clock.now_us().min(produced.first_us + cx.plan.max_seconds * 1_000_000)
    } else {
        read.finished_us.iter().copied().max().unwrap_or(produced.last_us)
    };
    let seconds = end_us.saturating_sub(produced.first_us) as f64 / 1e6;
    let cpu = cpu_before.iter().zip(&cpu_after).map(|((name, a), (_, b))| (*name, b - a)).collect();
    let kafka = &cx.config.kafka;
    Ok(Outcome {
        mode: cx.mode,
        events: cx.lines,
        expected,
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

    /// The passthrough and the daemon modes load configurations whose
    /// client settings are the same but for the group, with the properties
    /// given; the unbatched one differs in its batch size only.
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
            read: Read { latency, finished_us, extra: 0, missing },
            seconds: n as f64 / 1000.0,
            timed_out: !complete,
            sut: None,
            cpu: vec![("broker", 1.5), ("driver", 0.5)],
            warm_up_seconds: 0.5,
            exit: None,
            consumer: vec![("group.id".into(), "g".into())],
            producer: vec![("sasl.password".into(), "***".into())],
        }
    }

    #[test]
    fn report_states_timeouts_and_ratios() {
        let outcomes = [
            outcome(Mode::Passthrough, 4_000, true),
            outcome(Mode::Unbatched, 50, false),
            outcome(Mode::Scorer, 2_000, true),
        ];
        let run = Run {
            command_line: "loadtest drive --smoke".into(),
            plan: plan(&["--smoke"]),
            scorer_bin: Some(PathBuf::from("/t/release/loyalty-scorer")),
            own_broker: true,
            own_redis: false,
            stream_sizes: (80, 520, 1700),
            expected: (4_790, 48, 162),
            load_average: "0.5 0.5 0.5".into(),
        };
        let text = report::markdown(&run, &outcomes);
        assert!(text.contains("loadtest drive --smoke"));
        assert!(text.contains("**50 of 150: timed out**"), "{text}");
        assert!(text.contains("(release build)"));
        // Both completed in 1 ms per output, offered 4000 and 2000 events.
        assert!(text.contains("scorer / passthrough events/s: **1.00**"), "{text}");
        assert!(text.contains("sasl.password = ***"));
        let summary = report::summary(&run, &outcomes);
        assert!(summary.contains("unbatched timed out: 50 of 150 outputs"), "{summary}");
        assert!(!summary.contains("far below"), "{summary}");
        let slow =
            [outcome(Mode::Passthrough, 4_000, true), Outcome { seconds: 10.0, ..outcome(Mode::Scorer, 4_000, true) }];
        assert!(report::summary(&run, &slow).contains("The scorer is far below the passthrough: 40%"));
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
