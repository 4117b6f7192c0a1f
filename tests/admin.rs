//! The admin listener over real sockets: each test binds 127.0.0.1:0 and
//! speaks HTTP/1.1 through a bare TcpStream.
//!
//! The recorder is process-wide, so only `installed_recorder_is_served`
//! installs one; the other tests scope a recorder of their own with
//! `metrics::with_local_recorder`. A scrape sets the readiness gauge
//! through whichever recorder is global at that moment, so the tests that
//! scrape `/metrics` take [`SCRAPES`] for their whole run: otherwise one
//! test's not-ready server can write 0 between another's readiness change
//! and its scrape.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use loyalty_scorer::admin::{AdminError, AdminServer, CLOSE_GRACE, METRICS_CONTENT_TYPE, Readiness};
use loyalty_scorer::telemetry::{self, metric};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

static SCRAPES: Mutex<()> = Mutex::const_new(());

struct Running {
    addr: SocketAddr,
    readiness: Arc<Readiness>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), AdminError>>,
}

async fn start(metrics: PrometheusHandle) -> Running {
    let server = AdminServer::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = server.local_addr();
    let readiness = Arc::new(Readiness::new());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.serve(metrics, readiness.clone(), shutdown.clone()));
    Running { addr, readiness, shutdown, task }
}

async fn start_unused() -> Running {
    start(telemetry::build_recorder().unwrap().handle()).await
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw)).await.unwrap().unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply { status, head: head.to_ascii_lowercase(), body: body.to_owned() }
}

#[tokio::test]
async fn metrics_renders_what_the_macros_recorded() {
    let _scrapes = SCRAPES.lock().await;
    let recorder = telemetry::build_recorder().unwrap();
    metrics::with_local_recorder(&recorder, || {
        metric::describe();
        metrics::counter!(metric::EVENTS_TOTAL, metric::label::OUTCOME => metric::EventOutcome::Scored.as_str())
            .increment(3);
        metrics::counter!(
            metric::EVENTS_TOTAL,
            metric::label::OUTCOME => metric::EventOutcome::DeadLettered.as_str(),
            metric::label::REASON => loyalty_scorer::decode::Reason::InvalidJson.as_str(),
        )
        .increment(1);
        metrics::histogram!(metric::REDIS_ROUND_TRIP_SECONDS).record(0.0003);
    });
    let handle = recorder.handle();
    handle.run_upkeep();
    let admin = start(handle).await;

    let reply = get(admin.addr, "/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(reply.head.contains(&format!("content-type: {METRICS_CONTENT_TYPE}")), "{}", reply.head);
    let body = reply.body;
    assert!(body.contains("loyalty_scorer_events_total{outcome=\"scored\"} 3\n"), "{body}");
    assert!(body.contains("loyalty_scorer_events_total{outcome=\"dead_lettered\",reason=\"invalid_json\"} 1\n"));
    assert!(body.contains("# HELP loyalty_scorer_events_total "), "{body}");
    assert!(body.contains("# TYPE loyalty_scorer_redis_round_trip_seconds histogram"), "{body}");
    assert!(body.contains("loyalty_scorer_redis_round_trip_seconds_bucket{le=\"0.0005\"} 1\n"), "{body}");
    assert!(body.contains(&format!("loyalty_scorer_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"))));

    admin.shutdown.cancel();
    admin.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn installed_recorder_is_served() {
    let _scrapes = SCRAPES.lock().await;
    let handle = telemetry::install_recorder().unwrap();
    metrics::counter!(metric::REBALANCES_TOTAL).increment(2);
    let admin = start(handle).await;

    let body = get(admin.addr, "/metrics").await.body;
    assert!(body.contains("loyalty_scorer_rebalances_total 2\n"), "{body}");
    assert!(body.contains("# HELP loyalty_scorer_rebalances_total "), "{body}");
    assert!(body.contains("loyalty_scorer_ready 0\n"), "not ready yet: {body}");
    admin.readiness.set_assigned(true);
    admin.readiness.set_redis_available(true);
    let body = get(admin.addr, "/metrics").await.body;
    assert!(body.contains("loyalty_scorer_ready 1\n"), "ready at this scrape: {body}");
    assert!(telemetry::install_recorder().is_err(), "a second recorder must be refused");
}

#[tokio::test]
async fn livez_answers_while_running() {
    let admin = start_unused().await;
    let reply = get(admin.addr, "/health/livez").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "ok\n");
}

#[tokio::test]
async fn readyz_follows_readiness() {
    let admin = start_unused().await;

    let reply = get(admin.addr, "/health/readyz").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.body, "not ready: not a member of the consumer group\n");

    admin.readiness.set_assigned(true);
    let reply = get(admin.addr, "/health/readyz").await;
    assert_eq!((reply.status, reply.body.as_str()), (503, "not ready: redis is not answering\n"));

    admin.readiness.set_redis_available(true);
    let reply = get(admin.addr, "/health/readyz").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ready\n"));

    admin.readiness.begin_shutdown();
    let reply = get(admin.addr, "/health/readyz").await;
    assert_eq!((reply.status, reply.body.as_str()), (503, "not ready: shutting down\n"));
    // Liveness is not readiness: the process still runs while it drains.
    assert_eq!(get(admin.addr, "/health/livez").await.status, 200);
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let admin = start_unused().await;
    for path in ["/", "/health", "/metrics/", "/health/ready"] {
        assert_eq!(get(admin.addr, path).await.status, 404, "{path}");
    }
}

#[tokio::test]
async fn cancel_stops_the_server_despite_an_idle_keep_alive_connection() {
    let admin = start_unused().await;
    // A scraper's keep-alive connection, left open after one request.
    let mut idle = TcpStream::connect(admin.addr).await.unwrap();
    idle.write_all(format!("GET /health/livez HTTP/1.1\r\nHost: {}\r\n\r\n", admin.addr).as_bytes()).await.unwrap();
    let mut buf = [0u8; 512];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));

    admin.shutdown.cancel();
    // Before CLOSE_GRACE: idle connections close at once, the grace timer is
    // for stuck ones. The margin is for a loaded machine.
    let stopped = tokio::time::timeout(CLOSE_GRACE * 3 / 4, admin.task).await;
    stopped.expect("server still running after cancel").unwrap().unwrap();
    let refused = TcpStream::connect(admin.addr).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn binding_a_taken_port_names_the_address() {
    let first = AdminServer::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = first.local_addr();

    let error = AdminServer::bind(addr).await.unwrap_err();
    assert!(error.to_string().contains(&addr.to_string()), "{error}");
    let AdminError::Bind { addr: named, source } = &error else { panic!("{error:?}") };
    assert_eq!(*named, addr);
    assert_eq!(source.kind(), ErrorKind::AddrInUse);
    let expected = format!("cannot listen for admin requests on {addr}: {source}");
    assert_eq!(format!("{:#}", anyhow::Error::new(error)), expected);
}
