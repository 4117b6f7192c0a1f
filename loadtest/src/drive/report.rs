//! The report folder: `report.md` (machine, command, scorer and client
//! settings, one row per mode, ratios, memory over time), the plots
//! (`plot`), and the summary printed at the end. Secrets of the client
//! settings are shown as `***`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::Context;
use loyalty_scorer::config::is_secret_property;
use loyalty_scorer::telemetry::metric::{self, BatchStage};
use rdkafka::config::ClientConfig;

use super::sample::{self, Trend};
use super::{Mode, Outcome, Run, plot};

/// The client settings as configured, sorted; the brokers' address (a
/// loopback port) left out, secrets redacted.
pub fn settings(config: &ClientConfig) -> Vec<(String, String)> {
    config
        .config_map()
        .into_iter()
        .filter(|(k, _)| *k != "bootstrap.servers")
        .map(|(k, v)| (k.to_owned(), if is_secret_property(k) { "***".to_owned() } else { v.to_owned() }))
        .collect()
}

fn ms(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms >= 100.0 { format!("{ms:.0}") } else { format!("{ms:.1}") }
}

fn mib(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / (1 << 20) as f64)
}

/// p50, p90, p99, p99.9 and max, in ms.
fn percentiles(o: &Outcome) -> [String; 5] {
    let h = &o.read.latency;
    if h.is_empty() {
        return std::array::from_fn(|_| "-".to_owned());
    }
    [
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
    ]
}

fn outputs_cell(o: &Outcome) -> String {
    let got = o.read.finished_us.len();
    if o.complete() { format!("{got}") } else { format!("**{got} of {}: timed out**", o.expected) }
}

/// The line printed when a mode ends.
pub fn one_line(o: &Outcome) -> String {
    let [p50, p90, p99, _, max] = percentiles(o);
    let status = if o.complete() {
        "complete".to_owned()
    } else {
        format!("TIMED OUT: {} of {} outputs", o.read.finished_us.len(), o.expected)
    };
    format!(
        "  {}: {} events in {:.2} s, {:.0} events/s (input acknowledged in {:.2} s); latency p50 {p50} ms, p90 {p90} ms, p99 {p99} ms, max {max} ms; {status}",
        o.mode.name(),
        o.events,
        o.seconds,
        o.events_per_second(),
        o.input_seconds()
    )
}

fn find(outcomes: &[Outcome], mode: Mode) -> Option<&Outcome> {
    outcomes.iter().find(|o| o.mode == mode)
}

/// (label, value) of scorer/passthrough and scorer/unbatched, when measured.
fn ratios(outcomes: &[Outcome]) -> Vec<(String, f64)> {
    let mut all = Vec::new();
    let Some(scorer) = find(outcomes, Mode::Scorer) else { return all };
    for base in [Mode::Passthrough, Mode::Unbatched] {
        if let Some(b) = find(outcomes, base) {
            all.push((
                format!("scorer / {} events/s", base.name()),
                scorer.events_per_second() / b.events_per_second(),
            ));
            // Offered fewer events, a mode queues less: its latency is not comparable.
            if b.events == scorer.events && !scorer.read.latency.is_empty() && !b.read.latency.is_empty() {
                let p99 = |o: &Outcome| o.read.latency.value_at_quantile(0.99) as f64;
                all.push((format!("scorer / {} p99 latency", base.name()), p99(scorer) / p99(b)));
            }
        }
    }
    all
}

/// The table of modes, in Markdown.
fn table(outcomes: &[Outcome]) -> String {
    let mut t = String::from(
        "| mode | events | outputs read | seconds | events/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | RSS start MiB | RSS end MiB | peak RSS MiB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for o in outcomes {
        let [p50, p90, p99, p999, max] = percentiles(o);
        let (start, end, peak) = match &o.sut {
            Some((a, b)) => (mib(a.rss), mib(b.rss), mib(b.peak_rss)),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {:.2} | {:.0} | {p50} | {p90} | {p99} | {p999} | {max} | {start} | {end} | {peak} |",
            o.mode.name(),
            o.events,
            outputs_cell(o),
            o.seconds,
            o.events_per_second(),
        );
    }
    t
}

/// The summary printed at the end: the table, the ratios, the verdicts.
pub fn summary(run: &Run, outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    let rate =
        if run.plan.rate == 0 { "as fast as possible".to_owned() } else { format!("{} events/s", run.plan.rate) };
    let _ = writeln!(
        s,
        "{:<12} {:>8} {:>10} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8}  RSS MiB",
        "mode", "events", "events/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "outputs"
    );
    for o in outcomes {
        let [p50, p90, p99, p999, max] = percentiles(o);
        let rss = o.sut.as_ref().map_or("-".to_owned(), |(a, b)| format!("{} -> {}", mib(a.rss), mib(b.rss)));
        let outputs =
            if o.complete() { "all".to_owned() } else { format!("{}/{}", o.read.finished_us.len(), o.expected) };
        let _ = writeln!(
            s,
            "{:<12} {:>8} {:>10.0} {p50:>9} {p90:>8} {p99:>8} {p999:>8} {max:>9} {outputs:>8}  {rss}",
            o.mode.name(),
            o.events,
            o.events_per_second()
        );
    }
    for (label, value) in ratios(outcomes) {
        let _ = writeln!(s, "{label}: {value:.2}");
    }
    for o in outcomes.iter().filter(|_| run.plan.duration.is_some()) {
        let first = o.produced.first_us;
        if let Some(t) = sample::trend(&sample::series(&o.samples, first, |x| x.rss)) {
            let redis = sample::trend(&sample::series(&o.samples, first, |x| x.redis))
                .map_or(String::new(), |r| format!("; Redis used_memory {} -> {} MiB", mib1(r.settled), mib1(r.end)));
            let _ = writeln!(
                s,
                "{} RSS: {} MiB at {} s, {} MiB at the end ({} s), peak {} MiB, slope {} over the second half{redis}",
                o.mode.name(),
                mib1(t.settled),
                secs(t.settled_at),
                mib1(t.end),
                secs(t.end_at),
                mib1(t.peak),
                slope_text(&t)
            );
        }
    }
    let duration = run.plan.duration.map_or(String::new(), |d| format!(" for {d} s"));
    let _ = writeln!(s, "offered: {rate}{duration}, {} partitions", run.plan.partitions);
    for line in verdicts(outcomes) {
        let _ = writeln!(s, "{line}");
    }
    s
}

/// Sentences that say what the figures mean when it is not flattering.
fn verdicts(outcomes: &[Outcome]) -> Vec<String> {
    let mut lines = Vec::new();
    for o in outcomes.iter().filter(|o| !o.complete()) {
        lines.push(format!(
            "{} timed out: {} of {} outputs after {:.0} s; its events/s counts only the events whose outputs arrived.",
            o.mode.name(),
            o.read.finished_us.len(),
            o.expected,
            o.seconds
        ));
    }
    if let (Some(s), Some(p)) = (find(outcomes, Mode::Scorer), find(outcomes, Mode::Passthrough)) {
        let r = s.events_per_second() / p.events_per_second();
        if r < 0.5 {
            lines.push(format!(
                "The scorer is far below the passthrough: {:.0}% of the rate the broker and the same clients allow here.",
                r * 100.0
            ));
        }
    }
    for o in outcomes.iter().filter(|o| o.complete() && o.seconds < o.input_seconds() * 1.2) {
        lines.push(format!(
            "{} kept up with the load producer (its last output came within 20% of the time the input took to be acknowledged): its rate is a lower bound of what it can do.",
            o.mode.name()
        ));
    }
    for o in outcomes.iter().filter(|o| o.read.extra > 0) {
        lines.push(format!("{}: {} outputs read twice (redelivered).", o.mode.name(), o.read.extra));
    }
    for o in outcomes.iter().filter(|o| o.produced.failed > 0) {
        lines.push(format!(
            "{}: {} input records were not acknowledged by the broker.",
            o.mode.name(),
            o.produced.failed
        ));
    }
    lines
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or_default().trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown".to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or_else(|| "unknown".to_owned(), |kib| format!("{:.1} GiB", kib as f64 / (1 << 20) as f64));
    let nproc = first_line("nproc", &[]);
    format!("{nproc} CPUs (nproc), {model}, {memory} of memory")
}

fn settings_block(s: &mut String, title: &str, settings: &[(String, String)]) {
    let _ = writeln!(s, "{title}:\n\n```");
    for (k, v) in settings {
        let _ = writeln!(s, "{k} = {v}");
    }
    let _ = writeln!(s, "```\n");
}

/// Writes `report.md`, `throughput.svg`, `latency.svg` and, when a daemon
/// ran, `rss.svg` and `memory.csv` into `out`.
pub fn write(out: &Path, run: &Run, outcomes: &[Outcome]) -> anyhow::Result<()> {
    std::fs::write(out.join("throughput.svg"), plot::throughput(outcomes)?).context("writing throughput.svg")?;
    std::fs::write(out.join("latency.svg"), plot::latency(outcomes)?).context("writing latency.svg")?;
    if has_memory(outcomes) {
        std::fs::write(out.join("rss.svg"), plot::memory(outcomes)?).context("writing rss.svg")?;
        std::fs::write(out.join("memory.csv"), memory_csv(outcomes)).context("writing memory.csv")?;
    }
    std::fs::write(out.join("report.md"), markdown(run, outcomes)).context("writing report.md")?;
    Ok(())
}

/// `report.md`.
pub fn markdown(run: &Run, outcomes: &[Outcome]) -> String {
    let mut s = String::from("# loyalty-scorer load test\n\n");
    let _ = writeln!(s, "```\n{}\n```\n", run.command_line);
    let _ = writeln!(s, "## Machine\n");
    let _ = writeln!(s, "- {}", machine());
    let _ = writeln!(
        s,
        "- load average when the run started: {} (other work on the machine shares its cores)",
        run.load_average
    );
    let broker = if run.own_broker {
        format!(
            "{}, in-memory storage, one started for each mode on a loopback port",
            first_line(&super::services::tansu_program().to_string_lossy(), &["--version"])
        )
    } else {
        "the brokers given with --brokers".to_owned()
    };
    let redis = if run.own_redis {
        format!("{}, no persistence, one started for each mode", first_line("redis-server", &["--version"]))
    } else {
        "the server given with --redis, a fresh key prefix for each mode".to_owned()
    };
    let _ = writeln!(s, "- broker: {broker}");
    let _ = writeln!(s, "- Redis: {redis}");
    if let Some(bin) = &run.scorer_bin {
        let profile =
            if bin.components().any(|c| c.as_os_str() == "release") { "release build" } else { "debug build" };
        let _ = writeln!(s, "- scorer: `{}` ({profile})", bin.display());
    }
    let _ = writeln!(
        s,
        "- the load producer, the output reader, the passthrough, the broker, Redis and the scorer all share these cores\n"
    );

    let p = &run.plan;
    let t = &run.stream;
    let (min, mean, max) = (t.smallest, t.mean(), t.largest);
    let (rewards, dead, anonymous) = (t.rewards, t.dead_letters, t.anonymous);
    let _ = writeln!(s, "## Stream\n");
    let rate =
        if p.rate == 0 { "as fast as the broker takes them".to_owned() } else { format!("at {} events/s", p.rate) };
    match p.duration {
        None => {
            let _ = writeln!(
                s,
                "{} generated events (seed {}, {} members, Zipf 1.1), {min} to {max} bytes, mean {mean}: {rewards} become reward events, {dead} dead letters, {anonymous} are anonymous sales (no output). The unbatched mode is offered the first {} of them. Offered {rate} into {} partitions per topic; every mode on fresh topics and fresh Redis keys.\n",
                p.events, p.seed, p.members, p.unbatched_events, p.partitions
            );
        }
        Some(seconds) => {
            let _ = writeln!(
                s,
                "A soak: {} events offered {rate} for {seconds} s to each mode, into {} partitions per topic, every mode on fresh topics and fresh Redis keys. The stream (seed {}, {} members, Zipf 1.1) is generated as it is offered, in chunks of {} lines, never whole in memory. Of the {} lines generated: {min} to {max} bytes, mean {mean}; {rewards} become reward events, {dead} dead letters, {anonymous} are anonymous sales (no output).\n",
                p.events,
                p.partitions,
                p.seed,
                p.members,
                super::stream::CHUNK_LINES,
                t.lines
            );
        }
    }
    scorer_settings(&mut s, run, outcomes);
    let _ = writeln!(s, "## Results\n");
    s.push_str(&table(outcomes));
    s.push('\n');
    let _ = writeln!(
        s,
        "Latency: from the moment the load producer hands an event to its client to the moment the output reader reads the event's reward (or dead letter, or for the passthrough the copy) back. events/s: events offered / (last output read - first event produced). RSS: the daemon's VmRSS when it was ready and when the last output arrived, and its VmHWM; the passthrough runs inside the driver and has none of its own.\n"
    );
    if find(outcomes, Mode::Unbatched).is_some() {
        let _ = writeln!(
            s,
            "Unbatched, every event is a batch of its own: two Redis round trips each, one event at a time, while the acknowledgements of earlier ones are awaited meanwhile; batches share those round trips among up to `batching.max_batch_events` events.\n"
        );
    }
    let ratios = ratios(outcomes);
    if !ratios.is_empty() {
        for (label, value) in &ratios {
            let _ = writeln!(s, "- {label}: **{value:.2}**");
        }
        s.push('\n');
    }
    for line in verdicts(outcomes) {
        let _ = writeln!(s, "{line}\n");
    }
    let _ = writeln!(s, "CPU seconds used during each mode (from the first event produced to the last output read):\n");
    let _ = writeln!(
        s,
        "| mode | scorer | broker | redis | driver (load producer, output reader{}) |\n|---|---:|---:|---:|---:|",
        if outcomes.iter().any(|o| o.mode == Mode::Passthrough) { "; passthrough in its mode" } else { "" }
    );
    for o in outcomes {
        let cell =
            |name: &str| o.cpu.iter().find(|(n, _)| *n == name).map_or("-".to_owned(), |(_, v)| format!("{v:.1}"));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            o.mode.name(),
            cell("scorer"),
            cell("broker"),
            cell("redis"),
            cell("driver")
        );
    }
    s.push('\n');
    let warm_up = super::WARM_UP_PER_PARTITION * p.partitions as usize;
    for o in outcomes {
        let _ = write!(
            s,
            "- {}: {warm_up} warm-up events (purchases of their own members) came through in {:.2} s before the stream, not counted",
            o.mode.name(),
            o.warm_up_seconds
        );
        match &o.exit {
            Some(exit) => {
                let _ = writeln!(s, "; the daemon's stop: {exit}");
            }
            None => s.push('\n'),
        }
    }
    s.push('\n');

    stages(&mut s, outcomes);
    memory(&mut s, outcomes);
    let _ = writeln!(s, "## Plots\n\n![throughput](throughput.svg)\n\n![latency](latency.svg)\n");
    if has_memory(outcomes) {
        let _ = writeln!(s, "![memory](rss.svg)\n");
    }
    let _ = writeln!(s, "## Client settings\n");
    let _ = writeln!(
        s,
        "The passthrough and the daemon build their clients with `loyalty_scorer::kafka::consumer_config` and `producer_config` from configurations that differ in names and batching only (`<mode>.toml` beside this report). librdkafka properties of the configuration: {}.\n",
        if p.properties.is_empty() {
            "none (the scorer's defaults)".to_owned()
        } else {
            p.properties.iter().map(|(k, v)| format!("`{k} = {v}`")).collect::<Vec<_>>().join(", ")
        }
    );
    if let Some(o) = outcomes.first() {
        settings_block(&mut s, "Consumer (group id and topics differ per mode)", &o.consumer);
        settings_block(&mut s, "Producer", &o.producer);
    }
    settings_block(
        &mut s,
        "Load producer (not part of what is measured)",
        &settings(&super::measure::load_producer_config("-")),
    );
    settings_block(
        &mut s,
        "Output reader (every partition assigned, no group)",
        &settings(&super::measure::reader_config("-", "lt-<run>-<mode>-reader")),
    );
    s
}

/// The command line as given, quoted where a shell would need it.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c)) {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn mib1(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1 << 20) as f64)
}

/// "-" when the second half has fewer than two samples.
fn slope_text(t: &Trend) -> String {
    t.slope_per_minute.map_or("-".to_owned(), |b| format!("{:+.2} MiB/min", b / (1 << 20) as f64))
}

/// Seconds into a run, to a tenth when under ten.
fn secs(seconds: f64) -> String {
    if seconds.abs() < 10.0 { format!("{seconds:.1}") } else { format!("{seconds:.0}") }
}

/// Some mode sampled a daemon's memory.
fn has_memory(outcomes: &[Outcome]) -> bool {
    outcomes.iter().any(|o| o.samples.iter().any(|s| s.rss.is_some()))
}

/// A mode's cell of a table.
type Cell = fn(&Outcome) -> String;

/// Every sample of the daemon modes, one line each; a value that could not
/// be read is empty.
pub fn memory_csv(outcomes: &[Outcome]) -> String {
    let mut csv = String::from("mode,seconds,daemon_rss_bytes,redis_used_memory_bytes,driver_rss_bytes\n");
    let cell = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
    for o in outcomes.iter().filter(|o| o.samples.iter().any(|x| x.rss.is_some())) {
        for x in &o.samples {
            let seconds = (x.at_us as f64 - o.produced.first_us as f64) / 1e6;
            let _ = writeln!(
                csv,
                "{},{seconds:.3},{},{},{}",
                o.mode.name(),
                cell(x.rss),
                cell(x.redis),
                cell(x.driver_rss)
            );
        }
    }
    csv
}

/// The scorer's settings: the batching each mode loaded, and the keys
/// given with `--scorer-setting`.
fn scorer_settings(s: &mut String, run: &Run, outcomes: &[Outcome]) {
    let _ = writeln!(s, "## Scorer settings\n");
    let given = &run.plan.settings;
    if given.is_empty() {
        let _ = writeln!(
            s,
            "No `--scorer-setting`: the configuration's defaults, but for the unbatched mode's batch size.\n"
        );
    } else {
        let _ = writeln!(
            s,
            "Given with `--scorer-setting`, written into every mode's configuration (the unbatched mode keeps `max_batch_events = 1`): {}.\n",
            given.iter().map(|(k, v)| format!("`{k} = {v}`")).collect::<Vec<_>>().join(", ")
        );
    }
    let _ = write!(s, "| key |");
    for o in outcomes {
        let _ = write!(s, " {} |", o.mode.name());
    }
    let _ = writeln!(s, "\n|---|{}", "---:|".repeat(outcomes.len()));
    let loaded: [(&str, Cell); 3] = [
        ("batching.max_batch_events", |o| o.batching.0.to_string()),
        ("batching.max_batch_wait_ms", |o| o.batching.1.to_string()),
        ("batching.max_in_flight_events", |o| o.batching.2.to_string()),
    ];
    for (key, value) in loaded {
        let mark = if given.iter().any(|(k, _)| k == key) { " (given)" } else { "" };
        let _ = write!(s, "| `{key}`{mark} |");
        for o in outcomes {
            let _ = write!(s, " {} |", value(o));
        }
        s.push('\n');
    }
    for (key, value) in given.iter().filter(|(k, _)| !loaded.iter().any(|(l, _)| l == k)) {
        let _ = write!(s, "| `{key}` (given) |");
        for _ in outcomes {
            let _ = write!(s, " {value} |");
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "\nThe passthrough reads `max_in_flight_events` only (outputs unacknowledged at once); `<mode>.toml` beside this report is each mode's whole file.\n"
    );
}

/// The memory section: each series' value once warmed up, at the end, its
/// peak and its slope over the second half.
fn memory(s: &mut String, outcomes: &[Outcome]) {
    if !has_memory(outcomes) {
        return;
    }
    let _ = writeln!(s, "## Memory over time\n");
    let _ = writeln!(
        s,
        "| mode | series | after warm-up MiB | at the end MiB | peak MiB | slope, second half | samples |\n|---|---|---:|---:|---:|---:|---:|"
    );
    let series: [(&str, sample::Field); 3] =
        [("daemon RSS", |x| x.rss), ("Redis used_memory", |x| x.redis), ("driver RSS", |x| x.driver_rss)];
    for o in outcomes.iter().filter(|o| o.samples.iter().any(|x| x.rss.is_some())) {
        for (name, value) in series {
            let points = sample::series(&o.samples, o.produced.first_us, value);
            let Some(t) = sample::trend(&points) else { continue };
            let peak = match (name, &o.sut) {
                ("daemon RSS", Some((_, after))) => format!("{} (VmHWM {})", mib1(t.peak), mib1(after.peak_rss)),
                _ => mib1(t.peak),
            };
            let _ = writeln!(
                s,
                "| {} | {name} | {} (at {} s) | {} (at {} s) | {peak} | {} | {} |",
                o.mode.name(),
                mib1(t.settled),
                secs(t.settled_at),
                mib1(t.end),
                secs(t.end_at),
                slope_text(&t),
                points.len()
            );
        }
    }
    let _ = writeln!(
        s,
        "\nSampled every {} s from the end of the warm-up to the last output read (VmRSS of `/proc/PID/status`; Redis `INFO memory`, of the redis-server started for the mode only); times are seconds since the first event was produced. After warm-up: the first sample at or after 60 s, or a quarter of the way through a run shorter than 2 minutes. Slope: least squares over the samples of the second half of the run (-: fewer than two there). Every sample is in `memory.csv`. Redis keeps each member's state and each event's record for refunds and repeats (`redis.retention_days` of event time; the stream's events are 2.6 s apart), so its memory grows with the events scored. The driver generates the stream, produces it and reads the outputs.\n",
        sample::EVERY.as_secs()
    );
}

/// The daemon's `loyalty_scorer_batch_stage_seconds` and
/// `loyalty_scorer_batch_events`, as sums and counts over its run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stages {
    /// (stage, seconds in it, batches through it), in the order exported.
    pub stages: Vec<(String, f64, f64)>,
    /// (events, batches) finished.
    pub events: (f64, f64),
}

impl Stages {
    /// Reads them from a Prometheus text exposition; the stages in the
    /// order a batch goes through them.
    pub fn parse(body: &str) -> Stages {
        let mut out = Stages::default();
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let Ok(value) = value.parse::<f64>() else { continue };
            let of = |name: &str| series.strip_prefix(name).and_then(|rest| rest.strip_prefix('_'));
            if let Some(rest) = of(metric::BATCH_STAGE_SECONDS) {
                let (kind, labels) = rest.split_once('{').unwrap_or((rest, ""));
                let Some(stage) = labels.split_once("stage=\"").and_then(|(_, s)| s.split_once('"')).map(|(s, _)| s)
                else {
                    continue;
                };
                let at = match out.stages.iter().position(|(s, _, _)| s == stage) {
                    Some(at) => at,
                    None => {
                        out.stages.push((stage.to_owned(), 0.0, 0.0));
                        out.stages.len() - 1
                    }
                };
                match kind {
                    "sum" => out.stages[at].1 = value,
                    "count" => out.stages[at].2 = value,
                    _ => {}
                }
            } else if let Some(kind) = of(metric::BATCH_EVENTS) {
                match kind {
                    "sum" => out.events.0 = value,
                    "count" => out.events.1 = value,
                    _ => {}
                }
            }
        }
        let order = |stage: &str| BatchStage::ALL.iter().position(|s| s.as_str() == stage).unwrap_or(usize::MAX);
        out.stages.sort_by_key(|(stage, _, _)| order(stage));
        out
    }
}

/// Where the daemon's batches spent their time, per daemon mode.
fn stages(s: &mut String, outcomes: &[Outcome]) {
    let with: Vec<(&Outcome, &Stages)> =
        outcomes.iter().filter_map(|o| o.stages.as_ref().filter(|t| !t.stages.is_empty()).map(|t| (o, t))).collect();
    if with.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "## Where a batch's time goes
"
    );
    let _ = writeln!(s, "| mode | stage | mean ms | batches |\n|---|---|---:|---:|");
    for (o, t) in &with {
        for (stage, seconds, count) in &t.stages {
            let mean = if *count > 0.0 { format!("{:.2}", seconds / count * 1000.0) } else { "-".to_owned() };
            let _ = writeln!(s, "| {} | {stage} | {mean} | {count:.0} |", o.mode.name());
        }
        if t.events.1 > 0.0 {
            let _ = writeln!(
                s,
                "| {} | events a batch | {:.1} | {:.0} |",
                o.mode.name(),
                t.events.0 / t.events.1,
                t.events.1
            );
        }
    }
    let _ = writeln!(
        s,
        "\nThe daemon's own histograms (`loyalty_scorer_batch_stage_seconds`, `loyalty_scorer_batch_events`), scraped from its `/metrics` once the last output was read, warm-up included; a batch split across lanes counts once per part. docs/operations.md says what each stage holds.\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_read_from_the_metrics_text_in_a_batchs_order() {
        let body = "# HELP loyalty_scorer_batch_stage_seconds Time a batch spends in each stage.\n\
# TYPE loyalty_scorer_batch_stage_seconds histogram\n\
loyalty_scorer_batch_stage_seconds_sum{stage=\"score\"} 0.03\n\
loyalty_scorer_batch_stage_seconds_count{stage=\"score\"} 4\n\
loyalty_scorer_batch_stage_seconds_bucket{stage=\"gather\",le=\"0.005\"} 3\n\
loyalty_scorer_batch_stage_seconds_sum{stage=\"gather\"} 0.012\n\
loyalty_scorer_batch_stage_seconds_count{stage=\"gather\"} 4\n\
loyalty_scorer_batch_events_sum 1200\n\
loyalty_scorer_batch_events_count 4\n\
loyalty_scorer_batch_duration_seconds_sum 9\n";
        let stages = Stages::parse(body);
        assert_eq!(stages.stages, vec![("gather".to_owned(), 0.012, 4.0), ("score".to_owned(), 0.03, 4.0)]);
        assert_eq!(stages.events, (1200.0, 4.0));
    }
}
