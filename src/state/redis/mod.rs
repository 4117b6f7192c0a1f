//! The Redis state store: member states in Redis (one server or a Redis
//! Cluster), loaded and written back a whole batch at a time.
//!
//! # Target
//!
//! [`RedisStore::connect`] takes the redis crate's URL conventions:
//!
//! - `redis://[user][:password@]host:port[/db]`: one server; `rediss://` for
//!   TLS (rustls, webpki roots; [`RedisStore::connect_with_tls`] takes a
//!   private CA and a client certificate; `#insecure` skips certificate
//!   checks).
//! - `redis+cluster://[user][:password@]host:port[,host:port...][/]` (or
//!   `rediss+cluster://`): the seed nodes of a Redis Cluster, sharing one
//!   user, password and TLS setting.
//! - `redis://a:1/,redis://b:2/`: a comma-separated list of URLs is the same
//!   as `redis+cluster://`, each seed with its own settings. A single
//!   `redis://` URL is always a standalone server.
//!
//! The AUTH/ACL user and password come through the URL and never leave it:
//! every message that names a URL passes it through [`redact`], and the
//! store's `Debug` shows only the redacted target.
//!
//! # Keys
//!
//! Two keys per member, under one hash tag: the braces of
//! `<prefix>:{<program>:<member>}` make `<program>:<member>` the tag, so every
//! key a member will ever have lives in one cluster slot and a script may
//! touch them together; the prefix (no braces allowed) lets deployments and
//! tests share a server without sharing keys.
//!
//! - `<prefix>:{<program>:<member>}`, a string: the version (8 bytes, big
//!   endian, at least 1) then the [`encode_state`] bytes.
//! - `<prefix>:{<program>:<member>}:r`, a hash: event id -> encoded record
//!   ([`StoredEvent`]).
//!
//! A string rather than a hash for the state: a hash value longer than
//! `hash-max-listpack-value` (64 bytes by default) turns the hash into a
//! table that costs about 170 bytes more per member.
//!
//! # Writes: versions, not locks
//!
//! [`BatchStore::apply`] runs `cas.lua` (by SHA, `EVALSHA`) per member: it
//! compares the stored version (`GETRANGE 0 7`, "" when absent) with the
//! version the writer loaded; when equal it sets the state with the next
//! version, sets the changed records, removes expired records when the
//! writer says a sweep is due and returns 1, else it changes nothing and returns 0. This is
//! optimistic concurrency: two scorers that loaded the same version cannot
//! both write, the loser reloads and evaluates again, and there is no lock
//! that a crashed or partitioned process could leave behind for a timeout to
//! clean up. The script runs atomically in Redis, so compare and set cannot
//! interleave, and an event's record is written with its state change.
//!
//! `ttl_ms` expires the state (`SET ... PX`; none without it): a member that
//! sees no event for that long is dropped, which bounds memory for programs
//! that let inactive members lapse. Every write renews it. The records hash
//! gets a time to live from a member's first write and from each sweep (see
//! [`crate::state::Retention`]): renewing it on every write would cost every
//! write a command.
//!
//! # Round trips
//!
//! A batch is one pipeline per node: `GET` of the state and `HMGET` of the
//! records the batch needs per member to load, `EVALSHA` per member to apply.
//! On a cluster the store keeps its own slot map (`CLUSTER SLOTS`) and its
//! own connection per node, groups a batch's keys by the node that owns their
//! slot and sends the per-node pipelines concurrently. The redis crate's
//! `ClusterConnection` is not used: it sends a pipeline to the slot of its
//! first key only, and when any reply of a pipeline is `MOVED`, `ASK` or
//! `TRYAGAIN` it resends the whole pipeline, which would run the scripts
//! that already succeeded a second time.
//!
//! Redirections are per command: a command answered `MOVED` (the slot moved)
//! or `ASK` (the slot is migrating and this key already left) was not run,
//! so only those commands are sent again, grouped by the node the error
//! names (`ASKING` first for `ASK`), and the slot map is refreshed before
//! the next batch. `NOSCRIPT` (after a restart, a failover or `SCRIPT
//! FLUSH`) loads the script on that node and resends the commands it
//! refused. Each batch gives up after [`MAX_ATTEMPTS`] such rounds. A script
//! over a member whose two keys are on different nodes in the middle of a
//! migration is answered `TRYAGAIN`, and the batch is retried later.
//!
//! # Failures
//!
//! [`StoreError::Unavailable`] (retry the batch later): the connection
//! failed or timed out, or Redis answered `LOADING`, `TRYAGAIN`,
//! `CLUSTERDOWN`, `MASTERDOWN`, `BUSY`, `READONLY`, or refused writes
//! (`OOM` at `maxmemory`, `MISCONF`, `NOREPLICAS`). A connection that
//! failed is dropped and the next call opens a new one (the multiplexed
//! connection does not reconnect by itself), so a restarted server is
//! picked up without restarting the process. When a batch fails part way,
//! some of its writes may have been applied: retrying it is safe, because
//! those writes now fail their version check.
//!
//! [`StoreError::Corrupt`] (fatal): undecodable state bytes (naming the
//! key), a reply of the wrong shape, a script error.
//! [`StoreError::Config`] (fatal): an invalid target or prefix, and
//! authentication failures (`NOAUTH`, `WRONGPASS`, `NOPERM`): a
//! configuration that waiting will not fix.
//!
//! This module must not hold a member's data between calls: it only moves
//! bytes, so the memory store and this one see the same states.

mod cluster;
mod target;

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionLike as _, MultiplexedConnection};
use redis::{AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo as _, Value};
use tokio::task::JoinSet;

use crate::state::codec::{StoredEvent, decode_state, encode_state};
use crate::state::{BatchStore, MemberKey, MemberState, Reservation, StoreError, Versioned, Write};
use cluster::{NodeAddr, SLOTS, key_slot, parse_slots, redirect_target};
use target::Target;

pub use target::redact;

/// The compare-and-set script (see the module docs).
const CAS_SCRIPT: &str = include_str!("cas.lua");
const RESERVE_SCRIPT: &str = include_str!("reserve.lua");

/// How long opening a connection (TCP, TLS, AUTH, SELECT) may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one pipeline may wait for its replies. Generous: a batch of a
/// few thousand scripts takes milliseconds, and a timed-out apply may still
/// have run, which costs the caller a reload.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Rounds of one batch: the first send, then resends after `MOVED`, `ASK`
/// or `NOSCRIPT`. A slot migration needs two (`ASK`, then `MOVED` at worst).
pub const MAX_ATTEMPTS: usize = 5;
/// A slot no node serves, in the slot map.
const NO_NODE: u16 = u16::MAX;

/// A [`BatchStore`] over Redis or Redis Cluster. See the module docs.
pub struct RedisStore {
    /// The target as given to `connect`, redacted: for messages.
    target: String,
    prefix: String,
    /// SHA1 of [`CAS_SCRIPT`], what `EVALSHA` names.
    sha: String,
    /// SHA of the budget reservation script.
    reserve_sha: String,
    /// Every node ever used; indices stay valid (nodes are only added).
    /// Standalone: exactly one.
    nodes: Vec<Node>,
    /// `None` for a standalone server.
    cluster: Option<SlotMap>,
    /// Pipelines sent (a pipeline of one command counts too); connection
    /// handshakes are not counted.
    round_trips: u64,
}

/// One server and its connection.
struct Node {
    /// How the node is named in messages: the redacted URL (standalone) or `host:port`.
    label: String,
    /// `host:port` (cluster), the key of `MOVED`/`ASK` and `CLUSTER SLOTS`.
    addr: Option<NodeAddr>,
    info: ConnectionInfo,
    /// `None` until first used and after a connection error: the next use reconnects.
    conn: Option<MultiplexedConnection>,
}

/// Which node owns each slot.
struct SlotMap {
    /// Slot -> index into `nodes`, or [`NO_NODE`].
    owners: Box<[u16]>,
    /// Set by `MOVED`, `READONLY` and connection errors: refreshed with
    /// `CLUSTER SLOTS` before the next round.
    stale: bool,
    /// User, password and TLS for nodes learned from the cluster.
    template: ConnectionInfo,
}

/// Where a command goes in the next round.
#[derive(Debug, Clone, Copy)]
enum Route {
    /// To the owner of the key's slot in the slot map.
    Slot,
    /// To this node (after `MOVED`).
    Node(usize),
    /// To this node, preceded by `ASKING` (after `ASK`).
    Asking(usize),
}

/// The commands of one round bound for one node.
struct Group {
    node: usize,
    pipe: redis::Pipeline,
    /// Per command of `pipe`: the batch index and route, or `None` for `ASKING`.
    replies: Vec<Option<(usize, Route)>>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // By hand: `ConnectionInfo` would print the password.
        f.debug_struct("RedisStore")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("nodes", &self.nodes.iter().map(|n| n.label.as_str()).collect::<Vec<_>>())
            .field("round_trips", &self.round_trips)
            .finish()
    }
}

impl RedisStore {
    /// Connects to `target` (see the module docs), loads the script on every
    /// node and, for a cluster, reads the slot map. Fails with the redacted
    /// target when no server answers ([`StoreError::Unavailable`]) or the
    /// target, the prefix or the credentials are wrong ([`StoreError::Config`]).
    pub async fn connect(target: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        RedisStore::connect_with_tls(target, prefix, None).await
    }

    /// [`RedisStore::connect`] with TLS material of its own for a
    /// `rediss://` target: the CA certificates to trust instead of the
    /// webpki roots (a private CA), and a client certificate and key when
    /// the server requires them. Material that does not parse, or given
    /// for a target without TLS, is a [`StoreError::Config`].
    pub async fn connect_with_tls(
        target: &str,
        prefix: &str,
        tls: Option<&redis::TlsCertificates>,
    ) -> Result<RedisStore, StoreError> {
        // Without a process-wide crypto provider the first `rediss://`
        // handshake panics; rustls picks one by itself only when exactly one
        // is compiled in, so it is named here. An error means one is
        // installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shown = redact(target);
        if prefix.contains(['{', '}']) {
            return Err(StoreError::Config(format!(
                "key prefix {prefix:?} contains a brace: it would become the hash tag of every key"
            )));
        }
        let parsed =
            Target::parse(target).map_err(|why| StoreError::Config(format!("invalid Redis target {shown}: {why}")))?;
        let mut store = RedisStore {
            target: shown,
            prefix: prefix.to_owned(),
            sha: redis::Script::new(CAS_SCRIPT).get_hash().to_owned(),
            reserve_sha: redis::Script::new(RESERVE_SCRIPT).get_hash().to_owned(),
            nodes: Vec::new(),
            cluster: None,
            round_trips: 0,
        };
        match parsed {
            Target::Single(url) => {
                let info = with_tls(connection_info(&url)?, tls, &store.target)?;
                store.nodes.push(Node { label: store.target.clone(), addr: None, info, conn: None });
                store.load_script(0).await?;
            }
            Target::Cluster(seeds) => {
                let mut template = None;
                for seed in &seeds {
                    let info = with_tls(connection_info(seed)?, tls, &redact(seed))?;
                    let addr = tcp_addr(&info).ok_or_else(|| {
                        StoreError::Config(format!("cluster seed {} is not a TCP address", redact(seed)))
                    })?;
                    template.get_or_insert_with(|| info.clone());
                    store.nodes.push(Node { label: addr.key(), addr: Some(addr), info, conn: None });
                }
                let Some(template) = template else {
                    return Err(StoreError::Config(format!("no cluster seed in {}", store.target)));
                };
                store.cluster = Some(SlotMap { owners: vec![NO_NODE; SLOTS].into(), stale: true, template });
                store.refresh_slots().await?;
                let mut owners: Vec<u16> = store.cluster.iter().flat_map(|map| map.owners.iter().copied()).collect();
                owners.sort_unstable();
                owners.dedup();
                for owner in owners.into_iter().filter(|&o| o != NO_NODE) {
                    store.load_script(usize::from(owner)).await?;
                }
            }
        }
        Ok(store)
    }

    /// The Redis key of a member's hash: `<prefix>:{<program>:<member>}`.
    pub fn key(&self, member: &MemberKey) -> String {
        format!("{}:{{{}:{}}}", self.prefix, member.program, member.member)
    }

    /// Pipelines sent to Redis so far, on all nodes (each counts once
    /// however many commands it holds), including `SCRIPT LOAD` and
    /// `CLUSTER SLOTS`; connection handshakes are not counted.
    pub fn round_trips(&self) -> u64 {
        self.round_trips
    }

    /// Runs one command per key (`keys[i]` is the key of `commands[i]`) as
    /// one pipeline per node, following redirections; the replies in order.
    async fn execute(&mut self, commands: Vec<Cmd>, keys: &[String]) -> Result<Vec<Value>, StoreError> {
        let slots: Vec<u16> = keys.iter().map(|k| key_slot(k.as_bytes())).collect();
        // Moved into the pipelines as they are sent; a command sent again
        // (redirected, or refused for NOSCRIPT) is copied back from its pipeline.
        let mut commands: Vec<Option<Cmd>> = commands.into_iter().map(Some).collect();
        let mut replies = vec![Value::Nil; commands.len()];
        let mut pending: Vec<(usize, Route)> = (0..commands.len()).map(|i| (i, Route::Slot)).collect();
        for _ in 0..MAX_ATTEMPTS {
            if pending.is_empty() {
                return Ok(replies);
            }
            self.refresh_slots().await?;
            let mut groups: Vec<Group> = Vec::new();
            for (i, route) in pending.drain(..) {
                let (node, asking) = match route {
                    Route::Slot => (self.owner(slots[i])?, false),
                    Route::Node(node) => (node, false),
                    Route::Asking(node) => (node, true),
                };
                let group = match groups.iter().position(|g| g.node == node) {
                    Some(at) => &mut groups[at],
                    None => {
                        groups.push(Group { node, pipe: redis::pipe(), replies: Vec::new() });
                        let last = groups.len() - 1;
                        &mut groups[last]
                    }
                };
                if asking {
                    group.pipe.cmd("ASKING");
                    group.replies.push(None);
                }
                let Some(command) = commands.get_mut(i).and_then(Option::take) else {
                    return Err(StoreError::Corrupt(format!("{}: command {i} sent twice in one round", self.target)));
                };
                group.pipe.add_command(command);
                group.replies.push(Some((i, route)));
            }

            let mut failure: Option<StoreError> = None;
            let mut reload: Vec<usize> = Vec::new();
            for (group, result) in self.send(groups).await? {
                let label = self.nodes.get(group.node).map_or("?", |n| n.label.as_str()).to_owned();
                let values = match result {
                    Ok(values) if values.len() == group.replies.len() => values,
                    Ok(values) => {
                        let why = format!("{label}: {} replies to {} commands", values.len(), group.replies.len());
                        failure = worse(failure, StoreError::Corrupt(why));
                        continue;
                    }
                    Err(e) => {
                        failure = worse(failure, self.lost(group.node, &e));
                        continue;
                    }
                };
                let Group { pipe, replies: routes, .. } = group;
                for ((value, reply), command) in values.into_iter().zip(routes).zip(pipe.cmd_iter()) {
                    // `None`: the reply to `ASKING`. It cannot fail where the
                    // command after it succeeds, and that command's reply says why.
                    let Some((i, route)) = reply else { continue };
                    let Value::ServerError(error) = value else {
                        replies[i] = value;
                        continue;
                    };
                    if let Some(slot) = commands.get_mut(i) {
                        *slot = Some(command.clone());
                    }
                    match error.code() {
                        code @ ("MOVED" | "ASK") => match self.redirect(group.node, error.details()) {
                            Some(node) if code == "MOVED" => {
                                if let Some(map) = self.cluster.as_mut() {
                                    map.stale = true;
                                }
                                pending.push((i, Route::Node(node)));
                            }
                            Some(node) => pending.push((i, Route::Asking(node))),
                            None => {
                                let why = format!("{label}: {key}: unusable redirection {error:?}", key = keys[i]);
                                failure = worse(failure, StoreError::Corrupt(why));
                            }
                        },
                        "NOSCRIPT" => {
                            reload.push(group.node);
                            pending.push((i, route));
                        }
                        code => {
                            let error = self.server_error(&label, code, error.details(), Some(&keys[i]));
                            failure = worse(failure, error);
                        }
                    }
                }
            }
            if let Some(failure) = failure {
                return Err(failure);
            }
            reload.sort_unstable();
            reload.dedup();
            for node in reload {
                self.load_script(node).await?;
            }
        }
        if pending.is_empty() {
            return Ok(replies);
        }
        Err(StoreError::Unavailable(format!(
            "{}: {} commands still redirected after {MAX_ATTEMPTS} attempts (slot migration in progress?)",
            self.target,
            pending.len()
        )))
    }

    /// Sends every group's pipeline, concurrently when there are several
    /// nodes; each group comes back with its replies or its transport error.
    async fn send(&mut self, groups: Vec<Group>) -> Result<Vec<(Group, redis::RedisResult<Vec<Value>>)>, StoreError> {
        // Connect first, so a node that cannot be reached fails the batch
        // before anything was sent to the others.
        let mut conns = Vec::with_capacity(groups.len());
        for group in &groups {
            conns.push(self.connection(group.node).await?);
        }
        self.round_trips += groups.len() as u64;
        let started = std::time::Instant::now();
        let out = self.send_groups(groups, conns).await;
        metrics::histogram!(crate::telemetry::metric::REDIS_ROUND_TRIP_SECONDS).record(started.elapsed().as_secs_f64());
        out
    }

    /// [`Self::send`] once connected: one pipeline per group, concurrently
    /// when there are several.
    async fn send_groups(
        &self,
        groups: Vec<Group>,
        conns: Vec<MultiplexedConnection>,
    ) -> Result<Vec<(Group, redis::RedisResult<Vec<Value>>)>, StoreError> {
        if groups.len() == 1 {
            let mut out = Vec::with_capacity(1);
            for (group, mut conn) in groups.into_iter().zip(conns) {
                let result = conn.req_packed_commands(&group.pipe, 0, group.pipe.len()).await;
                out.push((group, result));
            }
            return Ok(out);
        }
        let mut tasks = JoinSet::new();
        for (group, mut conn) in groups.into_iter().zip(conns) {
            tasks.spawn(async move {
                let result = conn.req_packed_commands(&group.pipe, 0, group.pipe.len()).await;
                (group, result)
            });
        }
        let mut out = Vec::with_capacity(tasks.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(done) => out.push(done),
                // The tasks hold no code that panics; a cancelled runtime is shutting down.
                Err(e) => return Err(StoreError::Unavailable(format!("{}: request task ended: {e}", self.target))),
            }
        }
        Ok(out)
    }

    /// Sends one pipeline to one node; a transport error drops its connection.
    async fn request(&mut self, node: usize, pipe: &redis::Pipeline) -> Result<Vec<Value>, StoreError> {
        let mut conn = self.connection(node).await?;
        self.round_trips += 1;
        match conn.req_packed_commands(pipe, 0, pipe.len()).await {
            Ok(values) => Ok(values),
            Err(e) => Err(self.lost(node, &e)),
        }
    }

    /// The node's connection, opened when there is none.
    async fn connection(&mut self, index: usize) -> Result<MultiplexedConnection, StoreError> {
        let Some(node) = self.nodes.get(index) else {
            return Err(StoreError::Corrupt(format!("{}: no node {index}", self.target)));
        };
        if let Some(conn) = &node.conn {
            return Ok(conn.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let opened = match Client::open(node.info.clone()) {
            Ok(client) => client.get_multiplexed_async_connection_with_config(&config).await,
            Err(e) => Err(e),
        };
        match opened {
            Ok(conn) => {
                if let Some(node) = self.nodes.get_mut(index) {
                    node.conn = Some(conn.clone());
                }
                Ok(conn)
            }
            Err(e) => Err(self.lost(index, &e)),
        }
    }

    /// Forgets the node's connection after `error` (and, on a cluster, the
    /// slot map: a failover may be why), and classifies the error.
    fn lost(&mut self, index: usize, error: &redis::RedisError) -> StoreError {
        let label = match self.nodes.get_mut(index) {
            Some(node) => {
                node.conn = None;
                node.label.clone()
            }
            None => self.target.clone(),
        };
        if let Some(map) = self.cluster.as_mut() {
            map.stale = true;
        }
        if let Some(code) = error.code() {
            return self.server_error(&label, code, error.detail(), None);
        }
        let text = redact(&error.to_string());
        if error.kind() == redis::ErrorKind::AuthenticationFailed {
            return StoreError::Config(format!("{label}: {text}{AUTH_HINT}"));
        }
        if error.is_io_error() || error.is_timeout() || error.is_connection_dropped() || error.is_connection_refusal() {
            return StoreError::Unavailable(format!("{label}: {text}"));
        }
        StoreError::Corrupt(format!("{label}: {text}"))
    }

    /// Classifies an error reply; `key` names the member it was about.
    fn server_error(&mut self, label: &str, code: &str, details: Option<&str>, key: Option<&str>) -> StoreError {
        let about = key.map(|k| format!(" ({k})")).unwrap_or_default();
        let text = format!("{label}{about}: {code} {}", details.unwrap_or_default());
        match code {
            // A failover made the node a replica: the slot map is out of date.
            "READONLY" => {
                if let Some(map) = self.cluster.as_mut() {
                    map.stale = true;
                }
                StoreError::Unavailable(text)
            }
            "LOADING" | "TRYAGAIN" | "CLUSTERDOWN" | "MASTERDOWN" | "BUSY" => StoreError::Unavailable(text),
            // Redis refuses writes while full, while it cannot persist, or
            // without enough replicas; it refuses a script that may write
            // before running any of it, so a retry repeats nothing. Waiting
            // keeps the events until an operator frees memory, where exiting
            // would only restart into the same refusal.
            "OOM" | "MISCONF" | "NOREPLICAS" => StoreError::Unavailable(text),
            "NOAUTH" | "WRONGPASS" | "NOPERM" => StoreError::Config(format!("{text}{AUTH_HINT}")),
            _ => StoreError::Corrupt(text),
        }
    }

    /// Loads the scripts on one node, checking that Redis agrees on their SHAs.
    async fn load_script(&mut self, node: usize) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("SCRIPT").arg("LOAD").arg(CAS_SCRIPT);
        pipe.cmd("SCRIPT").arg("LOAD").arg(RESERVE_SCRIPT);
        let values = self.request(node, &pipe).await?;
        let label = self.nodes.get(node).map_or("?", |n| n.label.as_str()).to_owned();
        for (value, expected) in values.iter().zip([self.sha.clone(), self.reserve_sha.clone()]) {
            match value {
                Value::BulkString(sha) if sha.as_slice() == expected.as_bytes() => {}
                Value::ServerError(e) => return Err(self.server_error(&label, e.code(), e.details(), None)),
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "{label}: SCRIPT LOAD answered {other:?}, not {expected}"
                    )));
                }
            }
        }
        if values.len() == 2 {
            Ok(())
        } else {
            Err(StoreError::Corrupt(format!("{label}: SCRIPT LOAD answered {values:?}")))
        }
    }

    /// Reads the slot map with `CLUSTER SLOTS` from the first node that
    /// answers, when it is stale (standalone: nothing to do).
    async fn refresh_slots(&mut self) -> Result<(), StoreError> {
        if !self.cluster.as_ref().is_some_and(|map| map.stale) {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.cmd("CLUSTER").arg("SLOTS");
        let mut why = Vec::new();
        // Nodes that owned slots come first in `nodes` only by accident;
        // any node answers for the whole cluster.
        for index in 0..self.nodes.len() {
            let (label, host) = match self.nodes.get(index) {
                Some(Node { label, addr: Some(addr), .. }) => (label.clone(), addr.host.clone()),
                _ => continue,
            };
            let reply = match self.request(index, &pipe).await {
                Ok(mut values) => values.pop(),
                Err(e) => {
                    why.push(e.to_string());
                    continue;
                }
            };
            let ranges = match reply {
                Some(Value::ServerError(e)) => {
                    why.push(format!("{label}: {} {}", e.code(), e.details().unwrap_or_default()));
                    continue;
                }
                Some(reply) => parse_slots(&reply, &host).map_err(|e| StoreError::Corrupt(format!("{label}: {e}")))?,
                None => {
                    why.push(format!("{label}: no reply to CLUSTER SLOTS"));
                    continue;
                }
            };
            let mut owners = vec![NO_NODE; SLOTS].into_boxed_slice();
            for range in ranges {
                let Some(addr) = NodeAddr::parse(&range.master, &host) else {
                    return Err(StoreError::Corrupt(format!("{label}: bad node address {}", range.master)));
                };
                let node = self.node_at(addr)?;
                for slot in usize::from(range.first)..=usize::from(range.last) {
                    if let Some(owner) = owners.get_mut(slot) {
                        *owner = node;
                    }
                }
            }
            if let Some(map) = self.cluster.as_mut() {
                map.owners = owners;
                map.stale = false;
            }
            return Ok(());
        }
        Err(StoreError::Unavailable(format!(
            "{}: no cluster node answered CLUSTER SLOTS: {}",
            self.target,
            why.join("; ")
        )))
    }

    /// The index of the node at `addr`, added when new (it takes the user,
    /// password and TLS setting of the seeds).
    fn node_at(&mut self, addr: NodeAddr) -> Result<u16, StoreError> {
        let found = self.nodes.iter().position(|n| n.addr.as_ref() == Some(&addr));
        let index = match found {
            Some(index) => index,
            None => {
                let Some(map) = self.cluster.as_ref() else {
                    return Err(StoreError::Corrupt(format!(
                        "{}: a standalone server redirected to {addr:?}",
                        self.target
                    )));
                };
                let tcp = match map.template.addr() {
                    ConnectionAddr::TcpTls { insecure, tls_params, .. } => ConnectionAddr::TcpTls {
                        host: addr.host.clone(),
                        port: addr.port,
                        insecure: *insecure,
                        tls_params: tls_params.clone(),
                    },
                    _ => ConnectionAddr::Tcp(addr.host.clone(), addr.port),
                };
                let info = map.template.clone().set_addr(tcp);
                self.nodes.push(Node { label: addr.key(), addr: Some(addr), info, conn: None });
                self.nodes.len() - 1
            }
        };
        // Far fewer nodes than u16::MAX - 1 exist: a cluster has at most 16384 masters.
        u16::try_from(index)
            .ok()
            .filter(|&i| i != NO_NODE)
            .ok_or_else(|| StoreError::Corrupt(format!("{}: too many nodes", self.target)))
    }

    /// The node a `MOVED`/`ASK` reply from node `from` points to.
    fn redirect(&mut self, from: usize, details: Option<&str>) -> Option<usize> {
        let host = self.nodes.get(from)?.addr.as_ref()?.host.clone();
        let addr = NodeAddr::parse(redirect_target(details)?, &host)?;
        self.node_at(addr).ok().map(usize::from)
    }

    /// The node that owns `slot` (standalone: the server).
    fn owner(&mut self, slot: u16) -> Result<usize, StoreError> {
        let Some(map) = self.cluster.as_mut() else { return Ok(0) };
        match map.owners.get(usize::from(slot)) {
            Some(&owner) if owner != NO_NODE => Ok(usize::from(owner)),
            _ => {
                map.stale = true;
                Err(StoreError::Unavailable(format!("{}: no node serves slot {slot}", self.target)))
            }
        }
    }
}

impl BatchStore for RedisStore {
    async fn reserve(&mut self, reservations: &[Reservation<'_>]) -> Result<Vec<i64>, StoreError> {
        if reservations.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<(String, String)> =
            reservations.iter().map(|r| self.budget_keys(r.program, r.rule, r.day)).collect();
        let commands: Vec<Cmd> = reservations
            .iter()
            .zip(&keys)
            .map(|(r, (budget, grants))| {
                let mut cmd = redis::cmd("EVALSHA");
                // KEYS[1..2], then ARGV[1..4] in the order `reserve.lua` reads them.
                cmd.arg(&self.reserve_sha).arg(2).arg(budget).arg(grants);
                cmd.arg(r.grant_id()).arg(r.points).arg(r.budget).arg(r.ttl_ms);
                cmd
            })
            .collect();
        let routing: Vec<String> = keys.iter().map(|(budget, _)| budget.clone()).collect();
        let replies = self.execute(commands, &routing).await?;
        replies
            .into_iter()
            .zip(&routing)
            .map(|(reply, name)| match reply {
                Value::Int(grant) => Ok(grant),
                other => Err(StoreError::Corrupt(format!("{name}: the reservation script answered {other:?}"))),
            })
            .collect()
    }

    async fn load(&mut self, keys: &[MemberKey], records: &[Vec<&str>]) -> Result<Vec<Versioned>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let states: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        // Per command, the key it routes by: a member's records share its
        // state's hash tag, so the state's name routes both.
        let mut routes: Vec<String> = Vec::with_capacity(keys.len() * 2);
        let mut commands: Vec<Cmd> = Vec::with_capacity(keys.len() * 2);
        for (i, name) in states.iter().enumerate() {
            let mut cmd = redis::cmd("GET");
            cmd.arg(name);
            commands.push(cmd);
            routes.push(name.clone());
            let ids = records.get(i).map_or(&[][..], Vec::as_slice);
            if !ids.is_empty() {
                let mut cmd = redis::cmd("HMGET");
                cmd.arg(records_key(name)).arg(ids);
                commands.push(cmd);
                routes.push(name.clone());
            }
        }
        let mut replies = self.execute(commands, &routes).await?.into_iter();
        let mut loaded = Vec::with_capacity(keys.len());
        for (i, name) in states.iter().enumerate() {
            let mut member = decode_member(replies.next().unwrap_or(Value::Nil), name)?;
            let ids = records.get(i).map_or(&[][..], Vec::as_slice);
            if !ids.is_empty() {
                decode_records(replies.next().unwrap_or(Value::Nil), ids, &mut member.state, name)?;
            }
            loaded.push(member);
        }
        Ok(loaded)
    }

    async fn apply(&mut self, writes: &[Write<'_>]) -> Result<Vec<bool>, StoreError> {
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = writes.iter().map(|w| self.key(w.key)).collect();
        let commands: Vec<Cmd> = writes
            .iter()
            .zip(&names)
            .map(|(write, name)| {
                let mut cmd = redis::cmd("EVALSHA");
                // KEYS[1..2], then ARGV in the order `cas.lua` reads them.
                cmd.arg(&self.sha).arg(2).arg(name).arg(records_key(name));
                cmd.arg(version_bytes(write.expected)).arg(stored_state(write.expected + 1, write.state));
                match write.ttl_ms {
                    Some(ms) => cmd.arg(ms),
                    None => cmd.arg(""),
                };
                for option in [write.records_ttl_ms, write.sweep_before] {
                    match option {
                        Some(n) => cmd.arg(n),
                        None => cmd.arg(""),
                    };
                }
                for (id, record) in write.records {
                    cmd.arg(*id).arg(&*record.0);
                }
                cmd
            })
            .collect();
        let replies = self.execute(commands, &names).await?;
        replies
            .into_iter()
            .zip(&names)
            .map(|(reply, name)| match reply {
                Value::Int(1) => Ok(true),
                Value::Int(0) => Ok(false),
                other => Err(StoreError::Corrupt(format!("{name}: the write script answered {other:?}"))),
            })
            .collect()
    }
}

impl RedisStore {
    /// The keys of a rule's budget: its `spent` hash and its grants, under
    /// one hash tag of their own (never a member's slot).
    fn budget_keys(&self, program: &str, rule: &str, day: i64) -> (String, String) {
        let tag = format!("{{{program}:budget:{rule}}}");
        (format!("{}:{tag}", self.prefix), format!("{}:{tag}:grants:{day}", self.prefix))
    }
}

/// Appended to authentication errors: where the credentials go.
const AUTH_HINT: &str = " (credentials come from the URL: redis://[user]:PASSWORD@host:port/)";

/// The key of a member's records hash, under the member's hash tag.
fn records_key(state_key: &str) -> String {
    format!("{state_key}:r")
}

/// A member's `HMGET <records> ids...` reply, into `state.events`.
fn decode_records(reply: Value, ids: &[&str], state: &mut MemberState, name: &str) -> Result<(), StoreError> {
    let Value::Array(values) = reply else {
        return Err(StoreError::Corrupt(format!("{name}:r: HMGET answered {reply:?}")));
    };
    if values.len() != ids.len() {
        return Err(StoreError::Corrupt(format!("{name}:r: {} values for {} fields", values.len(), ids.len())));
    }
    for (value, &id) in values.into_iter().zip(ids) {
        match value {
            Value::Nil => {}
            Value::BulkString(bytes) => {
                state.events.insert(id.into(), StoredEvent(bytes.into_boxed_slice()));
            }
            _ => return Err(StoreError::Corrupt(format!("{name}:r: field {id:?} is not a string"))),
        }
    }
    Ok(())
}

/// A version as the state value starts with it: 8 bytes, big endian, so
/// that the script compares versions as bytes; "" for 0 (no value).
fn version_bytes(version: u64) -> Vec<u8> {
    if version == 0 { Vec::new() } else { version.to_be_bytes().to_vec() }
}

/// The value of a member's state key: its version, then the encoded state.
pub fn stored_state(version: u64, state: &MemberState) -> Vec<u8> {
    let mut value = version.to_be_bytes().to_vec();
    value.extend_from_slice(&encode_state(state));
    value
}

/// A member's `GET` reply as a versioned state.
fn decode_member(reply: Value, name: &str) -> Result<Versioned, StoreError> {
    let bytes = match reply {
        Value::Nil => return Ok(Versioned::default()),
        Value::BulkString(bytes) => bytes,
        // Not printed: the state may be large.
        _ => return Err(StoreError::Corrupt(format!("{name}: GET answered something other than a string"))),
    };
    let Some((version, state)) = bytes.split_first_chunk::<8>() else {
        return Err(StoreError::Corrupt(format!("{name}: {} bytes, shorter than a version", bytes.len())));
    };
    let version = u64::from_be_bytes(*version);
    if version == 0 {
        return Err(StoreError::Corrupt(format!("{name}: version 0 stored")));
    }
    let state = decode_state(state).map_err(|e| StoreError::Corrupt(format!("{name}: state: {e}")))?;
    Ok(Versioned { version, state })
}

/// The TLS material of [`RedisStore::connect_with_tls`] from PEM files:
/// `None` when no file is named. A client certificate needs its key.
pub fn tls_files(
    ca: Option<&std::path::Path>,
    cert: Option<&std::path::Path>,
    key: Option<&std::path::Path>,
) -> Result<Option<redis::TlsCertificates>, StoreError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| StoreError::Config(format!("cannot read {}: {e}", path.display())))
    };
    let client_tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig { client_cert: read(cert)?, client_key: read(key)? }),
        (None, None) => None,
        _ => return Err(StoreError::Config("a client certificate and its key go together".to_owned())),
    };
    let root_cert = ca.map(read).transpose()?;
    Ok((client_tls.is_some() || root_cert.is_some()).then_some(redis::TlsCertificates { client_tls, root_cert }))
}

/// `info` with `tls` applied: the CA and client certificates travel in the
/// connection info, to every connection opened from it (and, for a cluster,
/// to the nodes found later, whose info is made from a seed's).
fn with_tls(
    info: ConnectionInfo,
    tls: Option<&redis::TlsCertificates>,
    shown: &str,
) -> Result<ConnectionInfo, StoreError> {
    let Some(certificates) = tls else { return Ok(info) };
    if !matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
        return Err(StoreError::Config(format!(
            "{shown}: TLS certificates are configured, but the URL has no TLS (use rediss://)"
        )));
    }
    match Client::build_with_tls(info, certificates.clone()) {
        Ok(client) => Ok(client.get_connection_info().clone()),
        Err(e) => Err(StoreError::Config(format!("{shown}: TLS certificates: {}", redact(&e.to_string())))),
    }
}

/// Checks `target` as [`RedisStore::connect`] reads it, without connecting
/// (configuration is validated before any I/O). The reason names no password.
pub fn check_target(target: &str) -> Result<(), String> {
    let reason = |error: StoreError| match error {
        StoreError::Config(why) => why,
        other => other.to_string(),
    };
    match Target::parse(target)? {
        Target::Single(url) => connection_info(&url).map(drop).map_err(reason),
        Target::Cluster(seeds) => seeds.iter().try_for_each(|seed| {
            let info = connection_info(seed).map_err(reason)?;
            tcp_addr(&info).map(drop).ok_or_else(|| format!("cluster seed {} is not a TCP address", redact(seed)))
        }),
    }
}

/// The connection settings of one URL.
fn connection_info(url: &str) -> Result<ConnectionInfo, StoreError> {
    url.into_connection_info()
        .map_err(|e| StoreError::Config(format!("invalid Redis URL {}: {}", redact(url), redact(&e.to_string()))))
}

/// `host:port` of a TCP (or TLS) address.
fn tcp_addr(info: &ConnectionInfo) -> Option<NodeAddr> {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            Some(NodeAddr { host: host.clone(), port: *port })
        }
        _ => None,
    }
}

/// The error to report of two: a fatal one outranks an unavailable one
/// (it stops the process, where the other would only be retried).
fn worse(current: Option<StoreError>, new: StoreError) -> Option<StoreError> {
    match (&current, &new) {
        (None, _) | (Some(StoreError::Unavailable(_)), StoreError::Corrupt(_) | StoreError::Config(_)) => Some(new),
        _ => current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked_without_connecting() {
        for good in [
            "redis://127.0.0.1:6379/",
            "rediss://u:p@h:6380/2",
            "redis+cluster://:p@a:1,b:2",
            "redis://a:1/,redis://b:2/",
        ] {
            assert_eq!(check_target(good), Ok(()), "{good}");
        }
        for bad in ["http://h:1/", "redis+cluster://", "redis://:secret@h:port/"] {
            let why = check_target(bad).expect_err(bad);
            assert!(!why.contains("secret"), "{why}");
        }
    }

    /// A store over `target`'s seeds as `connect` builds it, without
    /// connecting: the password is in every node's connection settings.
    fn unconnected(target: &str) -> RedisStore {
        let mut store = RedisStore {
            target: redact(target),
            prefix: "ls".into(),
            sha: String::new(),
            reserve_sha: String::new(),
            nodes: Vec::new(),
            cluster: None,
            round_trips: 0,
        };
        match Target::parse(target).unwrap() {
            Target::Single(url) => {
                let info = connection_info(&url).unwrap();
                store.nodes.push(Node { label: store.target.clone(), addr: None, info, conn: None });
            }
            Target::Cluster(seeds) => {
                for seed in &seeds {
                    let info = connection_info(seed).unwrap();
                    let addr = tcp_addr(&info).unwrap();
                    store.nodes.push(Node { label: addr.key(), addr: Some(addr), info, conn: None });
                }
                let template = store.nodes[0].info.clone();
                store.cluster = Some(SlotMap { owners: vec![NO_NODE; SLOTS].into(), stale: true, template });
            }
        }
        store
    }

    #[test]
    fn no_message_of_the_store_shows_its_password() {
        use redis::{ErrorKind, RedisError, ServerErrorKind};
        let mut shown: Vec<String> = Vec::new();
        for target in [
            "rediss://scorer:hunter2@127.0.0.1:1/#insecure",
            "redis://:hunter2@127.0.0.1:1/3",
            "rediss+cluster://scorer:hunter2@127.0.0.1:1,127.0.0.1:2/",
            "redis://scorer:hunter2@127.0.0.1:1/,redis://scorer:hunter2@127.0.0.1:2/",
        ] {
            let mut store = unconnected(target);
            if store.cluster.is_some() {
                // A node learned from the cluster gets the seeds' credentials.
                let learned = store.node_at(NodeAddr { host: "127.0.0.1".into(), port: 3 }).unwrap();
                assert!(store.nodes[usize::from(learned)].info.redis_settings().password().is_some());
            }
            shown.push(format!("{store:?}"));
            let failures: Vec<RedisError> = vec![
                (ErrorKind::AuthenticationFailed, "Password authentication failed").into(),
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused").into(),
                (ErrorKind::Io, "timed out").into(),
                (ErrorKind::InvalidClientConfig, "bad TLS setup", target.to_owned()).into(),
                (ErrorKind::Server(ServerErrorKind::NoPerm), "no permissions", "ls:{p:m}".to_owned()).into(),
                (ErrorKind::Server(ServerErrorKind::ResponseError), "WRONGPASS", "invalid password".to_owned()).into(),
            ];
            for node in 0..store.nodes.len() {
                for failure in &failures {
                    let error = store.lost(node, failure);
                    shown.extend([error.to_string(), format!("{error:?}")]);
                }
                let label = store.nodes[node].label.clone();
                for code in ["NOAUTH", "WRONGPASS", "NOPERM", "READONLY", "LOADING", "WRONGTYPE"] {
                    let error = store.server_error(&label, code, Some("details"), Some("ls:{p:m}"));
                    shown.extend([error.to_string(), format!("{error:?}")]);
                }
            }
        }
        // Refused before any I/O: a bad URL, a fragment other than #insecure.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for bad in ["redis://scorer:hunter2@127.0.0.1:port/", "rediss://scorer:hunter2@h:1/#verify", "redis+cluster://"]
        {
            let error = runtime.block_on(RedisStore::connect(bad, "ls")).unwrap_err();
            shown.extend([error.to_string(), format!("{error:?}")]);
        }
        assert!(shown.len() > 100);
        for text in &shown {
            assert!(!text.contains("hunter2"), "{text}");
        }
        assert!(shown.iter().any(|t| t.contains("rediss://scorer:***@127.0.0.1:1/#insecure")));
    }

    #[test]
    fn members_decode() {
        let name = "p:{a:b}";
        assert_eq!(decode_member(Value::Nil, name).ok(), Some(Versioned::default()));
        let state = crate::state::MemberState { tier: "gold".into(), ..Default::default() };
        let stored = Value::BulkString(stored_state(7, &state));
        assert_eq!(decode_member(stored, name).ok(), Some(Versioned { version: 7, state }));
        assert_eq!(version_bytes(0), b"");
        assert_eq!(version_bytes(7), [0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(stored_state(7, &Default::default())[..8], version_bytes(7));
        for bad in [
            Value::BulkString(vec![0, 0, 0, 0, 0, 0, 0, 7, 9, 9]),
            Value::BulkString(stored_state(0, &Default::default())),
            Value::BulkString(vec![0, 0, 7]),
            Value::Array(vec![Value::Nil]),
            Value::Int(1),
        ] {
            match decode_member(bad, name) {
                Err(StoreError::Corrupt(why)) => assert!(why.contains(name), "{why}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn corrupt_outranks_unavailable() {
        let u = || StoreError::Unavailable("u".into());
        let c = || StoreError::Corrupt("c".into());
        assert!(matches!(worse(None, u()), Some(StoreError::Unavailable(_))));
        assert!(matches!(worse(Some(u()), c()), Some(StoreError::Corrupt(_))));
        assert!(matches!(worse(Some(c()), u()), Some(StoreError::Corrupt(_))));
    }
}
