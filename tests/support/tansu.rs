//! A real Kafka-protocol broker for end-to-end tests: Tansu, with in-memory
//! storage, on a free loopback port; plus the Kafka client helpers the tests
//! share (topics, producing a stream, reading a topic to the end).
//!
//! `.ci/deps` installs Tansu (`cargo install tansu`) when it is missing.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// The Tansu program: `TANSU` when set, else where `cargo install` puts it
/// (`$CARGO_HOME/bin`, `~/.cargo/bin`), else `PATH`.
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

/// One Tansu broker, stopped when dropped.
pub struct Tansu {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Tansu {
    pub fn start() -> Tansu {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("tansu.log")).unwrap();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu_program())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start tansu ({}): {e}; .ci/deps installs it", tansu_program().display())
            });
        let tansu = Tansu { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        tansu
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates topics with `partitions` partitions each.
    pub async fn create_topics(&self, names: &[&str], partitions: i32) {
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", self.brokers()).create().unwrap();
        let topics: Vec<NewTopic<'_>> =
            names.iter().map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1))).collect();
        let results = admin.create_topics(&topics, &AdminOptions::new()).await.unwrap();
        for result in results {
            if let Err((topic, error)) = result {
                panic!("creating topic {topic}: {error}");
            }
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of a JSON string field, found by its exact `"name":"` prefix.
pub fn json_field<'a>(line: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let prefix = format!("\"{name}\":\"");
    let start = line.windows(prefix.len()).position(|w| w == prefix.as_bytes())? + prefix.len();
    let len = line[start..].iter().position(|b| *b == b'"')?;
    Some(&line[start..start + len])
}

/// Produces every line to `topic`, keyed by its `member_id`, and waits for
/// every acknowledgement.
pub async fn produce_lines(brokers: &str, topic: &str, lines: &[&[u8]]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    let mut deliveries = Vec::with_capacity(lines.len());
    for line in lines {
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(*line);
        if let Some(key) = json_field(line, "member_id") {
            record = record.key(key);
        }
        deliveries.push(loyalty_scorer::kafka::send(&producer, record).await.unwrap());
    }
    for delivery in deliveries {
        delivery.await.unwrap().unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

/// One record read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// Reads `topic` from the beginning of each of its `partitions` up to its end:
/// past the high watermark when the read starts, and until nothing more
/// comes for 3 s (Tansu's reported high watermark can lag behind its log).
pub fn read_topic(brokers: &str, topic: &str, partitions: i32) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "50")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in 0..partitions {
        let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).unwrap();
        ends.push(high);
        assignment.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let mut next = vec![0i64; partitions as usize];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut idle = Instant::now();
    while next.iter().zip(&ends).any(|(n, e)| n < e) || idle.elapsed() < Duration::from_secs(3) {
        assert!(Instant::now() < deadline, "reading {topic}: at {next:?} of {ends:?}");
        let Some(message) = consumer.poll(Duration::from_millis(100)) else { continue };
        idle = Instant::now();
        let message = message.unwrap();
        next[message.partition() as usize] = message.offset() + 1;
        let headers = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        records.push(Record {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    records
}
