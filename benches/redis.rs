//! Criterion benchmarks of the Redis path: `BatchScorer::score_batch` over a
//! `RedisStore` at batch sizes 1, 64 and 512, against the same batches
//! through the embedded `MemoryStore` (the baseline of the same run).
//!
//! The bench starts its own `redis-server` on a free loopback port (a
//! temporary directory, no persistence) and stops it at the end. Before the
//! groups it runs the reference against that server:
//! `redis-benchmark -P 16 -n 200000 -r 1000000` of `benches/reference.lua`
//! (EXISTS, HGET, HSET of two fields, SET EX of a 60-byte outcome: the
//! least a correct apply of one event needs) and of a trivial script
//! (`return 1`), and prints their calls/s (set `REDIS_BENCH_REFERENCE=0` to
//! skip it and the comparison below).
//!
//! Then it compares member updates per second through the scorer's real
//! scripts, at batches of 512, with the reference's calls per second, each
//! phase on an empty database between two reference runs: one lane with
//! members drawn as the reference draws its keys (uniformly out of a
//! million, so one update per event), one lane with the payloads' members,
//! and two and four lanes (concurrent scorers on disjoint members, as the
//! daemon's partitions). It prints where a member update's time goes: the
//! scorer's CPU, Redis's CPU and Redis's time in the commands.
//!
//! Events are the purchases of `benches/data/purchases.jsonl` under
//! `config/rules/acme.toml`, cycled. Every event is new: its `event_id` is
//! rewritten with a global counter. Members are the payloads' own (Zipf-like
//! reuse: 308 members over 1000 events), with a generation suffix that
//! changes at each pass over the file: the batch path never prunes records,
//! so without it the hottest member (172 events per pass) would grow without
//! bound and the bench would measure the re-encoding of one ever-growing
//! state. Within a pass, member histories build up as they would in a
//! stream.
//!
//! Every group sets `Throughput::Elements(batch_len)`: criterion reports events/s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::{self, BufRead, BufReader, Read, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mimalloc::MiMalloc;

use loyalty_scorer::batch::BatchScorer;
use loyalty_scorer::decode::DEFAULT_MAX_MESSAGE_BYTES;
use loyalty_scorer::pipeline::{Disposition, Sink};
use loyalty_scorer::rules::engine::Settings;
use loyalty_scorer::rules::{ProgramSet, load};
use loyalty_scorer::state::BatchStore;
use loyalty_scorer::state::memory::MemoryStore;
use loyalty_scorer::state::redis::RedisStore;

/// The binary's allocator, so that allocation costs are the binary's.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

const REFERENCE_SCRIPT: &str = include_str!("reference.lua");
const TRIVIAL_SCRIPT: &str = "return 1";

// ---------------------------------------------------------------------------
// A redis-server of our own
// ---------------------------------------------------------------------------

struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        for _ in 0..5 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("redis.log");
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .arg("--logfile")
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (is Redis installed?)");
            let mut server = Server { child, port, _dir: dir };
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if matches!(server.child.try_wait(), Ok(Some(_))) {
                    break; // the port was taken: try another
                }
                if let Ok(Reply::Status(s)) = call(port, &[b"PING"])
                    && s == "PONG"
                {
                    return server;
                }
                if Instant::now() > deadline {
                    server.stop();
                    panic!("redis-server on port {port} did not answer PING");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("could not start redis-server");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One RESP reply (enough for PING, SCRIPT LOAD and INFO); the payloads of
/// the other kinds are only read by `Debug`, in panic messages.
#[derive(Debug)]
#[allow(dead_code)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

fn call(port: u16, args: &[&[u8]]) -> io::Result<Reply> {
    let stream = TcpStream::connect_timeout(&SocketAddr::from((Ipv4Addr::LOCALHOST, port)), Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    (&stream).write_all(&out)?;
    read_reply(&mut BufReader::new(stream))
}

fn read_reply(r: &mut BufReader<TcpStream>) -> io::Result<Reply> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let line = line.trim_end();
    let bad = || io::Error::other(format!("bad reply line {line:?}"));
    let (kind, rest) = (line.chars().next().ok_or_else(bad)?, &line[1..]);
    Ok(match kind {
        '+' => Reply::Status(rest.to_owned()),
        '-' => Reply::Error(rest.to_owned()),
        ':' => Reply::Int(rest.parse().map_err(|_| bad())?),
        '$' => match usize::try_from(rest.parse::<i64>().map_err(|_| bad())?) {
            Ok(n) => {
                let mut data = vec![0; n + 2];
                r.read_exact(&mut data)?;
                data.truncate(n);
                Reply::Bulk(Some(data))
            }
            Err(_) => Reply::Bulk(None),
        },
        '*' => {
            let n = rest.parse::<i64>().map_err(|_| bad())?.max(0);
            let mut items = Vec::new();
            for _ in 0..n {
                items.push(read_reply(r)?);
            }
            Reply::Array(items)
        }
        _ => return Err(bad()),
    })
}

// ---------------------------------------------------------------------------
// The reference: redis-benchmark -P 16
// ---------------------------------------------------------------------------

/// Loads `script` and runs redis-benchmark on it; calls/s.
fn redis_benchmark(port: u16, script: &str, args: &[&str]) -> f64 {
    let sha = match call(port, &[b"SCRIPT", b"LOAD", script.as_bytes()]) {
        Ok(Reply::Bulk(Some(sha))) => String::from_utf8(sha).unwrap(),
        other => panic!("SCRIPT LOAD: {other:?}"),
    };
    let port_text = port.to_string();
    let mut command = Command::new("redis-benchmark");
    command.args(["-h", "127.0.0.1", "-p", &port_text, "-P", "16", "-n", "200000", "-r", "1000000", "-q"]);
    command.args(["EVALSHA", &sha]).args(args);
    let output = command.output().expect("redis-benchmark");
    let text = String::from_utf8_lossy(&output.stdout);
    // `-q` ends with `<name>: 123456.78 requests per second, p50=...`
    let rps = text
        .rsplit(['\r', '\n'])
        .filter_map(|l| l.split(": ").nth(1)?.split(" requests per second").next()?.trim().parse::<f64>().ok())
        .next();
    match rps {
        Some(rps) => rps,
        None => panic!("redis-benchmark said: {text}\n{}", String::from_utf8_lossy(&output.stderr)),
    }
}

/// The arguments of the reference script, `__rand_int__` substituted per call.
fn reference_args() -> Vec<String> {
    let state = "s".repeat(64);
    let outcome = "o".repeat(60);
    ["1", "{m:__rand_int__}", "ev__rand_int__", &state, &outcome, "7776000"].map(str::to_owned).to_vec()
}

/// `(calls, microseconds)` per command since the last `CONFIG RESETSTAT`,
/// from `INFO commandstats`: the server's own time in each command, not
/// the time it spends reading requests and writing replies.
fn command_stats(port: u16) -> std::collections::HashMap<String, (f64, f64)> {
    let text = match call(port, &[b"INFO", b"commandstats"]) {
        Ok(Reply::Bulk(Some(bytes))) => String::from_utf8(bytes).unwrap(),
        other => panic!("INFO commandstats: {other:?}"),
    };
    text.lines()
        .filter_map(|line| {
            let (name, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field =
                |key: &str| fields.split(',').find_map(|f| f.strip_prefix(key)?.strip_prefix('=')?.parse::<f64>().ok());
            Some((name.to_owned(), (field("calls")?, field("usec")?)))
        })
        .collect()
}

/// Runs the reference and prints it; Redis's own time per call of the
/// reference script. `None` when skipped (`REDIS_BENCH_REFERENCE=0`).
fn reference(port: u16) -> Option<Option<f64>> {
    if std::env::var("REDIS_BENCH_REFERENCE").is_ok_and(|v| v == "0") {
        return None;
    }
    let args = reference_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _ = call(port, &[b"CONFIG", b"RESETSTAT"]);
    let reference = redis_benchmark(port, REFERENCE_SCRIPT, &args);
    let usec = command_stats(port).get("evalsha").map(|(calls, usec)| usec / calls);
    let trivial = redis_benchmark(port, TRIVIAL_SCRIPT, &["1", "{m:__rand_int__}"]);
    println!("reference (redis-benchmark -P 16 -n 200000 -r 1000000, 50 clients):");
    println!("  reference.lua EVALSHA: {reference:.0} calls/s");
    println!("  trivial EVALSHA (return 1): {trivial:.0} calls/s");
    println!("  reference / trivial: {:.3}", reference / trivial);
    if let Some(usec) = usec {
        println!("  Redis time per reference call (INFO commandstats): {usec:.2} us");
    }
    let _ = call(port, &[b"FLUSHALL"]);
    Some(usec)
}

/// The reference script's calls/s on an empty database, which is left
/// empty again.
fn reference_calls(port: u16) -> f64 {
    let args = reference_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _ = call(port, &[b"FLUSHALL"]);
    let calls = redis_benchmark(port, REFERENCE_SCRIPT, &args);
    let _ = call(port, &[b"FLUSHALL"]);
    calls
}

/// Member updates per second through the scorer's real scripts at batches
/// of 512: `lanes` scorers on disjoint members, each with its own
/// connection, as tasks of a two-worker runtime (as the daemon scores
/// partitions), for `seconds` of wall time. Member updates are counted by
/// Redis: its write script calls, one per member a batch changes. Prints
/// where the time of a member update goes.
fn updates_per_s(
    url: &str,
    templates: &Arc<Vec<Template>>,
    members: Members,
    lanes: usize,
    port: u16,
    seconds: f64,
) -> f64 {
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let _ = call(port, &[b"CONFIG", b"RESETSTAT"]);
    let (scorer_before, redis_before) = (process_cpu_seconds(), redis_cpu_seconds(port));
    let start = Instant::now();
    let tasks: Vec<_> = (0..lanes)
        .map(|lane| {
            let url = url.to_owned();
            let templates = templates.clone();
            multi.spawn(async move {
                let mut store = RedisStore::connect(&url, &format!("updates{run}-{lane}")).await.unwrap();
                let first = (100 + run * 10 + lane as u64) * 1_000_000_000_000;
                let mut driver = Driver::new(templates, members, 512, first);
                while start.elapsed().as_secs_f64() < seconds {
                    driver.batch(&mut store).await;
                }
                assert_eq!(driver.sink.other, 0, "every event must be new and scored");
                driver.sink.scored
            })
        })
        .collect();
    let events: u64 = tasks.into_iter().map(|t| multi.block_on(t).unwrap()).sum();
    let elapsed = start.elapsed().as_secs_f64();
    let (scorer_cpu, redis_cpu) = (process_cpu_seconds() - scorer_before, redis_cpu_seconds(port) - redis_before);
    let stats = command_stats(port);
    let (writes, write_usec) = stats.get("evalsha").copied().unwrap_or((0.0, 0.0));
    let load_usec: f64 = ["get", "hmget"].iter().filter_map(|c| stats.get(*c)).map(|(_, usec)| usec).sum();
    let per_update = |x: f64| x / writes.max(1.0);
    println!(
        "  {events} events, {writes:.0} member updates in {elapsed:.2} s: {:.0} events/s, {:.0} member updates/s, {:.2} events per update",
        events as f64 / elapsed,
        writes / elapsed,
        events as f64 / writes.max(1.0)
    );
    // The scorer's process on CPU, Redis's process on CPU (commands, and
    // reading requests and writing replies), and the commands alone.
    println!(
        "  per member update: wall {:.2} us; scorer CPU {:.2} us; Redis CPU {:.2} us ({:.0}% busy), of which commands {:.2} us (loads {:.2}, write script {:.2})",
        per_update(elapsed * 1e6),
        per_update(scorer_cpu * 1e6),
        per_update(redis_cpu * 1e6),
        redis_cpu / elapsed * 100.0,
        per_update(load_usec + write_usec),
        per_update(load_usec),
        per_update(write_usec)
    );
    writes / elapsed
}

/// CPU time of this process, from `/proc/self/stat` (user and system
/// ticks, at 100 per second).
fn process_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime
            // are fields 14 and 15 of the whole line.
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            Some(fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?)
        })
        .map_or(0.0, |ticks| ticks / 100.0)
}

/// CPU time of the redis-server process, from `INFO cpu`.
fn redis_cpu_seconds(port: u16) -> f64 {
    let text = match call(port, &[b"INFO", b"cpu"]) {
        Ok(Reply::Bulk(Some(bytes))) => String::from_utf8(bytes).unwrap(),
        other => panic!("INFO cpu: {other:?}"),
    };
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            matches!(key, "used_cpu_sys" | "used_cpu_user").then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

// ---------------------------------------------------------------------------
// Events: the payloads with fresh event ids and per-pass member generations
// ---------------------------------------------------------------------------

/// A payload cut around its event id and member id values.
struct Template {
    /// Up to and including the opening quote of the event id value.
    head: Vec<u8>,
    /// From the closing quote of the event id value to the opening quote of
    /// the member id value, inclusive.
    middle: Vec<u8>,
    member: Vec<u8>,
    /// From the closing quote of the member id value on.
    tail: Vec<u8>,
}

fn value_span(payload: &[u8], field: &[u8]) -> (usize, usize) {
    let start = payload.windows(field.len()).position(|w| w == field).expect("field") + field.len();
    let len = payload[start..].iter().position(|&b| b == b'"').expect("closing quote");
    (start, start + len)
}

fn templates() -> Vec<Template> {
    include_str!("data/purchases.jsonl")
        .lines()
        .map(|line| {
            let p = line.as_bytes();
            let (e0, e1) = value_span(p, b"\"event_id\":\"");
            let (m0, m1) = value_span(p, b"\"member_id\":\"");
            assert!(e1 < m0, "event_id comes before member_id");
            Template {
                head: p[..e0].to_vec(),
                middle: p[e1..m0].to_vec(),
                member: p[m0..m1].to_vec(),
                tail: p[m1..].to_vec(),
            }
        })
        .collect()
}

/// Whose events a driver renders.
#[derive(Clone, Copy)]
enum Members {
    /// The payloads' own members, with a generation suffix per pass.
    Payloads,
    /// A uniformly random member out of this many, as the reference picks
    /// its keys (`-r 1000000`): about one member update per event.
    Random(u64),
}

/// Writes event number `n` into `buf`: payload `n % len`, event id
/// `ev-<n>`, and its member (see [`Members`]).
fn render(templates: &[Template], members: Members, n: u64, buf: &mut Vec<u8>) {
    let t = &templates[(n % templates.len() as u64) as usize];
    buf.clear();
    buf.extend_from_slice(&t.head);
    let _ = write!(buf, "ev-{n:012}");
    buf.extend_from_slice(&t.middle);
    match members {
        Members::Payloads => {
            buf.extend_from_slice(&t.member);
            let _ = write!(buf, "g{}", n / templates.len() as u64);
        }
        // 20-byte member ids, as in the memory figures.
        Members::Random(population) => {
            let _ = write!(buf, "m{:019}", splitmix64(n) % population);
        }
    }
    buf.extend_from_slice(&t.tail);
}

/// A well-mixed hash of the event number, so random members need no state.
fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Distinct members per batch as a share of the batch: over the batches
/// starting at every offset of the payloads (the payloads alone), and over
/// the batches this bench actually sends from event number `first` on
/// (member generations included: a batch across the end of a pass holds
/// members of two generations).
fn distinct_share(templates: &[Template], len: usize, first: u64) -> (f64, f64) {
    let n = templates.len() as u64;
    let share = |starts: &mut dyn Iterator<Item = u64>| {
        let (mut total, mut count) = (0.0, 0.0);
        for start in starts {
            let mut members: Vec<(&[u8], u64)> =
                (start..start + len as u64).map(|e| (templates[(e % n) as usize].member.as_slice(), e / n)).collect();
            members.sort_unstable();
            members.dedup();
            total += members.len() as f64 / len as f64;
            count += 1.0;
        }
        total / count
    };
    let cycle = n / gcd(n, len as u64);
    let sent = share(&mut (0..cycle).map(|i| first + i * len as u64));
    (share_payloads(templates, len), sent)
}

fn share_payloads(templates: &[Template], len: usize) -> f64 {
    let n = templates.len();
    let mut total = 0.0;
    for start in 0..n {
        let mut members: Vec<&[u8]> = (0..len).map(|j| templates[(start + j) % n].member.as_slice()).collect();
        members.sort_unstable();
        members.dedup();
        total += members.len() as f64 / len as f64;
    }
    total / n as f64
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Counts dispositions; nothing else.
#[derive(Default)]
struct CountingSink {
    scored: u64,
    other: u64,
}

impl Sink for CountingSink {
    fn accept(&mut self, _position: u64, _message: &[u8], disposition: Disposition<'_>) -> io::Result<()> {
        match disposition {
            Disposition::Scored { .. } => self.scored += 1,
            _ => self.other += 1,
        }
        Ok(())
    }
}

fn programs() -> ProgramSet {
    let program = load::load_str("acme.toml", include_str!("../config/rules/acme.toml"))
        .unwrap_or_else(|d| panic!("rules: {d:?}"));
    ProgramSet::new(vec![Arc::new(program)]).expect("one program")
}

/// One batch scorer with its buffers and event counter.
struct Driver {
    scorer: BatchScorer,
    templates: Arc<Vec<Template>>,
    members: Members,
    buffers: Vec<Vec<u8>>,
    next: u64,
    sink: CountingSink,
}

impl Driver {
    fn new(templates: Arc<Vec<Template>>, members: Members, len: usize, first: u64) -> Driver {
        Driver {
            scorer: BatchScorer::new(programs(), Settings::default(), DEFAULT_MAX_MESSAGE_BYTES).unwrap(),
            templates,
            members,
            buffers: vec![Vec::with_capacity(1024); len],
            next: first,
            sink: CountingSink::default(),
        }
    }

    async fn batch<S: BatchStore>(&mut self, store: &mut S) {
        for buf in &mut self.buffers {
            render(&self.templates, self.members, self.next, buf);
            self.next += 1;
        }
        let batch: Vec<(u64, &[u8])> =
            self.buffers.iter().enumerate().map(|(i, b)| (i as u64 + 1, b.as_slice())).collect();
        self.scorer.score_batch(store, black_box(&batch), &mut self.sink).await.unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let server = Server::start();
    let url = server.url();
    let reference_run = reference(server.port);
    let reference_usec = reference_run.flatten();

    let templates = Arc::new(templates());
    let first = |index: usize| (index as u64 + 1) * 1_000_000_000_000;
    for (index, len) in [1usize, 64, 512].into_iter().enumerate() {
        let (payloads, sent) = distinct_share(&templates, len, first(index));
        println!(
            "distinct members per batch of {len}: {payloads:.4} of the batch in the payloads, {sent:.4} in the batches sent"
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();

    // Each group starts its counter far from the others' so event ids never
    // collide, and has its own key prefix.
    for (index, len) in [1usize, 64, 512].into_iter().enumerate() {
        let prefix = format!("b{len}");
        let mut store = rt.block_on(RedisStore::connect(&url, &prefix)).unwrap();
        let mut driver = Driver::new(templates.clone(), Members::Payloads, len, first(index));
        if len == 512 {
            // Warm one pass, then measure the round trips of one batch.
            for _ in 0..2 {
                rt.block_on(driver.batch(&mut store));
            }
            let before = store.round_trips();
            rt.block_on(driver.batch(&mut store));
            println!("round_trips() per batch of 512: {}", store.round_trips() - before);
        }
        let _ = call(server.port, &[b"CONFIG", b"RESETSTAT"]);
        let mut group = c.benchmark_group(format!("redis/batch-{len}"));
        group.throughput(Throughput::Elements(len as u64));
        group.bench_function("score_batch", |b| b.iter(|| rt.block_on(driver.batch(&mut store))));
        group.finish();
        // Redis's own time per member update: the load (GET, HMGET) and the
        // write script, per write. When Redis is the bottleneck, the ratio
        // of this to the reference's time per call is the ratio of member
        // updates per second the server can serve.
        let stats = command_stats(server.port);
        let stat = |name: &str| stats.get(name).copied().unwrap_or((0.0, 0.0));
        let (writes, write_usec) = stat("evalsha");
        if writes > 0.0 {
            let per = |name: &str| stat(name).1 / writes;
            let total = per("get") + per("hmget") + write_usec / writes;
            println!(
                "redis/batch-{len}: Redis time per member update {total:.2} us (GET {:.2}, HMGET {:.2}, write script {:.2})",
                per("get"),
                per("hmget"),
                write_usec / writes
            );
            if let Some(reference) = reference_usec {
                println!("redis/batch-{len}: capacity ratio to the reference: {:.2}", reference / total);
            }
        }
        println!("redis/batch-{len}: {} scored, {} other dispositions", driver.sink.scored, driver.sink.other);
        assert_eq!(driver.sink.other, 0, "every event must be new and scored");
    }

    // The target, in the reference's own terms: member updates per second
    // through the real scripts against the reference's calls per second.
    // Each phase starts on an empty database, as the reference does, and
    // is compared with the mean of the reference run just before and just
    // after it, so that a drift of the machine shows.
    if reference_run.is_some() {
        println!("member updates per second at batches of 512, against the reference (target: 0.60):");
        let phases = [
            ("1 lane, random members", Members::Random(1_000_000), 1),
            ("1 lane, payload members", Members::Payloads, 1),
            ("2 lanes, random members", Members::Random(1_000_000), 2),
            ("4 lanes, random members", Members::Random(1_000_000), 4),
        ];
        for (name, members, lanes) in phases {
            println!(" {name}:");
            let before = reference_calls(server.port);
            let updates = updates_per_s(&url, &templates, members, lanes, server.port, 3.0);
            let after = reference_calls(server.port);
            println!("  reference {before:.0} and {after:.0} calls/s: ratio {:.2}", updates / ((before + after) / 2.0));
        }
    }

    // Two lanes (as the daemon runs partitions): two scorers on disjoint
    // members (their counters start in different member generations), each
    // with its own connection, as two tasks on a two-worker runtime. While
    // one lane evaluates, the other's batch is in Redis. (On one thread the
    // connections' I/O tasks would wait for the evaluating lane to yield.)
    let multi = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut lanes: Vec<Option<(RedisStore, Driver)>> = Vec::new();
    for lane in 0..2 {
        let store = multi.block_on(RedisStore::connect(&url, &format!("lane{lane}"))).unwrap();
        lanes.push(Some((store, Driver::new(templates.clone(), Members::Payloads, 512, first(4 + lane)))));
    }
    let mut group = c.benchmark_group("redis/batch-512-2-lanes");
    group.throughput(Throughput::Elements(2 * 512));
    group.bench_function("score_batch", |b| {
        b.iter(|| {
            let tasks: Vec<_> = lanes
                .iter_mut()
                .map(|lane| {
                    let (mut store, mut driver) = lane.take().unwrap();
                    multi.spawn(async move {
                        driver.batch(&mut store).await;
                        (store, driver)
                    })
                })
                .collect();
            for (lane, task) in lanes.iter_mut().zip(tasks) {
                *lane = Some(multi.block_on(task).unwrap());
            }
        })
    });
    group.finish();
    for (_, driver) in lanes.iter().flatten() {
        assert_eq!(driver.sink.other, 0, "every event must be new and scored");
    }

    let mut store = MemoryStore::new();
    let mut driver = Driver::new(templates.clone(), Members::Payloads, 512, first(3));
    let mut group = c.benchmark_group("memory/batch-512");
    group.throughput(Throughput::Elements(512));
    group.bench_function("score_batch", |b| b.iter(|| rt.block_on(driver.batch(&mut store))));
    group.finish();
    println!("memory/batch-512: {} scored, {} other dispositions", driver.sink.scored, driver.sink.other);
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
