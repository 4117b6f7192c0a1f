//! `loyalty-scorer probe`: one HTTP GET of a health endpoint, for the
//! container's health check, whose image has no curl. Exits 0 on a 2xx
//! answer and 1 on anything else, with one line on standard error saying
//! why (the status and the first line of the body, or what failed).
//!
//! It speaks just enough HTTP/1.1 for the admin listener next to it: a plain
//! `http://` URL, `Connection: close`, the status line and the body's first
//! line. No TLS, redirects or proxies, and no async runtime: it runs every
//! few seconds and should cost next to nothing.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The daemon's readiness on its default admin address.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9464/health/readyz";

/// Enough for a status line, headers and a short body; the rest is not read.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Longest part of the body quoted in the reason.
const MAX_QUOTED_CHARS: usize = 200;

#[derive(Debug, clap::Args)]
pub struct ProbeArgs {
    /// The endpoint to ask: `http://HOST[:PORT]/PATH` (port 80 by default).
    #[arg(long, default_value = DEFAULT_URL)]
    pub url: String,
    /// How long resolving, connecting, sending and reading may take in all.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
}

pub fn run(args: &ProbeArgs) -> anyhow::Result<ExitCode> {
    match probe(&args.url, Duration::from_millis(args.timeout_ms)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(reason) => {
            eprintln!("probe {}: {reason}", args.url);
            Ok(ExitCode::from(1))
        }
    }
}

/// `Ok` on a 2xx answer; otherwise why not, in one line.
fn probe(url: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let target = Target::parse(url)?;
    let mut stream = connect(&target, deadline)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: loyalty-scorer-probe\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream.set_write_timeout(Some(remaining(deadline)?)).map_err(|e| format!("sending the request: {e}"))?;
    stream.write_all(request.as_bytes()).map_err(|e| format!("sending the request: {e}"))?;
    let answer = read_answer(&mut stream, deadline)?;
    judge(&answer)
}

/// Where to connect and what to ask for.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    /// `host:port` as given (the `Host` header), with the port filled in.
    authority: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, String> {
        let Some(rest) = url.strip_prefix("http://") else {
            return Err("expected a URL that starts with http:// (the admin listener speaks plain HTTP)".to_owned());
        };
        let (authority, path) = rest.find(['/', '?']).map_or((rest, "/"), |i| rest.split_at(i));
        let path = if path.starts_with('?') { format!("/{path}") } else { path.to_owned() };
        if authority.is_empty() || authority.contains('@') || authority.contains(char::is_whitespace) {
            return Err("expected http://HOST[:PORT]/PATH".to_owned());
        }
        // A port is there when the last ':' follows the host, not an IPv6 literal's inside.
        let has_port = match authority.rsplit_once(':') {
            Some((host, port)) => {
                (!host.contains(':') || host.ends_with(']'))
                    && !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit())
            }
            None => false,
        };
        let authority = if has_port { authority.to_owned() } else { format!("{authority}:80") };
        Ok(Target { authority, path })
    }
}

fn remaining(deadline: Instant) -> Result<Duration, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() { Err("timed out".to_owned()) } else { Ok(left) }
}

fn connect(target: &Target, deadline: Instant) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> =
        target.authority.to_socket_addrs().map_err(|e| format!("cannot resolve {}: {e}", target.authority))?.collect();
    let mut last = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, remaining(deadline)?) {
            Ok(stream) => return Ok(stream),
            Err(error) => last = Some((addr, error)),
        }
    }
    Err(match last {
        Some((addr, error)) => format!("cannot connect to {addr}: {error}"),
        None => format!("{} resolves to no address", target.authority),
    })
}

/// Reads until the server closes the connection, [`MAX_ANSWER_BYTES`] or
/// the deadline. What arrived before a timeout still counts when it holds
/// the status line.
fn read_answer(stream: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, String> {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while answer.len() < MAX_ANSWER_BYTES {
        let left = match remaining(deadline) {
            Ok(left) => left,
            Err(_) if answer.windows(2).any(|w| w == b"\r\n") => break,
            Err(_) => return Err("timed out waiting for the answer".to_owned()),
        };
        stream.set_read_timeout(Some(left)).map_err(|e| format!("reading the answer: {e}"))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
            Err(e) if answer.is_empty() => return Err(format!("reading the answer: {e}")),
            // A reset after the answer (the server closing first) loses nothing.
            Err(_) => break,
        }
    }
    Ok(answer)
}

/// The verdict on a raw answer: its status, and the body's first line for a
/// failure.
fn judge(answer: &[u8]) -> Result<(), String> {
    if answer.is_empty() {
        return Err("the server closed the connection without answering".to_owned());
    }
    let text = String::from_utf8_lossy(answer);
    let status_line = text.lines().next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(format!("not an HTTP answer: {:?}", quote(status_line)));
    };
    let Some(code) = code.parse::<u16>().ok().filter(|_| version.starts_with("HTTP/1.")) else {
        return Err(format!("not an HTTP answer: {:?}", quote(status_line)));
    };
    if (200..300).contains(&code) {
        return Ok(());
    }
    let phrase = parts.next().unwrap_or_default().trim();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    let first = body.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
    let mut reason = code.to_string();
    if !phrase.is_empty() {
        reason.push(' ');
        reason.push_str(&quote(phrase));
    }
    if !first.is_empty() {
        reason.push_str(": ");
        reason.push_str(&quote(first));
    }
    Err(reason)
}

/// `s` cut to [`MAX_QUOTED_CHARS`], control characters replaced, so the
/// reason stays one readable line whatever the server sent.
fn quote(s: &str) -> String {
    s.chars().take(MAX_QUOTED_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = |url: &str| Target::parse(url).map(|t| (t.authority, t.path));
        assert_eq!(t("http://127.0.0.1:9464/health/readyz"), Ok(("127.0.0.1:9464".into(), "/health/readyz".into())));
        assert_eq!(t("http://localhost"), Ok(("localhost:80".into(), "/".into())));
        assert_eq!(t("http://[::1]:9464/x?y=1"), Ok(("[::1]:9464".into(), "/x?y=1".into())));
        assert_eq!(t("http://[::1]/x"), Ok(("[::1]:80".into(), "/x".into())));
        assert_eq!(t("http://h:1?q"), Ok(("h:1".into(), "/?q".into())));
        assert!(t("https://127.0.0.1:9464/").is_err());
        assert!(t("127.0.0.1:9464/health/readyz").is_err());
        assert!(t("http:///health").is_err());
        assert!(t("http://u:p@h:1/").is_err());
    }

    #[test]
    fn verdicts() {
        assert_eq!(judge(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nready\n"), Ok(()));
        assert_eq!(judge(b"HTTP/1.0 204 No Content\r\n\r\n"), Ok(()));
        assert_eq!(
            judge(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 25\r\n\r\nnot ready: shutting down\n"),
            Err("503 Service Unavailable: not ready: shutting down".to_owned())
        );
        assert_eq!(judge(b"HTTP/1.1 404 Not Found\r\n\r\n"), Err("404 Not Found".to_owned()));
        assert_eq!(judge(b"HTTP/1.1 500\r\n\r\nboom\r\nmore"), Err("500: boom".to_owned()));
        assert_eq!(judge(b"HTTP/1.1 302 Found\r\nlocation: /\r\n\r\n"), Err("302 Found".to_owned()));
        assert!(judge(b"SSH-2.0-OpenSSH\r\n").is_err_and(|e| e.starts_with("not an HTTP answer")));
        assert!(judge(b"").is_err_and(|e| e.contains("without answering")));
        assert!(judge(b"HTTP/1.1 500 x\r\n\r\nline\x1b[31m red").is_err_and(|e| !e.contains('\x1b')));
    }
}
