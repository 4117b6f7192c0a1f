//! `loyalty-scorer probe` through the real binary against a tiny HTTP
//! listener on 127.0.0.1 that answers what each test scripts: the exit code
//! the container's health check sees, and the one line of reason. The probe
//! against a running daemon is in `tests/deploy.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::thread::JoinHandle;

fn probe(url: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loyalty-scorer"))
        .args(["probe", "--url", url])
        .args(extra)
        .output()
        .expect("run loyalty-scorer probe")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Answers one connection with `answer` once the request's head has
/// arrived, and returns the head it read.
fn serve_once(answer: &'static str) -> (SocketAddr, JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let thread = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).expect("read the request") == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        reader.get_mut().write_all(answer.as_bytes()).expect("write the answer");
        head
    });
    (addr, thread)
}

#[test]
fn a_2xx_answer_exits_0_silently() {
    let (addr, server) = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nready\n");
    let out = probe(&format!("http://{addr}/health/readyz"), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    let head = server.join().expect("listener thread");
    assert!(head.starts_with("GET /health/readyz HTTP/1.1\r\n"), "{head}");
    assert!(head.contains(&format!("Host: {addr}\r\n")), "{head}");
}

#[test]
fn a_503_exits_1_with_the_status_and_the_body() {
    let (addr, server) = serve_once(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 25\r\nconnection: close\r\n\r\nnot ready: shutting down\n",
    );
    let url = format!("http://{addr}/health/readyz");
    let out = probe(&url, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), format!("probe {url}: 503 Service Unavailable: not ready: shutting down\n"));
    server.join().expect("listener thread");
}

#[test]
fn nothing_listening_exits_1() {
    let addr = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    // The listener is dropped: nothing listens on the port any more.
    let out = probe(&format!("http://{addr}/health/livez"), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(&format!("cannot connect to {addr}")), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_server_that_never_answers_exits_1_at_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Accepted by the kernel's backlog, never answered.
    let out = probe(&format!("http://{addr}/health/readyz"), &["--timeout-ms", "300"]);
    drop(listener);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
}

#[test]
fn a_url_it_cannot_ask_exits_1() {
    let out = probe("https://127.0.0.1:9464/health/readyz", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("http://"), "{}", stderr(&out));
}
