//! Signals. Stopping: the first SIGTERM or SIGINT asks every task to finish
//! what it is doing (a cancellation token), the second stops the process at
//! once. Reloading: SIGHUP asks the daemon to read its rules files again.
//! Stopping at once loses nothing: the events after the last commit are
//! redelivered and recognised as repeats.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Exit code after a second signal: 128 + SIGINT, as shells report it.
pub const FORCED_EXIT_CODE: i32 = 130;

/// Cancels `token` on the first SIGTERM or SIGINT and exits the process on
/// the second. Runs until the second signal (spawn it).
pub async fn watch_signals(token: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing the batches in flight, then stopping"),
        _ = int.recv() => tracing::info!("SIGINT: finishing the batches in flight, then stopping"),
    }
    token.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::warn!("second signal: stopping now; uncommitted events will be redelivered");
    std::process::exit(FORCED_EXIT_CODE);
}

/// Sets `reload` on every SIGHUP: the daemon reads its rules files again
/// before its next batch. Runs until the process ends (spawn it).
pub async fn watch_reloads(reload: &std::sync::atomic::AtomicBool) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the rules files before the next batch");
        reload.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(())
}
