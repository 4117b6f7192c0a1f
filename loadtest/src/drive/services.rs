//! The processes a drive starts on this machine: a Tansu broker and a
//! `redis-server`, each on a free loopback port with its own directory, each
//! killed when its guard is dropped (at the end of a mode, on an error, or on
//! Ctrl-C, which the driver turns into an error). Also what is read about a
//! running process from `/proc` (memory, CPU time) and topic creation.
//!
//! Nothing here binds or connects to anything but 127.0.0.1, except the
//! brokers and Redis the user names.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

use crate::resp::Conn;

/// How long a started server may take to answer.
const START_DEADLINE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(20);

/// A port nobody listens on now (the OS's pick for port 0).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("picking a free loopback port")?;
    Ok(listener.local_addr().context("picking a free loopback port")?.port())
}

/// A child process killed (SIGKILL) and reaped when dropped.
#[derive(Debug)]
pub struct Guarded {
    pub child: Child,
    pub name: &'static str,
}

impl Guarded {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something accepts connections on `port`, or `child` exits.
fn wait_listening(child: &mut Guarded, port: u16, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_DEADLINE;
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        if let Some(status) = child.exited() {
            bail!("{} exited ({status}) before listening on {port}:\n{}", child.name, tail(log, 20));
        }
        if Instant::now() > deadline {
            bail!("{} did not listen on {port} within {START_DEADLINE:?}:\n{}", child.name, tail(log, 20));
        }
        std::thread::sleep(POLL);
    }
    Ok(())
}

/// The last `lines` lines of a log file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The Tansu program: `TANSU` when set, else where `cargo install` puts it,
/// else `PATH` (as the end-to-end tests find it).
pub fn tansu_program() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU") {
        return PathBuf::from(path);
    }
    let cargo_home = std::env::var_os("CARGO_HOME").map(PathBuf::from);
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo"));
    cargo_home
        .into_iter()
        .chain(home)
        .map(|dir| dir.join("bin/tansu"))
        .find(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("tansu"))
}

/// A Tansu broker with in-memory storage: nothing it holds outlives it.
#[derive(Debug)]
pub struct Tansu {
    pub process: Guarded,
    pub port: u16,
}

impl Tansu {
    pub fn start(dir: &Path) -> anyhow::Result<Tansu> {
        let port = free_port()?;
        let log_path = dir.join("tansu.log");
        let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let url = format!("tcp://127.0.0.1:{port}");
        let program = tansu_program();
        let child = Command::new(&program)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!("starting {} (cargo install tansu --version 0.6.0 --features dynostore)", program.display())
            })?;
        let mut process = Guarded { child, name: "tansu" };
        wait_listening(&mut process, port, &log_path)?;
        Ok(Tansu { process, port })
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A `redis-server` without persistence.
#[derive(Debug)]
pub struct RedisServer {
    pub process: Guarded,
    pub port: u16,
}

impl RedisServer {
    pub fn start(dir: &Path) -> anyhow::Result<RedisServer> {
        let port = free_port()?;
        let log_path = dir.join("redis.log");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (apt-get install redis-server)")?;
        let mut process = Guarded { child, name: "redis-server" };
        wait_listening(&mut process, port, &log_path)?;
        let deadline = Instant::now() + START_DEADLINE;
        // Listening comes before loading: PING answers once it serves.
        while Conn::open("127.0.0.1", port).and_then(|mut c| c.must(&[b"PING"])).is_err() {
            if Instant::now() > deadline {
                bail!("redis-server on {port} did not answer PING:\n{}", tail(&log_path, 20));
            }
            std::thread::sleep(POLL);
        }
        Ok(RedisServer { process, port })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// Creates `names`, `partitions` partitions each, replication 1.
pub async fn create_topics(brokers: &str, names: &[&str], partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().context("creating the Kafka admin client")?;
    let topics: Vec<NewTopic<'_>> =
        names.iter().map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1))).collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let results = match admin.create_topics(&topics, &options).await {
        Ok(results) => results,
        // librdkafka's mock cluster (`loadtest mock-broker`) does not answer
        // CreateTopics; it creates a topic a producer asks metadata for.
        Err(error) => {
            return auto_create(brokers, names, partitions).with_context(|| format!("creating topics: {error}"));
        }
    };
    for result in results {
        if let Err((topic, error)) = result {
            bail!("creating topic {topic}: {error}");
        }
    }
    Ok(())
}

/// Creates topics by asking metadata for them as a producer, and checks
/// they came with `partitions` partitions (the broker's default).
fn auto_create(brokers: &str, names: &[&str], partitions: i32) -> anyhow::Result<()> {
    use rdkafka::producer::{BaseProducer, Producer as _};
    let producer: BaseProducer =
        ClientConfig::new().set("bootstrap.servers", brokers).create().context("creating a client to create topics")?;
    for name in names {
        let metadata = producer
            .client()
            .fetch_metadata(Some(name), Duration::from_secs(10))
            .with_context(|| format!("asking metadata for {name}"))?;
        let got = metadata.topics().first().map_or(0, |t| t.partitions().len());
        if got != usize::try_from(partitions).unwrap_or(0) {
            bail!(
                "topic {name} came with {got} partitions, not {partitions} (the broker's default; pass --partitions {got})"
            );
        }
    }
    Ok(())
}

/// Memory and CPU of a process, from `/proc/PID/status` and `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// VmRSS, bytes.
    pub rss: u64,
    /// VmHWM (the peak of VmRSS), bytes.
    pub peak_rss: u64,
    /// User + system time of every thread, seconds.
    pub cpu_seconds: f64,
}

/// Clock ticks of `/proc/PID/stat`'s times: USER_HZ, 100 on every Linux
/// architecture this runs on (`getconf CLK_TCK`).
const TICKS_PER_SECOND: f64 = 100.0;

pub fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |name: &str| -> Option<u64> {
        let line = status.lines().find_map(|l| l.strip_prefix(name))?;
        line.trim().trim_end_matches("kB").trim().parse::<u64>().ok().map(|k| k * 1024)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it do not.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Usage { rss: kib("VmRSS:")?, peak_rss: kib("VmHWM:")?, cpu_seconds: ticks as f64 / TICKS_PER_SECOND })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_usage() {
        let own = usage(std::process::id()).expect("this process's /proc entries");
        assert!(own.rss > 0 && own.peak_rss >= own.rss, "{own:?}");
    }
}
