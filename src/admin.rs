//! The admin HTTP listener: `GET /metrics`, `GET /health/livez` and
//! `GET /health/readyz`; 404 for any other path.
//!
//! It reads shared state and never changes it: the daemon flips
//! [`Readiness`], the recorder fills the [`PrometheusHandle`]. The one value
//! it records is [`metric::READY`], sampled from [`Readiness`] at each scrape,
//! as the flags behind it have several writers. It binds
//! before the daemon consumes anything ([`AdminServer::bind`]), so a taken
//! port stops start-up with an error naming the address, and it stops when
//! the shutdown token is cancelled.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::telemetry::{self, metric};

/// Loopback only by default: the endpoints are unauthenticated.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9464);

/// The Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// How long connections may take to finish after cancellation before the
/// server stops waiting for them, so a stuck scraper cannot hold up the
/// daemon's drain.
pub const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Whether the daemon should receive work, as `/health/readyz` reports it.
///
/// The daemon's tasks set the flags; the admin server only reads them. Each
/// flag stands alone and guards no other data, so relaxed ordering suffices.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Set by the consumer when it is a member of the group, with or without
    /// partitions (a group with more members than partitions is healthy).
    assigned: AtomicBool,
    /// Set by the state store's health check or the last round trip.
    redis_available: AtomicBool,
    /// Set once at shutdown and never cleared.
    shutting_down: AtomicBool,
}

/// Why the daemon is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    ShuttingDown,
    NotInGroup,
    RedisUnavailable,
}

impl NotReady {
    pub const fn as_str(self) -> &'static str {
        match self {
            NotReady::ShuttingDown => "shutting down",
            NotReady::NotInGroup => "not a member of the consumer group",
            NotReady::RedisUnavailable => "redis is not answering",
        }
    }
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_assigned(&self, assigned: bool) {
        self.assigned.store(assigned, Ordering::Relaxed);
    }

    pub fn set_redis_available(&self, available: bool) {
        self.redis_available.store(available, Ordering::Relaxed);
    }

    /// Not ready from now on, whatever the other flags say.
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    /// Ready, or the first reason not to be (shutdown first).
    pub fn check(&self) -> Result<(), NotReady> {
        if self.shutting_down.load(Ordering::Relaxed) {
            Err(NotReady::ShuttingDown)
        } else if !self.assigned.load(Ordering::Relaxed) {
            Err(NotReady::NotInGroup)
        } else if !self.redis_available.load(Ordering::Relaxed) {
            Err(NotReady::RedisUnavailable)
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen for admin requests on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("admin listener on {addr} failed")]
    Serve {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
}

/// A bound admin listener, not yet serving.
#[derive(Debug)]
pub struct AdminServer {
    listener: TcpListener,
    addr: SocketAddr,
}

#[derive(Clone)]
struct AppState {
    metrics: PrometheusHandle,
    readiness: Arc<Readiness>,
}

impl AdminServer {
    /// Binds `addr` (port 0 picks a free port; see [`Self::local_addr`]).
    pub async fn bind(addr: SocketAddr) -> Result<Self, AdminError> {
        let listener = TcpListener::bind(addr).await.map_err(|source| AdminError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| AdminError::Bind { addr, source })?;
        Ok(Self { listener, addr })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` is cancelled, then lets open requests finish
    /// for up to [`CLOSE_GRACE`]. Also runs the recorder's upkeep, so
    /// whoever serves the metrics keeps their memory bounded.
    pub async fn serve(
        self,
        metrics: PrometheusHandle,
        readiness: Arc<Readiness>,
        shutdown: CancellationToken,
    ) -> Result<(), AdminError> {
        let addr = self.addr;
        let upkeep = tokio::spawn(telemetry::upkeep(metrics.clone(), shutdown.clone()));
        let app = Router::new()
            .route("/metrics", get(render_metrics))
            .route("/health/livez", get(livez))
            .route("/health/readyz", get(readyz))
            .with_state(AppState { metrics, readiness });
        tracing::info!(%addr, "admin listener started");
        let server = axum::serve(self.listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let grace_over = async {
            shutdown.cancelled().await;
            tokio::time::sleep(CLOSE_GRACE).await;
        };
        let result = tokio::select! {
            result = server => result.map_err(|source| AdminError::Serve { addr, source }),
            () = grace_over => {
                tracing::warn!(%addr, "admin connections still open after the grace period; closing");
                Ok(())
            }
        };
        // Ends the upkeep task too when the server fails before cancellation.
        upkeep.abort();
        tracing::info!(%addr, "admin listener stopped");
        result
    }
}

async fn render_metrics(State(state): State<AppState>) -> Response {
    let ready = if state.readiness.check().is_ok() { 1.0 } else { 0.0 };
    metrics::gauge!(metric::READY).set(ready);
    ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], state.metrics.render()).into_response()
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.readiness.check() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", reason.as_str())).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_outranks_other_reasons() {
        let r = Readiness::new();
        assert_eq!(r.check(), Err(NotReady::NotInGroup));
        r.set_assigned(true);
        assert_eq!(r.check(), Err(NotReady::RedisUnavailable));
        r.set_redis_available(true);
        assert_eq!(r.check(), Ok(()));
        r.begin_shutdown();
        assert_eq!(r.check(), Err(NotReady::ShuttingDown));
        r.set_assigned(false);
        assert_eq!(r.check(), Err(NotReady::ShuttingDown));
    }
}
