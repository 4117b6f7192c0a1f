//! `loyalty-scorer run --config FILE`: the daemon (see [`crate::daemon`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use crate::admin::AdminServer;
use crate::commands::load_programs;
use crate::config::Config;
use crate::daemon::{self, Controls};
use crate::shutdown;
use crate::state::redis::{RedisStore, redact, tls_files};
use crate::telemetry::{self, metric, prometheus};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The configuration file (TOML; see docs/configuration.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Overrides one setting, after the file and the environment:
    /// `--set kafka.brokers=host:9092` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let overrides = args
        .set
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                .with_context(|| format!("--set {pair:?}: expected KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config =
        Config::load(args.config.as_deref(), std::env::vars_os(), &overrides).map_err(|e| anyhow::anyhow!("{e}"))?;
    // `LOYALTY_SCORER_LOG`, when set, overrides `logging.level`.
    let format = match config.logging.format {
        crate::config::LogFormat::Text => telemetry::LogFormat::Text,
        crate::config::LogFormat::Json => telemetry::LogFormat::Json,
    };
    telemetry::init_tracing(format, &config.logging.level.to_string().to_ascii_lowercase())?;
    let programs = load_programs(&config.programs.rules)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(serve(config, programs))
}

async fn serve(config: Config, programs: crate::rules::ProgramSet) -> anyhow::Result<ExitCode> {
    let handle = prometheus::install_recorder().context("installing the metrics recorder")?;
    metric::describe();
    let controls = Arc::new(Controls::default());
    let readiness = controls.readiness.clone();
    let token = controls.shutdown.clone();
    let signals = token.clone();
    tokio::spawn(async move {
        if let Err(error) = shutdown::watch_signals(signals).await {
            tracing::error!(%error, "cannot watch for signals");
        }
    });
    if config.programs.reload_on_sighup {
        let reload = controls.clone();
        tokio::spawn(async move {
            if let Err(error) = shutdown::watch_reloads(&reload.reload).await {
                tracing::error!(%error, "cannot watch for SIGHUP");
            }
        });
    }
    let admin = AdminServer::bind(config.admin.listen).await?;
    tracing::info!(listen = %admin.local_addr(), "admin endpoints: /metrics, /health/livez, /health/readyz");
    let admin_task = tokio::spawn(admin.serve(handle, readiness.clone(), token.clone()));

    let url = config.redis.url.expose();
    let r = &config.redis;
    let tls = tls_files(r.tls_ca_file.as_deref(), r.tls_cert_file.as_deref(), r.tls_key_file.as_deref())?;
    // One connection per scoring lane: a lane's round trips never wait
    // behind another's on a shared connection.
    let mut stores = Vec::with_capacity(config.batching.lanes);
    for _ in 0..config.batching.lanes.max(1) {
        let store = RedisStore::connect_with_tls(url, &r.key_prefix, tls.as_ref())
            .await
            .with_context(|| format!("connecting to Redis at {}", redact(url)))?;
        stores.push(store);
    }
    let daemon = daemon::run(&config, programs, stores, &controls);
    tokio::pin!(daemon);
    let timeout = config.daemon.shutdown_timeout;
    let result = tokio::select! {
        result = &mut daemon => result,
        () = async { token.cancelled().await; tokio::time::sleep(timeout).await } => {
            tracing::error!(timeout_ms = timeout.as_millis() as u64, "shutdown timed out; stopping with the batches in flight uncommitted (they will be redelivered)");
            return Ok(ExitCode::from(1));
        }
    };
    token.cancel();
    let _ = admin_task.await;
    let summary = result?;
    tracing::info!(events = summary.events, rewards = summary.rewards, dead_letters = summary.dead_letters, "stopped");
    Ok(ExitCode::SUCCESS)
}
