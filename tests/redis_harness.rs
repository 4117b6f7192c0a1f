//! Tests of the Redis test harness in `tests/support/redis.rs`: real
//! `redis-server` processes on free loopback ports, started and stopped by
//! the tests themselves (`.ci/test` installs Redis when it is missing).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

mod support;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use support::redis::{RedisCluster, RedisServer, Reply, crc16_xmodem, key_slot, redis_cli_text};

fn refused(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()
}

#[test]
fn server_starts_answers_and_stops() {
    let mut server = RedisServer::start();
    let port = server.port();
    assert_ne!(port, 0);
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}/"));

    // Both ways of talking to it answer.
    assert_eq!(server.cli(&["PING"]), "PONG");
    assert_eq!(server.call(&["PING"]), Reply::Status("PONG".into()));

    // It runs with the harness's settings: loopback only, its own directory, no persistence.
    let config = |name: &str| match server.call(&["CONFIG", "GET", name]) {
        Reply::Array(Some(items)) => items[1].text().unwrap(),
        other => panic!("CONFIG GET {name}: {other:?}"),
    };
    assert_eq!(config("bind"), "127.0.0.1");
    assert_eq!(config("save"), "");
    assert_eq!(config("appendonly"), "no");
    assert_eq!(config("protected-mode"), "yes");
    assert_eq!(std::fs::canonicalize(config("dir")).unwrap(), std::fs::canonicalize(server.dir()).unwrap());
    assert!(server.log_path().is_file(), "the log goes to the temporary directory");

    // The process answering is the child the harness started.
    let info = server.call(&["INFO", "server"]).text().unwrap();
    let pid = server.pid().unwrap();
    assert!(info.lines().any(|l| l.trim() == format!("process_id:{pid}")), "{info}");

    server.stop();
    assert!(!server.is_running());
    assert!(refused(port), "port {port} still accepts connections after stop");
}

#[test]
fn restart_keeps_port_and_directory_but_no_data() {
    let mut server = RedisServer::start();
    let port = server.port();
    let dir = server.dir().to_path_buf();
    let old_pid = server.pid().unwrap();

    assert_eq!(server.cli(&["SET", "{M1}:state", "42"]), "OK");
    assert_eq!(server.cli(&["GET", "{M1}:state"]), "42");

    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(server.dir(), dir);
    assert_ne!(server.pid().unwrap(), old_pid, "a new process");
    assert_eq!(server.cli(&["PING"]), "PONG");

    // `--save "" --appendonly no`: the key is gone and nothing was written to disk.
    assert_eq!(server.call(&["GET", "{M1}:state"]), Reply::Bulk(None));
    assert_eq!(server.call(&["DBSIZE"]), Reply::Int(0));
    assert!(!dir.join("dump.rdb").exists());
    assert!(!dir.join("appendonlydir").exists());

    // The log of both runs is kept; the second start did not mistake the first run's "ready" line.
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert_eq!(log.matches("Ready to accept connections").count(), 2, "{log}");
}

#[test]
fn drop_kills_the_server() {
    let server = RedisServer::start();
    let port = server.port();
    let dir = server.dir().to_path_buf();
    assert_eq!(server.cli(&["PING"]), "PONG");
    drop(server);
    assert!(refused(port), "port {port} still accepts connections after drop");
    assert!(!dir.exists(), "the temporary directory is removed");
}

#[test]
fn servers_started_in_parallel_get_distinct_ports() {
    let servers: Vec<RedisServer> = thread::scope(|scope| {
        let handles: Vec<_> = (0..4).map(|_| scope.spawn(RedisServer::start)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ports: HashSet<u16> = servers.iter().map(RedisServer::port).collect();
    assert_eq!(ports.len(), servers.len(), "ports: {ports:?}");
    for (i, server) in servers.iter().enumerate() {
        let value = format!("server-{i}");
        assert_eq!(server.cli(&["SET", "who", &value]), "OK");
    }
    // Each server holds its own value: they are distinct processes.
    for (i, server) in servers.iter().enumerate() {
        assert_eq!(server.cli(&["GET", "who"]), format!("server-{i}"));
    }
}

#[test]
fn password_and_acl_user() {
    let server =
        RedisServer::start_with_args(&["--requirepass", "s3cret", "--user", "alice", "on", ">pw", "~*", "+@all"]);
    let port = server.port();

    // Without AUTH the server refuses; the harness authenticates by itself.
    match support::redis::call(port, &["PING"]).unwrap() {
        Reply::Error(e) => assert!(e.starts_with("NOAUTH"), "{e}"),
        other => panic!("PING without AUTH: {other:?}"),
    }
    assert_eq!(server.call(&["PING"]), Reply::Status("PONG".into()));
    assert_eq!(server.cli(&["PING"]), "PONG");

    // The ACL user can log in with its own password.
    let mut conn = support::redis::Conn::open(port).unwrap();
    assert_eq!(conn.call(&["AUTH", "alice", "pw"]).unwrap(), Reply::Status("OK".into()));
    assert_eq!(conn.call(&["ACL", "WHOAMI"]).unwrap().text().unwrap(), "alice");
    assert!(matches!(conn.call(&["AUTH", "alice", "wrong"]).unwrap(), Reply::Error(e) if e.starts_with("WRONGPASS")));
    assert_eq!(server.url_with_auth("alice", "pw"), format!("redis://alice:pw@127.0.0.1:{port}/"));
}

#[test]
fn a_tls_server_serves_verified_clients_and_keeps_its_plain_port() {
    let server = RedisServer::start_tls(&[]);
    assert_ne!(server.tls_port(), server.port());
    server.call(&["SET", "k", "plain"]).expect_ok("SET over the plain port");
    // The certificate checks out against the test CA for 127.0.0.1.
    let ca = server.tls_files().ca_cert.display().to_string();
    assert_eq!(redis_cli_text(server.tls_port(), &["--tls", "--cacert", &ca, "GET", "k"]), "plain");
    // Plain RESP on the TLS port gets no answer.
    assert!(support::redis::call(server.tls_port(), &["PING"]).is_err());
    assert_eq!(server.tls_url("u", "p"), format!("rediss://u:p@127.0.0.1:{}/#insecure", server.tls_port()));
}

#[test]
fn crc16_and_key_slot_match_the_cluster_spec() {
    // The check value of CRC-16/XMODEM and the spec's examples.
    assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
    assert_eq!(key_slot("123456789"), 0x31C3);
    assert_eq!(key_slot("{user1000}.following"), key_slot("{user1000}.followers"));
    assert_eq!(key_slot("foo{}{bar}"), key_slot("foo{}{bar}"));
    assert_ne!(key_slot("foo{}{bar}"), key_slot("bar"), "an empty tag hashes the whole key");
    assert_eq!(key_slot("foo{{bar}}zap"), key_slot("{bar"));
    assert_eq!(key_slot("foo{bar}{zap}"), key_slot("bar"));
}

#[test]
fn cluster_starts_and_moves_a_slot() {
    let cluster = RedisCluster::start(3);
    assert_eq!(cluster.nodes().len(), 3);

    // Every node is ok, knows three nodes and sees all slots assigned.
    for i in 0..3 {
        let info = cluster.cluster_info(i);
        assert!(info.lines().any(|l| l == "cluster_state:ok"), "node {i}:\n{info}");
        assert!(info.lines().any(|l| l == "cluster_known_nodes:3"), "node {i}:\n{info}");
        assert!(info.lines().any(|l| l == "cluster_slots_assigned:16384"), "node {i}:\n{info}");
    }
    let urls = cluster.seed_urls();
    assert_eq!(urls.len(), 3);
    for (url, node) in urls.iter().zip(cluster.nodes()) {
        assert_eq!(*url, format!("redis://127.0.0.1:{}/", node.port()));
    }
    let ids: HashSet<&String> = cluster.node_ids().iter().collect();
    assert_eq!(ids.len(), 3);

    // The harness computes the same slots as the server.
    for key in ["{M1}:state", "{M1}:ledger", "plain-key", "foo{}{bar}", "foo{{bar}}zap", "foo{bar}{zap}", "", "é{ü}"]
    {
        let server = cluster.node(0).call(&["CLUSTER", "KEYSLOT", key]).expect_int("CLUSTER KEYSLOT");
        assert_eq!(i64::from(key_slot(key)), server, "slot of {key:?}");
    }

    // A key lives on its slot's owner; move that slot to another node.
    let key = "{M1}:state";
    let slot = key_slot(key);
    let old = cluster.slot_owner(slot);
    let old_port = cluster.node(old).port();
    assert_eq!(cluster.node(old).call(&["SET", key, "7"]), Reply::Status("OK".into()));
    assert_eq!(cluster.node(old).call(&["SET", "{M1}:other", "8"]), Reply::Status("OK".into()));
    let new = (old + 1) % 3;
    let new_port = cluster.node(new).port();

    cluster.migrate_slot(slot, new);
    assert_eq!(cluster.slot_owner(slot), new);
    assert_eq!(cluster.key_owner(key), new);
    let slot_arg = slot.to_string();
    assert_eq!(cluster.node(new).call(&["CLUSTER", "COUNTKEYSINSLOT", &slot_arg]), Reply::Int(2));
    assert_eq!(cluster.node(old).call(&["CLUSTER", "COUNTKEYSINSLOT", &slot_arg]), Reply::Int(0));

    // A cluster-aware client asking the old owner follows the redirection.
    assert_eq!(redis_cli_text(old_port, &["-c", "GET", key]), "7");
    // A plain one is told where the slot went.
    let moved = format!("MOVED {slot} 127.0.0.1:{new_port}");
    let plain = redis_cli_text(old_port, &["GET", key]);
    assert!(plain.contains(&moved), "expected {moved:?}, got {plain:?}");
    assert_eq!(cluster.node(old).call(&["GET", key]), Reply::Error(moved));

    // Moving it back works too, and the cluster stays ok.
    cluster.migrate_slot(slot, old);
    assert_eq!(cluster.slot_owner(slot), old);
    assert_eq!(cluster.node(old).call(&["GET", key]), Reply::Bulk(Some(b"7".to_vec())));
    for i in 0..3 {
        assert!(cluster.cluster_info(i).lines().any(|l| l == "cluster_state:ok"));
    }
}

#[test]
#[should_panic(expected = "FATAL CONFIG FILE ERROR")]
fn a_server_that_cannot_start_fails_with_its_output() {
    let _server = RedisServer::start_with_args(&["--no-such-option", "1"]);
}
