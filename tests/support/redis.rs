//! Real Redis servers for integration tests.
//!
//! [`RedisServer`] runs one `redis-server` on a free loopback port with its
//! own temporary directory and no persistence; [`RedisCluster`] runs several
//! cluster-enabled servers joined with `redis-cli --cluster create` and can
//! move a hash slot between them to cause MOVED redirections.
//!
//! [`RedisServer::start_tls`] adds a TLS port next to the plain one, with a
//! certificate made by the `openssl` program ([`TlsFiles`]); the harness
//! itself keeps talking to the plain port.
//!
//! Only std, `tempfile` and the `redis-server` / `redis-cli` / `openssl`
//! programs are used: the harness talks RESP over a [`TcpStream`] itself ([`Conn`]).
//! Every wait polls a condition against a deadline; nothing sleeps for a
//! fixed time to let something happen.
//!
//! `.ci/test` installs Redis and OpenSSL when they are missing
//! (`apt-get install redis-server openssl`).

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to answer PING after it is started.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// How long a cluster may take to report `cluster_state:ok` everywhere.
const CLUSTER_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between two polls of a condition (not a wait for the condition).
const POLL: Duration = Duration::from_millis(20);
/// Read and write timeout of one harness connection.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How many fresh ports a start tries when the one it picked was taken.
const PORT_TRIES: usize = 5;
/// The number of hash slots of a Redis cluster.
pub const SLOTS: u16 = 16384;

// ---------------------------------------------------------------------------
// RESP over TCP
// ---------------------------------------------------------------------------

/// One RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR ...` (the text after the dash)
    Error(String),
    /// `:1`
    Int(i64),
    /// `$3\r\nfoo`; `None` for the null bulk string
    Bulk(Option<Vec<u8>>),
    /// `*2 ...`; `None` for the null array
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text: a status, a bulk string (lossy UTF-8) or an integer.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    /// The text of the reply, or a panic naming `what` and the reply.
    pub fn expect_text(&self, what: &str) -> String {
        match self.text() {
            Some(text) => text,
            None => panic!("{what}: expected a text reply, got {self:?}"),
        }
    }

    /// The integer of the reply, or a panic naming `what` and the reply.
    pub fn expect_int(&self, what: &str) -> i64 {
        match self {
            Reply::Int(i) => *i,
            _ => panic!("{what}: expected an integer reply, got {self:?}"),
        }
    }

    /// Panics naming `what` unless the reply is the status `OK`.
    pub fn expect_ok(&self, what: &str) {
        if *self != Reply::Status("OK".into()) {
            panic!("{what}: expected OK, got {self:?}");
        }
    }
}

/// One RESP connection to a server on 127.0.0.1.
#[derive(Debug)]
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Connects to 127.0.0.1:`port` with short timeouts.
    pub fn open(port: u16) -> io::Result<Conn> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Conn { reader: BufReader::new(stream) })
    }

    /// Sends one command and reads its reply (an error reply is `Ok(Reply::Error)`).
    pub fn call(&mut self, args: &[&str]) -> io::Result<Reply> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&out)?;
        self.read_reply()
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed"));
        }
        if !line.ends_with("\r\n") {
            return Err(bad_data(format!("unterminated line {line:?}")));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    fn read_reply(&mut self) -> io::Result<Reply> {
        let line = self.read_line()?;
        let Some(kind) = line.chars().next() else {
            return Err(bad_data("empty reply line".into()));
        };
        let rest = &line[1..];
        let number = || rest.parse::<i64>().map_err(|_| bad_data(format!("bad length in {line:?}")));
        match kind {
            '+' => Ok(Reply::Status(rest.to_owned())),
            '-' => Ok(Reply::Error(rest.to_owned())),
            ':' => Ok(Reply::Int(number()?)),
            '$' => {
                let Ok(len) = usize::try_from(number()?) else {
                    return Ok(Reply::Bulk(None));
                };
                let mut data = vec![0; len + 2];
                self.reader.read_exact(&mut data)?;
                data.truncate(len);
                Ok(Reply::Bulk(Some(data)))
            }
            '*' => {
                let Ok(len) = usize::try_from(number()?) else {
                    return Ok(Reply::Array(None));
                };
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(self.read_reply()?);
                }
                Ok(Reply::Array(Some(items)))
            }
            _ => Err(bad_data(format!("unknown reply type in {line:?}"))),
        }
    }
}

fn bad_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Sends one command on a fresh connection to 127.0.0.1:`port`.
pub fn call(port: u16, args: &[&str]) -> io::Result<Reply> {
    Conn::open(port)?.call(args)
}

/// Like [`call`], but panics with `args` and the error on an I/O error.
pub fn must_call(port: u16, args: &[&str]) -> Reply {
    match call(port, args) {
        Ok(reply) => reply,
        Err(e) => panic!("redis on port {port}: {args:?}: {e}"),
    }
}

/// Runs `redis-cli -h 127.0.0.1 -p PORT ARGS...` and returns its output.
pub fn redis_cli(port: u16, args: &[&str]) -> Output {
    let port = port.to_string();
    let mut command = Command::new("redis-cli");
    command.args(["-h", "127.0.0.1", "-p", &port]).args(args).stdin(Stdio::null());
    match command.output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run redis-cli ({e}): {}", INSTALL_HINT),
    }
}

/// The stdout and stderr of `redis-cli`, trimmed and joined.
pub fn redis_cli_text(port: u16, args: &[&str]) -> String {
    let output = redis_cli(port, args);
    let mut text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let err = String::from_utf8_lossy(&output.stderr);
    if !err.trim().is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(err.trim());
    }
    text
}

const INSTALL_HINT: &str = "Redis is needed: run .ci/test or `apt-get install -y redis-server`";

// ---------------------------------------------------------------------------
// One server
// ---------------------------------------------------------------------------

/// Ports that were free a moment ago: each was bound on 127.0.0.1:0 and
/// released. All listeners live together so the `n` ports are distinct.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) {
            Ok(listener) => listener,
            Err(e) => panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"),
        })
        .collect();
    listeners
        .iter()
        .map(|listener| match listener.local_addr() {
            Ok(addr) => addr.port(),
            Err(e) => panic!("local address of a bound listener: {e}"),
        })
        .collect()
}

/// A `redis-server` child on 127.0.0.1 with its own temporary directory,
/// `--save ""` and `--appendonly no`: nothing survives a restart. Killed
/// (and waited for) on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// Arguments after the standard ones (auth, cluster).
    extra: Vec<String>,
    /// The default user's password, from `--requirepass`.
    password: Option<String>,
    /// The TLS port, from `--tls-port`.
    tls_port: Option<u16>,
}

impl RedisServer {
    /// Starts a plain server on a free port and waits until it answers PING.
    pub fn start() -> RedisServer {
        RedisServer::start_with_args(&[])
    }

    /// Starts a server with extra `redis-server` arguments, for example
    /// `["--requirepass", "pw"]` or `["--user", "alice", "on", ">pw", "~*", "+@all"]`.
    pub fn start_with_args(args: &[&str]) -> RedisServer {
        let extra: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        RedisServer::start_fresh(|_| extra.clone(), 1)
    }

    /// Starts a server that also accepts TLS on a second free port, with the
    /// certificate of [`TlsFiles::generate`] and no client certificates
    /// required; `args` as for [`RedisServer::start_with_args`]. The plain
    /// port stays open: [`RedisServer::call`] and [`RedisServer::cli`] use it.
    pub fn start_tls(args: &[&str]) -> RedisServer {
        let extra: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        RedisServer::start_fresh(
            |(dir, ports)| {
                let tls = TlsFiles::generate(dir);
                let path = |p: &Path| p.display().to_string();
                let mut all = vec![
                    "--tls-port".into(),
                    ports[1].to_string(),
                    "--tls-cert-file".into(),
                    path(&tls.cert),
                    "--tls-key-file".into(),
                    path(&tls.key),
                    "--tls-ca-cert-file".into(),
                    path(&tls.ca_cert),
                    "--tls-auth-clients".into(),
                    "no".into(),
                ];
                all.extend(extra.iter().cloned());
                all
            },
            2,
        )
    }

    /// Starts a cluster-enabled server with its own cluster bus port
    /// (`--cluster-port`), not yet joined to any cluster.
    pub fn start_cluster_node() -> RedisServer {
        RedisServer::start_fresh(
            |(dir, ports)| {
                let conf = dir.join("nodes.conf");
                vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    conf.display().to_string(),
                    "--cluster-node-timeout".into(),
                    "5000".into(),
                    "--cluster-port".into(),
                    ports[1].to_string(),
                ]
            },
            2,
        )
    }

    /// Picks `ports` free ports (the first is the client port), builds the
    /// extra arguments from the directory and ports, and starts; picks new
    /// ports when one was taken between the pick and the server's bind.
    fn start_fresh(extra: impl Fn((&Path, &[u16])) -> Vec<String>, ports: usize) -> RedisServer {
        let dir = match tempfile::Builder::new().prefix("redis-test-").tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("cannot create a temporary directory for redis: {e}"),
        };
        let mut server = RedisServer { port: 0, dir, child: None, extra: Vec::new(), password: None, tls_port: None };
        let mut last = String::new();
        for _ in 0..PORT_TRIES {
            let picked = free_ports(ports);
            server.port = picked[0];
            server.extra = extra((server.dir.path(), &picked));
            server.password = value_after(&server.extra, "--requirepass");
            server.tls_port = value_after(&server.extra, "--tls-port").and_then(|port| port.parse().ok());
            match server.launch(Instant::now() + START_DEADLINE) {
                Ok(()) => return server,
                Err(Launch::PortTaken(log)) => last = log,
                Err(Launch::Failed(message)) => panic!("{message}"),
            }
        }
        panic!("redis-server could not bind a free port in {PORT_TRIES} tries; last log:\n{last}")
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `redis://USER:PASSWORD@127.0.0.1:PORT/` (user and password as given, not escaped).
    pub fn url_with_auth(&self, user: &str, password: &str) -> String {
        format!("redis://{user}:{password}@127.0.0.1:{}/", self.port)
    }

    /// The TLS port of a server started with [`RedisServer::start_tls`].
    pub fn tls_port(&self) -> u16 {
        match self.tls_port {
            Some(port) => port,
            None => panic!("the server on port {} has no TLS port: start it with start_tls", self.port),
        }
    }

    /// `rediss://USER:PASSWORD@127.0.0.1:TLS_PORT/#insecure` (not escaped):
    /// `#insecure` because the certificate's CA is the test's own.
    pub fn tls_url(&self, user: &str, password: &str) -> String {
        format!("rediss://{user}:{password}@127.0.0.1:{}/#insecure", self.tls_port())
    }

    /// The certificate files of a server started with [`RedisServer::start_tls`].
    pub fn tls_files(&self) -> TlsFiles {
        TlsFiles::in_dir(self.dir.path())
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log_path(), 0, lines)
    }

    /// The process id of the running server, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the child process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends one command (after AUTH when the server has a password).
    pub fn call(&self, args: &[&str]) -> Reply {
        let result = Conn::open(self.port).and_then(|mut conn| {
            if let Some(password) = &self.password {
                conn.call(&["AUTH", password])?;
            }
            conn.call(args)
        });
        match result {
            Ok(reply) => reply,
            Err(e) => panic!("redis on port {}: {args:?}: {e}\nlog tail:\n{}", self.port, self.log_tail(20)),
        }
    }

    /// Runs `redis-cli` against this server (with `-a` when it has a password)
    /// and returns its trimmed stdout and stderr.
    pub fn cli(&self, args: &[&str]) -> String {
        match &self.password {
            Some(password) => {
                let mut all = vec!["--no-auth-warning", "-a", password.as_str()];
                all.extend_from_slice(args);
                redis_cli_text(self.port, &all)
            }
            None => redis_cli_text(self.port, args),
        }
    }

    /// Kills the server and waits for it; the port and directory are kept.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Fails only when the child already exited, which is what we want.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts it again on the same port and directory,
    /// then waits until it answers PING. With no persistence it comes back empty.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            match self.launch(deadline) {
                Ok(()) => return,
                // Something else took the port while the server was down: it
                // may be about to let go, so try again until the deadline.
                Err(Launch::PortTaken(_)) if Instant::now() < deadline => thread::sleep(POLL),
                Err(Launch::PortTaken(log)) => {
                    panic!("restart: port {} stayed taken for {START_DEADLINE:?}; log:\n{log}", self.port)
                }
                Err(Launch::Failed(message)) => panic!("restart: {message}"),
            }
        }
    }

    /// Spawns `redis-server` and waits until it answers on its port.
    fn launch(&mut self, deadline: Instant) -> Result<(), Launch> {
        let log_path = self.log_path();
        // The log is appended to across restarts: only read what this start wrote.
        let log_start = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let port = self.port.to_string();
        let dir = self.dir.path().display().to_string();
        let log = log_path.display().to_string();
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port, "--bind", "127.0.0.1", "--dir", &dir])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"])
            .args(["--logfile", &log])
            .args(&self.extra)
            .stdin(Stdio::null());
        // Errors before the log is opened (a bad argument) go to stderr: keep them.
        let stderr_path = self.dir.path().join("redis.stderr");
        let stderr_start = std::fs::metadata(&stderr_path).map(|m| m.len()).unwrap_or(0);
        match std::fs::OpenOptions::new().create(true).append(true).open(&stderr_path) {
            Ok(file) => {
                let stdout = file.try_clone().map_or_else(|_| Stdio::null(), Stdio::from);
                command.stdout(stdout).stderr(file);
            }
            Err(_) => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) => return Err(Launch::Failed(format!("cannot run redis-server ({e}): {INSTALL_HINT}"))),
        };
        self.child = Some(child);
        let fail = |this: &mut RedisServer, why: String| {
            this.stop();
            let mut tail = log_tail(&log_path, log_start, 30);
            let stderr = log_tail(&stderr_path, stderr_start, 30);
            if !stderr.trim().is_empty() {
                tail = format!("{tail}\nstderr:\n{stderr}");
            }
            if tail.contains("Address already in use") {
                Launch::PortTaken(tail)
            } else {
                Launch::Failed(format!("redis-server on port {}: {why}\nlog tail:\n{tail}", this.port))
            }
        };
        loop {
            if let Some(child) = self.child.as_mut() {
                match child.try_wait() {
                    Ok(None) => {}
                    Ok(Some(status)) => return Err(fail(self, format!("exited with {status} while starting"))),
                    Err(e) => return Err(fail(self, format!("cannot watch the child: {e}"))),
                }
            }
            // Only our own server writes our log: once it says it is ready,
            // whatever answers on the port is this server.
            let ready = log_tail(&log_path, log_start, usize::MAX).contains("Ready to accept connections");
            if ready && self.answers_ping() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(fail(self, format!("did not answer PING within {START_DEADLINE:?}")));
            }
            thread::sleep(POLL);
        }
    }

    /// Whether PING gets PONG (after AUTH when there is a password), or the
    /// server at least answers NOAUTH (a password set through other arguments).
    fn answers_ping(&self) -> bool {
        let Ok(mut conn) = Conn::open(self.port) else { return false };
        if let Some(password) = &self.password
            && !matches!(conn.call(&["AUTH", password]), Ok(Reply::Status(_)))
        {
            return false;
        }
        match conn.call(&["PING"]) {
            Ok(Reply::Status(s)) => s == "PONG",
            Ok(Reply::Error(e)) => e.starts_with("NOAUTH"),
            _ => false,
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

enum Launch {
    /// The server could not bind one of its ports; carries the log tail.
    PortTaken(String),
    /// Any other failure, with a message ready for a panic.
    Failed(String),
}

/// The value after `flag` in `args`, if any.
fn value_after(args: &[String], flag: &str) -> Option<String> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned()
}

/// The last `lines` lines of the file at `path`, from byte `from` on.
fn log_tail(path: &Path, from: u64, lines: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return format!("(no log at {})", path.display());
    };
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[from..]);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------

/// PEM files of a test CA and of a server certificate it signed, for
/// `127.0.0.1` and `localhost`, and of a client certificate it signed.
/// Clients that check certificates against the usual roots refuse the
/// server; `#insecure` URLs or the CA file make it acceptable.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca_cert: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// The `openssl` configuration the certificates are made with: the
/// system's own configuration is not read, so its defaults cannot differ.
const OPENSSL_CONF: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = loyalty-scorer test
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
";

impl TlsFiles {
    fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca_cert: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
        }
    }

    /// Makes a CA, a server and a client certificate in `dir` with the
    /// `openssl` program (P-256 keys: quick to generate), unless `dir` has
    /// them already.
    pub fn generate(dir: &Path) -> TlsFiles {
        let files = TlsFiles::in_dir(dir);
        if [&files.ca_cert, &files.cert, &files.key, &files.client_cert, &files.client_key].iter().all(|f| f.exists()) {
            return files;
        }
        let conf = dir.join("openssl.cnf");
        if let Err(e) = std::fs::write(&conf, OPENSSL_CONF) {
            panic!("cannot write {}: {e}", conf.display());
        }
        let (ca_key, csr) = (dir.join("ca.key"), dir.join("server.csr"));
        let key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        let conf_arg = conf.as_os_str();
        openssl(|c| {
            c.args(["req", "-x509", "-config"]).arg(conf_arg).args(["-extensions", "ca"]).args(key);
            c.arg("-keyout").arg(&ca_key).arg("-out").arg(&files.ca_cert);
            c.args(["-days", "2", "-subj", "/CN=loyalty-scorer test CA"]);
        });
        openssl(|c| {
            c.args(["req", "-new", "-config"]).arg(conf_arg).args(key);
            c.arg("-keyout").arg(&files.key).arg("-out").arg(&csr).args(["-subj", "/CN=localhost"]);
        });
        openssl(|c| {
            c.args(["x509", "-req", "-in"]).arg(&csr).arg("-CA").arg(&files.ca_cert).arg("-CAkey").arg(&ca_key);
            c.args(["-set_serial", "2", "-days", "2", "-extfile"]).arg(conf_arg).args(["-extensions", "server"]);
            c.arg("-out").arg(&files.cert);
        });
        let client_csr = dir.join("client.csr");
        openssl(|c| {
            c.args(["req", "-new", "-config"]).arg(conf_arg).args(key);
            c.arg("-keyout").arg(&files.client_key).arg("-out").arg(&client_csr).args(["-subj", "/CN=scorer"]);
        });
        openssl(|c| {
            c.args(["x509", "-req", "-in"]).arg(&client_csr).arg("-CA").arg(&files.ca_cert).arg("-CAkey").arg(&ca_key);
            c.args(["-set_serial", "3", "-days", "2", "-extfile"]).arg(conf_arg).args(["-extensions", "client"]);
            c.arg("-out").arg(&files.client_cert);
        });
        files
    }
}

/// Runs `openssl` with the arguments `args` adds; panics with its output when it fails.
fn openssl(args: impl FnOnce(&mut Command)) {
    let mut command = Command::new("openssl");
    args(&mut command);
    command.stdin(Stdio::null());
    let output = match command.output() {
        Ok(output) => output,
        Err(e) => panic!("cannot run openssl ({e}): run .ci/test or `apt-get install -y openssl`"),
    };
    if !output.status.success() {
        panic!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

// ---------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------

/// Several cluster-enabled servers joined into one cluster with no replicas,
/// the slots spread over them by `redis-cli --cluster create`.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    ids: Vec<String>,
}

impl RedisCluster {
    /// Starts `n` (at least 3) nodes, joins them and waits until every node
    /// reports `cluster_state:ok` and knows all `n` nodes.
    pub fn start(n: usize) -> RedisCluster {
        assert!(n >= 3, "redis-cli --cluster create needs at least 3 masters, got {n}");
        let nodes: Vec<RedisServer> = thread::scope(|scope| {
            let handles: Vec<_> = (0..n).map(|_| scope.spawn(RedisServer::start_cluster_node)).collect();
            handles
                .into_iter()
                .map(|h| match h.join() {
                    Ok(node) => node,
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect()
        });
        let addresses: Vec<String> = nodes.iter().map(|node| format!("127.0.0.1:{}", node.port())).collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addresses.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        let output = redis_cli(nodes[0].port(), &args);
        if !output.status.success() {
            panic!(
                "redis-cli --cluster create failed ({}):\n{}\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let ids = nodes.iter().map(|node| node.call(&["CLUSTER", "MYID"]).expect_text("CLUSTER MYID")).collect();
        let cluster = RedisCluster { nodes, ids };
        cluster.wait_ok();
        cluster
    }

    /// The nodes, in the order they were started.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// One node.
    pub fn node(&self, index: usize) -> &RedisServer {
        &self.nodes[index]
    }

    /// One node, mutably (to stop or restart it).
    pub fn node_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.nodes[index]
    }

    /// The cluster node id of each node, in node order.
    pub fn node_ids(&self) -> &[String] {
        &self.ids
    }

    /// `redis://127.0.0.1:P/` for every node.
    pub fn seed_urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// `CLUSTER INFO` of one node.
    pub fn cluster_info(&self, index: usize) -> String {
        self.nodes[index].call(&["CLUSTER", "INFO"]).expect_text("CLUSTER INFO")
    }

    /// Waits until every node reports `cluster_state:ok`, all slots assigned
    /// and all nodes known, and every node agrees on every node's slots.
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + CLUSTER_DEADLINE;
        let wanted_nodes = format!("cluster_known_nodes:{}", self.nodes.len());
        loop {
            let infos: Vec<String> = (0..self.nodes.len()).map(|i| self.cluster_info(i)).collect();
            let each_ok = infos.iter().all(|info| {
                info.lines().any(|l| l == "cluster_state:ok")
                    && info.lines().any(|l| l == format!("cluster_slots_assigned:{SLOTS}"))
                    && info.lines().any(|l| l == wanted_nodes)
            });
            if each_ok && self.views_agree() {
                return;
            }
            if Instant::now() >= deadline {
                let mut report = String::new();
                for (i, info) in infos.iter().enumerate() {
                    let _ = writeln!(report, "node {i} (port {}):\n{info}", self.nodes[i].port());
                    let _ = writeln!(report, "log tail:\n{}\n", self.nodes[i].log_tail(15));
                }
                panic!("cluster not ok within {CLUSTER_DEADLINE:?}:\n{report}");
            }
            thread::sleep(POLL);
        }
    }

    /// Whether every node's `CLUSTER NODES` gives every node the same slots.
    fn views_agree(&self) -> bool {
        let views: Vec<SlotView> = (0..self.nodes.len()).map(|i| self.slot_view(i)).collect();
        views.windows(2).all(|pair| pair[0] == pair[1])
    }

    /// Node id and owned slot ranges of every node, as node `index` sees them,
    /// sorted by node id. Migration markers (`[slot->-id]`) are left out.
    fn slot_view(&self, index: usize) -> SlotView {
        let text = self.nodes[index].call(&["CLUSTER", "NODES"]).expect_text("CLUSTER NODES");
        let mut view: SlotView = text
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let id = (*fields.first()?).to_owned();
                let ranges = fields.iter().skip(8).filter_map(|field| parse_range(field)).collect();
                Some((id, ranges))
            })
            .collect();
        view.sort();
        view
    }

    /// The index of the node that owns `slot`, as node 0 sees it.
    pub fn slot_owner(&self, slot: u16) -> usize {
        let view = self.slot_view(0);
        for (id, ranges) in view {
            if ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&slot)) {
                return self.index_of(&id);
            }
        }
        panic!("no node owns slot {slot}")
    }

    /// The index of the node that owns `key`'s slot.
    pub fn key_owner(&self, key: &str) -> usize {
        self.slot_owner(key_slot(key))
    }

    fn index_of(&self, id: &str) -> usize {
        match self.ids.iter().position(|known| known == id) {
            Some(index) => index,
            None => panic!("unknown cluster node id {id}"),
        }
    }

    /// Moves hash `slot` with all its keys from its owner to node `to_node`,
    /// the way `redis-cli --cluster reshard` does: IMPORTING on the target,
    /// MIGRATING on the source, MIGRATE the keys, then `SETSLOT .. NODE` on
    /// every node. Afterwards a client asking the old owner gets MOVED.
    /// Waits until every node agrees on the new owner and the cluster is ok.
    pub fn migrate_slot(&self, slot: u16, to_node: usize) {
        assert!(slot < SLOTS, "slot {slot} out of range");
        assert!(to_node < self.nodes.len(), "no node {to_node}");
        let from_node = self.slot_owner(slot);
        if from_node == to_node {
            return;
        }
        let (from, to) = (&self.nodes[from_node], &self.nodes[to_node]);
        let (from_id, to_id) = (self.ids[from_node].as_str(), self.ids[to_node].as_str());
        let slot_text = slot.to_string();
        let slot_arg = slot_text.as_str();

        to.call(&["CLUSTER", "SETSLOT", slot_arg, "IMPORTING", from_id]).expect_ok("SETSLOT IMPORTING");
        from.call(&["CLUSTER", "SETSLOT", slot_arg, "MIGRATING", to_id]).expect_ok("SETSLOT MIGRATING");

        let to_port = to.port().to_string();
        loop {
            let keys = match from.call(&["CLUSTER", "GETKEYSINSLOT", slot_arg, "100"]) {
                Reply::Array(Some(items)) => {
                    items.iter().map(|item| item.expect_text("GETKEYSINSLOT key")).collect::<Vec<String>>()
                }
                other => panic!("CLUSTER GETKEYSINSLOT {slot}: {other:?}"),
            };
            if keys.is_empty() {
                break;
            }
            let mut args = vec!["MIGRATE", "127.0.0.1", to_port.as_str(), "", "0", "5000", "KEYS"];
            args.extend(keys.iter().map(String::as_str));
            match from.call(&args) {
                Reply::Status(s) if s == "OK" || s == "NOKEY" => {}
                other => panic!("MIGRATE of slot {slot} to port {to_port}: {other:?}"),
            }
        }

        // Target first, then source, then the others, as the cluster spec advises.
        let mut order = vec![to_node, from_node];
        order.extend((0..self.nodes.len()).filter(|i| *i != to_node && *i != from_node));
        for i in order {
            self.nodes[i].call(&["CLUSTER", "SETSLOT", slot_arg, "NODE", to_id]).expect_ok("SETSLOT NODE");
        }

        let deadline = Instant::now() + CLUSTER_DEADLINE;
        while !(0..self.nodes.len()).all(|i| self.owner_seen_by(i, slot) == Some(to_node)) {
            if Instant::now() >= deadline {
                panic!("slot {slot} not seen on node {to_node} by every node within {CLUSTER_DEADLINE:?}");
            }
            thread::sleep(POLL);
        }
        self.wait_ok();
    }

    fn owner_seen_by(&self, index: usize, slot: u16) -> Option<usize> {
        self.slot_view(index)
            .into_iter()
            .find(|(_, ranges)| ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&slot)))
            .map(|(id, _)| self.index_of(&id))
    }
}

/// Node id and owned inclusive slot ranges of every node, sorted by node id.
type SlotView = Vec<(String, Vec<(u16, u16)>)>;

/// `"5"` or `"0-5460"` as an inclusive range; `None` for `[..]` markers.
fn parse_range(field: &str) -> Option<(u16, u16)> {
    if field.starts_with('[') {
        return None;
    }
    match field.split_once('-') {
        Some((lo, hi)) => Some((lo.parse().ok()?, hi.parse().ok()?)),
        None => {
            let slot = field.parse().ok()?;
            Some((slot, slot))
        }
    }
}

/// The hash slot of `key` per the Redis cluster spec: CRC16 (XMODEM) of the
/// hash tag (the text between the first `{` and the next `}`, when not
/// empty) or else of the whole key, modulo 16384.
pub fn key_slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = match bytes.iter().position(|&b| b == b'{') {
        Some(open) => match bytes[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
            _ => bytes,
        },
        None => bytes,
    };
    crc16_xmodem(hashed) % SLOTS
}

/// CRC-16/XMODEM: polynomial 0x1021, initial value 0, no reflection.
pub fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}
