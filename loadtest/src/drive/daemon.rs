//! The `unbatched` and `scorer` modes' system under test: the real
//! `loyalty-scorer run --config FILE` binary, its log in the report folder.
//! Ready when `/health/readyz` answers 200 (partitions assigned, Redis
//! answering); stopped with SIGTERM (it drains and commits), or SIGKILL when
//! its guard is dropped first.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::services::{Guarded, tail};

/// How long the daemon may take to be assigned its partitions.
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// The scorer binary: `path` when given, else the one built next to this
/// program (`target/release` or `target/debug`), else the other profile's.
pub fn find_binary(path: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = path {
        if !path.is_file() {
            bail!("--scorer-bin {}: no such file", path.display());
        }
        return Ok(path.to_path_buf());
    }
    let exe = std::env::current_exe().context("locating this program")?;
    let dir = exe.parent().context("locating this program's directory")?;
    let mut candidates = vec![dir.join("loyalty-scorer")];
    if let Some(target) = dir.parent() {
        for profile in ["release", "debug"] {
            candidates.push(target.join(profile).join("loyalty-scorer"));
        }
    }
    candidates.into_iter().find(|c| c.is_file()).with_context(|| {
        format!(
            "no loyalty-scorer binary next to {}: build it (cargo build --release, or cargo build for a debug build) or pass --scorer-bin",
            exe.display()
        )
    })
}

#[derive(Debug)]
pub struct Daemon {
    pub process: Guarded,
    pub log: PathBuf,
    admin_port: u16,
}

impl Daemon {
    pub fn start(binary: &Path, config: &Path, log: &Path, admin_port: u16) -> anyhow::Result<Daemon> {
        let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(binary)
            .arg("run")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Daemon { process: Guarded { child, name: "loyalty-scorer" }, log: log.to_path_buf(), admin_port })
    }

    /// Waits for `/health/readyz` to answer 200.
    pub async fn ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(status) = self.process.exited() {
                bail!("loyalty-scorer exited ({status}) before it was ready; its log:\n{}", tail(&self.log, 30));
            }
            if readyz(self.admin_port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("loyalty-scorer not ready within {READY_DEADLINE:?}; its log:\n{}", tail(&self.log, 30));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then its exit status within `timeout` (SIGKILL after it).
    pub async fn stop(mut self, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let pid = self.process.pid().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().context("running kill -TERM")?;
        if !sent.success() {
            return Ok(self.process.exited());
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.process.exited() {
                return Ok(Some(status));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(None)
    }

    /// The body of `GET /metrics`, or `None` when the daemon does not answer.
    pub fn metrics(&self) -> Option<String> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.admin_port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.").then_some(())?;
        (head.get(9..12) == Some("200")).then(|| body.to_owned())
    }
}

/// `GET /health/readyz` answered 200.
fn readyz(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /health/readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}
