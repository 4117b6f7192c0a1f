//! Integration tests of the Redis state store (`src/state/redis/`) against
//! real `redis-server` processes: one server or a 3-node cluster per test,
//! each test with its own key prefix.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on purpose")]

mod support;

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};

use loyalty_scorer::event::{Kind, Micros};
use loyalty_scorer::outcome::{Line, RewardRecord, StampTouch, Status};
use loyalty_scorer::state::codec::StoredEvent;
use loyalty_scorer::state::redis::{RedisStore, stored_state};
use loyalty_scorer::state::{
    BatchStore, EventRecord, Lot, MemberKey, MemberState, PurchaseRecord, Retention, StoreError, Write,
};
use rust_decimal::Decimal;
use support::redis::{Conn, RedisCluster, RedisServer, Reply, key_slot};

fn member(program: &str, i: usize) -> MemberKey {
    MemberKey { program: program.into(), member: format!("m{i:05}") }
}

/// A state with something in every part the codec handles: lots (even
/// seeds) or debt (odd seeds), pending lots, stamps, a birthday and one
/// event record.
fn rich_state(seed: i64) -> MemberState {
    let mut state = MemberState {
        tier: "silver".into(),
        debt: 0,
        purchases: 3 + seed as u64,
        lifetime_spend: Decimal::new(123_456 + seed, 2),
        ..MemberState::default()
    };
    state.credit(40 + seed, Lot { earned_at: Micros(10), month: 24_310, release_at: Micros(10), points: 0 });
    state.credit(7, Lot { earned_at: Micros(20), month: 24_310, release_at: Micros(99), points: 0 });
    // Odd seeds spend more than they hold: debt instead of available lots.
    if seed % 2 == 1 {
        state.debit(60 + seed, None);
    }
    state.credit(5, Lot { earned_at: Micros(30), month: 24_311, release_at: Micros(30), points: 0 });
    state.birthday = Some((2, 29));
    state.stamps.push(("card".into(), 3));
    state.monthly_spend.push((24_310, Decimal::new(99_95, 2)));
    let record = EventRecord {
        occurred_at: Micros(1_793_607_300_000_000),
        written_at: 0,
        reward: RewardRecord {
            kind: Kind::Purchase,
            status: Status::Scored,
            original_unknown: false,
            occurred_at: "2026-11-02T08:15:00Z".into(),
            merchant_id: Some("fuel-co".into()),
            points: 312,
            balance: 1_000 + seed,
            pending: None,
            lines: vec![(Line::Base, 312), (Line::Rule(1), 40)].into(),
            tier_before: 0,
            tier_after: 1,
            qualifying_spend: Decimal::new(3136, 0),
            stamps: vec![StampTouch { rule: 2, stamps: 1, completed: 0 }].into(),
            gifts: vec![1].into(),
            rules_version: "0c7b4d85e48ce39e".into(),
        },
        purchase: Some(PurchaseRecord {
            total: Decimal::new(3120, 0),
            points: 312,
            eligible: Decimal::new(3120, 0),
            month: 24_310,
            refunded: Decimal::ZERO,
            points_reversed: 0,
            spend_reversed: Decimal::ZERO,
        }),
    };
    state.events.insert(format!("E{seed}").into(), StoredEvent::from_record(&record));
    state
}

/// Writes of whole states: every record of each is written with it.
fn writes<'a>(keys: &'a [MemberKey], states: &'a [MemberState], expected: u64) -> Vec<Write<'a>> {
    keys.iter().zip(states).map(|(key, state)| write(key, state, expected, None)).collect()
}

fn write<'a>(key: &'a MemberKey, state: &'a MemberState, expected: u64, ttl_ms: Option<u64>) -> Write<'a> {
    let records: Vec<(&str, &StoredEvent)> = state.events.iter().map(|(id, r)| (&**id, r)).collect();
    // Leaked: a test's few records, kept for the `Write`'s lifetime.
    let records = Box::leak(records.into_boxed_slice());
    let records_ttl_ms = Some(Retention::days(1_800_000_000, 90).records_ttl_ms());
    Write { key, expected, state, ttl_ms, records, sweep_before: None, records_ttl_ms }
}

/// The record ids of each state: loading them gives the whole states back.
fn ids(states: &[MemberState]) -> Vec<Vec<&str>> {
    states.iter().map(|s| s.events.keys().map(|id| &**id).collect()).collect()
}

fn bytes(reply: Reply) -> Option<Vec<u8>> {
    match reply {
        Reply::Bulk(bytes) => bytes,
        other => panic!("expected a bulk string, got {other:?}"),
    }
}

/// `calls` of one command in `INFO commandstats` (0 when never called).
fn calls(server: &RedisServer, command: &str) -> u64 {
    let info = server.call(&["INFO", "commandstats"]).expect_text("INFO commandstats");
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

#[tokio::test]
async fn unknown_members_are_empty_and_states_round_trip_with_versions() {
    let server = RedisServer::start();
    let mut store = RedisStore::connect(&server.url(), "t1").await.unwrap();
    let keys: Vec<MemberKey> = (0..3).map(|i| member("shop", i)).collect();

    let loaded = store.load(&keys, &[]).await.unwrap();
    assert_eq!(loaded.len(), 3);
    assert!(loaded.iter().all(|v| v.version == 0 && v.state == MemberState::default()));

    let states: Vec<MemberState> = (0..3).map(rich_state).collect();
    assert!(states[0].balance() > 0 && states[0].pending_points() > 0 && !states[0].events.is_empty());
    assert!(states[1].debt > 0 && states[1].lots.is_empty());
    assert_eq!(store.apply(&writes(&keys, &states, 0)).await.unwrap(), vec![true; 3]);
    let loaded = store.load(&keys, &ids(&states)).await.unwrap();
    for (v, state) in loaded.iter().zip(&states) {
        assert_eq!(v.version, 1);
        assert_eq!(&v.state, state);
    }

    let mut changed = states.clone();
    changed[1].tier = "gold".into();
    changed[1].debt = 17;
    assert_eq!(store.apply(&writes(&keys, &changed, 1)).await.unwrap(), vec![true; 3]);
    let loaded = store.load(&keys, &ids(&changed)).await.unwrap();
    assert!(loaded.iter().all(|v| v.version == 2));
    assert_eq!(loaded[1].state, changed[1]);

    // The layout the module docs promise: the state as a string (version,
    // then the encoded state), the records in a hash by event id.
    let key = store.key(&keys[1]);
    assert_eq!(key, "t1:{shop:m00001}");
    assert_eq!(bytes(server.call(&["GET", &key])), Some(stored_state(2, &changed[1])));
    assert_eq!(stored_state(2, &changed[1])[..8], 2u64.to_be_bytes());
    let (id, record) = changed[1].events.iter().next().unwrap();
    assert_eq!(bytes(server.call(&["HGET", &format!("{key}:r"), id])), Some(record.0.to_vec()));
    assert!(store.load(&[], &[]).await.unwrap().is_empty());
    assert!(store.apply(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_stale_write_is_refused_and_changes_nothing() {
    let server = RedisServer::start();
    let mut store = RedisStore::connect(&server.url(), "t2").await.unwrap();
    let mut other = RedisStore::connect(&server.url(), "t2").await.unwrap();
    let keys = [member("shop", 1)];
    let first = [rich_state(1)];
    assert_eq!(other.apply(&writes(&keys, &first, 0)).await.unwrap(), vec![true]);
    let key = store.key(&keys[0]);
    let stored = bytes(server.call(&["GET", &key]));

    // This writer still believes the member is new.
    let second = [rich_state(2)];
    assert_eq!(store.apply(&writes(&keys, &second, 0)).await.unwrap(), vec![false]);
    assert_eq!(bytes(server.call(&["GET", &key])), stored);
    assert_eq!(stored, Some(stored_state(1, &first[0])));
    // And a write from the future is refused too.
    assert_eq!(store.apply(&writes(&keys, &second, 5)).await.unwrap(), vec![false]);
    let loaded = store.load(&keys, &ids(&first)).await.unwrap();
    assert_eq!((loaded[0].version, &loaded[0].state), (1, &first[0]));
}

#[tokio::test]
async fn ttl_sets_and_clears_expiry() {
    let server = RedisServer::start();
    let mut store = RedisStore::connect(&server.url(), "ttl").await.unwrap();
    let key = member("shop", 1);
    let state = rich_state(1);
    let name = store.key(&key);
    let first = write(&key, &state, 0, Some(60_000));
    assert_eq!(store.apply(&[first]).await.unwrap(), vec![true]);
    let ttl = server.call(&["PTTL", &name]).expect_int("PTTL");
    assert!((1..=60_000).contains(&ttl), "{ttl}");
    // The records outlive the write by the window and two sweep periods.
    let idle = first.records_ttl_ms.unwrap();
    assert_eq!(idle, (90 * 86_400 + 2 * (90 * 86_400 / 8)) * 1000);
    let ttl = server.call(&["PTTL", &format!("{name}:r")]).expect_int("PTTL");
    assert!(ttl > 0 && ttl.unsigned_abs() <= idle && ttl.unsigned_abs() > idle - 60_000, "{ttl}");
    let second = write(&key, &state, 1, None);
    assert_eq!(store.apply(&[second]).await.unwrap(), vec![true]);
    assert_eq!(server.call(&["PTTL", &name]).expect_int("PTTL"), -1);
}

#[tokio::test]
async fn script_flush_between_applies_reloads_the_script() {
    let server = RedisServer::start();
    let mut store = RedisStore::connect(&server.url(), "t3").await.unwrap();
    let keys = [member("shop", 1), member("shop", 2)];
    let states = [rich_state(1), rich_state(2)];
    assert_eq!(store.apply(&writes(&keys, &states, 0)).await.unwrap(), vec![true, true]);

    server.call(&["SCRIPT", "FLUSH"]).expect_ok("SCRIPT FLUSH");
    let before = store.round_trips();
    assert_eq!(store.apply(&writes(&keys, &states, 1)).await.unwrap(), vec![true, true]);
    // Refused pipeline, SCRIPT LOAD, resent pipeline.
    assert_eq!(store.round_trips() - before, 3);
    assert!(store.load(&keys, &[]).await.unwrap().iter().all(|v| v.version == 2));
}

#[tokio::test]
async fn a_batch_of_500_is_one_round_trip_each_way() {
    let server = RedisServer::start();
    let mut store = RedisStore::connect(&server.url(), "t4").await.unwrap();
    let keys: Vec<MemberKey> = (0..500).map(|i| member("shop", i)).collect();
    let states: Vec<MemberState> = (0..500).map(rich_state).collect();

    let (get, trips) = (calls(&server, "get"), store.round_trips());
    let loaded = store.load(&keys, &[]).await.unwrap();
    assert!(loaded.iter().all(|v| v.version == 0));
    assert_eq!(calls(&server, "get") - get, 500);
    assert_eq!(store.round_trips() - trips, 1);

    let (evalsha, trips) = (calls(&server, "evalsha"), store.round_trips());
    assert_eq!(store.apply(&writes(&keys, &states, 0)).await.unwrap(), vec![true; 500]);
    assert_eq!(calls(&server, "evalsha") - evalsha, 500);
    assert_eq!(store.round_trips() - trips, 1);
    // Never EVAL with the script's text: it is sent once, by SCRIPT LOAD.
    assert_eq!(calls(&server, "eval"), 0);

    let loaded = store.load(&keys, &ids(&states)).await.unwrap();
    assert!(loaded.iter().zip(&states).all(|(v, s)| v.version == 1 && &v.state == s));
}

#[tokio::test]
async fn the_store_reconnects_after_a_restart() {
    let mut server = RedisServer::start();
    let mut store = RedisStore::connect(&server.url(), "t5").await.unwrap();
    let keys = [member("shop", 1)];
    let states = [rich_state(1)];
    assert_eq!(store.apply(&writes(&keys, &states, 0)).await.unwrap(), vec![true]);

    server.restart();
    // The old connection is dead: this call may fail, but only as Unavailable.
    match store.load(&keys, &[]).await {
        Ok(loaded) => assert_eq!(loaded[0].version, 0, "no persistence: the data is gone"),
        Err(StoreError::Unavailable(_)) => {}
        Err(e) => panic!("expected Unavailable, got {e}"),
    }
    // The next call reconnects; the restarted server has no script (NOSCRIPT).
    let loaded = store.load(&keys, &[]).await.unwrap();
    assert_eq!(loaded[0].version, 0);
    assert_eq!(store.apply(&writes(&keys, &states, 0)).await.unwrap(), vec![true]);
    assert_eq!(store.load(&keys, &[]).await.unwrap()[0].version, 1);

    // The same for an apply right after a restart.
    server.restart();
    match store.apply(&writes(&keys, &states, 0)).await {
        Ok(written) => assert_eq!(written, vec![true]),
        Err(StoreError::Unavailable(_)) => {
            assert_eq!(store.apply(&writes(&keys, &states, 0)).await.unwrap(), vec![true]);
        }
        Err(e) => panic!("expected Unavailable, got {e}"),
    }

    // While the server is down, calls fail as Unavailable (and quickly).
    server.stop();
    for _ in 0..2 {
        match store.load(&keys, &[]).await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_unreachable_url_is_named_without_its_password() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
    let url = format!("redis://scorer:hunter2@127.0.0.1:{port}/");
    let err = RedisStore::connect(&url, "t6").await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Unavailable(_)), "{text}");
    assert!(text.contains(&format!("redis://scorer:***@127.0.0.1:{port}/")), "{text}");
    assert!(!text.contains("hunter2"), "{text}");

    let err = RedisStore::connect(&format!("redis+cluster://:hunter2@127.0.0.1:{port}"), "t6").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");

    let err = RedisStore::connect("http://:hunter2@127.0.0.1:1/", "t6").await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = RedisStore::connect(&url, "bad{prefix}").await.unwrap_err();
    assert!(err.to_string().contains("brace"), "{err}");
}

#[tokio::test]
async fn auth_comes_through_the_url() {
    let server = RedisServer::start_with_args(&["--requirepass", "secret"]);
    let url = server.url_with_auth("", "secret");
    let mut store = RedisStore::connect(&url, "t7").await.unwrap();
    let keys = [member("shop", 1)];
    let states = [rich_state(1)];
    assert_eq!(store.apply(&writes(&keys, &states, 0)).await.unwrap(), vec![true]);
    assert_eq!(store.load(&keys, &ids(&states)).await.unwrap()[0].state, states[0]);
    assert!(!format!("{store:?}").contains("secret"), "{store:?}");

    let err = RedisStore::connect(&server.url(), "t7").await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Config(_)), "a wrong configuration is not retried: {text}");
    assert!(text.contains("NOAUTH") && text.contains(&server.url()), "{text}");

    let err = RedisStore::connect(&server.url_with_auth("", "wrong-pw"), "t7").await.unwrap_err();
    let text = err.to_string();
    assert!(!text.contains("wrong-pw"), "{text}");
    assert!(text.to_lowercase().contains("pass") || text.contains("auth"), "{text}");
}

#[tokio::test]
async fn a_stored_state_that_does_not_decode_is_corrupt() {
    let server = RedisServer::start();
    let mut store = RedisStore::connect(&server.url(), "bad").await.unwrap();
    let keys = [member("shop", 1), member("shop", 2)];
    let name = store.key(&keys[1]);
    server.call(&["SET", &name, "\0\0\0\0\0\0\0\x03not a state"]).expect_ok("SET");
    match store.load(&keys, &[]).await {
        Err(StoreError::Corrupt(why)) => assert!(why.contains(&name), "{why}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    server.call(&["DEL", &name]).expect_int("DEL");
    server.call(&["HSET", &name, "v", "1"]).expect_int("HSET");
    match store.load(&keys, &[]).await {
        Err(StoreError::Corrupt(why)) => assert!(why.contains("WRONGTYPE") && why.contains(&name), "{why}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn cluster_batches_span_nodes_and_survive_a_slot_migration() {
    let cluster = RedisCluster::start(3);
    let mut store = RedisStore::connect(&cluster.seed_urls().join(","), "t8").await.unwrap();
    let keys: Vec<MemberKey> = (0..200).map(|i| member("shop", i)).collect();
    let names: Vec<String> = keys.iter().map(|k| store.key(k)).collect();
    let owners: HashSet<usize> = names.iter().map(|n| cluster.key_owner(n)).collect();
    assert_eq!(owners.len(), 3, "the batch must touch every node");
    let states: Vec<MemberState> = (0..200).map(rich_state).collect();

    let trips = store.round_trips();
    assert!(store.load(&keys, &[]).await.unwrap().iter().all(|v| v.version == 0));
    assert_eq!(store.round_trips() - trips, 3, "one pipeline per node");
    let trips = store.round_trips();
    assert_eq!(store.apply(&writes(&keys, &states, 0)).await.unwrap(), vec![true; 200]);
    assert_eq!(store.round_trips() - trips, 3, "one pipeline per node");
    let loaded = store.load(&keys, &ids(&states)).await.unwrap();
    assert!(loaded.iter().zip(&states).all(|(v, s)| v.version == 1 && &v.state == s));

    // Move member 0's slot away: the store's slot map is now wrong for it.
    let slot = key_slot(&names[0]);
    let from = cluster.key_owner(&names[0]);
    let to = (from + 1) % 3;
    cluster.migrate_slot(slot, to);
    assert_eq!(cluster.key_owner(&names[0]), to);

    let loaded = store.load(&keys, &ids(&states)).await.unwrap();
    assert!(loaded.iter().zip(&states).all(|(v, s)| v.version == 1 && &v.state == s));
    let mut changed = states.clone();
    changed[0].tier = "gold".into();
    assert_eq!(store.apply(&writes(&keys, &changed, 1)).await.unwrap(), vec![true; 200]);
    let moved = cluster.node(to);
    assert_eq!(bytes(moved.call(&["GET", &names[0]])), Some(stored_state(2, &changed[0])));
    match cluster.node(from).call(&["GET", &names[0]]) {
        Reply::Error(e) => assert!(e.starts_with("MOVED"), "{e}"),
        other => panic!("the old owner still serves the key: {other:?}"),
    }
    // The slot map was refreshed: the next batch is one pipeline per node again.
    let trips = store.round_trips();
    assert_eq!(store.load(&keys, &ids(&changed)).await.unwrap()[0].state, changed[0]);
    assert_eq!(store.round_trips() - trips, 3);

    // The redis+cluster:// form reaches the same data from a single seed.
    let seed = format!("redis+cluster://127.0.0.1:{}", cluster.node(2).port());
    let mut other = RedisStore::connect(&seed, "t8").await.unwrap();
    assert_eq!(other.load(&keys[..1], &ids(&changed[..1])).await.unwrap()[0].state, changed[0]);
}

#[tokio::test]
async fn cluster_batches_follow_ask_during_a_migration() {
    let cluster = RedisCluster::start(3);
    let mut store = RedisStore::connect(&cluster.seed_urls().join(","), "t9").await.unwrap();
    // Two members whose keys share a slot, so one can leave before the other.
    let mut by_slot = std::collections::HashMap::new();
    let (a, b) = (0..)
        .find_map(|i| {
            let key = member("shop", i);
            by_slot.insert(key_slot(&store.key(&key)), key.clone()).map(|earlier| (earlier, key))
        })
        .unwrap();
    let keys = [a, b];
    let names: Vec<String> = keys.iter().map(|k| store.key(k)).collect();
    let states = [rich_state(1), rich_state(2)];
    assert_eq!(store.apply(&writes(&keys, &states, 0)).await.unwrap(), vec![true, true]);

    // Half a migration, as `redis-cli --cluster reshard` leaves it between keys.
    let slot = key_slot(&names[0]).to_string();
    let from = cluster.key_owner(&names[0]);
    let to = (from + 1) % 3;
    let (from_id, to_id) = (cluster.node_ids()[from].clone(), cluster.node_ids()[to].clone());
    cluster.node(to).call(&["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]).expect_ok("IMPORTING");
    cluster.node(from).call(&["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]).expect_ok("MIGRATING");
    let port = cluster.node(to).port().to_string();
    // All of a member's keys at once (state and records): a script over a
    // member whose keys are split between the nodes is answered TRYAGAIN.
    let records = [format!("{}:r", names[0]), format!("{}:r", names[1])];
    let migrated =
        cluster.node(from).call(&["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS", &names[0], &records[0]]);
    assert_eq!(migrated, Reply::Status("OK".into()));

    // Member a answers ASK from the old owner; b is still there.
    let loaded = store.load(&keys, &ids(&states)).await.unwrap();
    assert_eq!((loaded[0].version, &loaded[0].state), (1, &states[0]));
    assert_eq!((loaded[1].version, &loaded[1].state), (1, &states[1]));
    let changed = [rich_state(3), rich_state(4)];
    assert_eq!(store.apply(&writes(&keys, &changed, 1)).await.unwrap(), vec![true, true]);
    // The importing node serves the key only after ASKING.
    let mut conn = Conn::open(cluster.node(to).port()).unwrap();
    conn.call(&["ASKING"]).unwrap().expect_ok("ASKING");
    assert_eq!(bytes(conn.call(&["GET", &names[0]]).unwrap()), Some(stored_state(2, &changed[0])));
    // No copy of a was created on the old owner by the write: it still sends a away.
    match cluster.node(from).call(&["EXISTS", &names[0]]) {
        Reply::Error(e) => assert!(e.starts_with("ASK"), "{e}"),
        other => panic!("the migrating node holds the key again: {other:?}"),
    }
    assert_eq!(bytes(cluster.node(from).call(&["GET", &names[1]])), Some(stored_state(2, &changed[1])));

    // Finish the migration the way `migrate_slot` does.
    let migrated =
        cluster.node(from).call(&["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS", &names[1], &records[1]]);
    assert_eq!(migrated, Reply::Status("OK".into()));
    let mut order = vec![to, from];
    order.extend((0..3).filter(|i| *i != to && *i != from));
    for i in order {
        cluster.node(i).call(&["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]).expect_ok("SETSLOT NODE");
    }
    cluster.wait_ok();
    let loaded = store.load(&keys, &ids(&changed)).await.unwrap();
    assert_eq!((loaded[0].version, &loaded[0].state), (2, &changed[0]));
    assert_eq!((loaded[1].version, &loaded[1].state), (2, &changed[1]));
}

/// Writes four records to one member at growing wall-clock times and
/// returns, after each write, which of them a load finds.
async fn sweep_sequence<S: BatchStore>(store: &mut S) -> Vec<Vec<String>> {
    const T0: u64 = 1_800_000_000;
    const DAY: u64 = 86_400;
    let key = member("shop", 1);
    let mut state = MemberState { tier: "silver".into(), ..MemberState::default() };
    let template = rich_state(1).events.into_values().next().unwrap();
    let times = [T0, T0 + 50 * DAY, T0 + 90 * DAY + 1, T0 + 95 * DAY];
    let ids = ["A", "B", "C", "D"];
    let mut seen = Vec::new();
    for (n, (&now, id)) in times.iter().zip(ids).enumerate() {
        let record = template.clone().stamped(now);
        let records = [(id, &record)];
        let sweep = Retention::days(now, 90).plan(state.records_swept);
        state.records_swept = sweep.swept;
        let write = Write {
            key: &key,
            expected: n as u64,
            state: &state,
            ttl_ms: None,
            records: &records,
            sweep_before: sweep.sweep_before,
            records_ttl_ms: sweep.records_ttl_ms,
        };
        assert_eq!(store.apply(&[write]).await.unwrap(), vec![true]);
        let loaded = store.load(std::slice::from_ref(&key), &[ids.to_vec()]).await.unwrap();
        let mut found: Vec<String> = loaded[0].state.events.keys().map(|k| k.to_string()).collect();
        found.sort();
        seen.push(found);
        assert_eq!(loaded[0].state.records_swept, state.records_swept);
    }
    seen
}

#[tokio::test]
async fn records_are_swept_once_a_period_and_both_stores_forget_them_alike() {
    let server = RedisServer::start();
    let mut redis = RedisStore::connect(&server.url(), "sw").await.unwrap();
    let seen = sweep_sequence(&mut redis).await;
    let want: Vec<Vec<&str>> = vec![
        vec!["A"],
        // 50 days on, a sweep finds nothing expired.
        vec!["A", "B"],
        // Past A's window (and a sweep period after the last sweep): A goes.
        vec!["B", "C"],
        // Within a sweep period of the last one: no sweep.
        vec!["B", "C", "D"],
    ];
    assert_eq!(seen, want);
    let mut memory = loyalty_scorer::state::memory::MemoryStore::new();
    assert_eq!(sweep_sequence(&mut memory).await, want, "the embedded store sweeps the same way");
    // The last sweep's horizon, kept in the state; the records' time to
    // live was last set by that sweep.
    let name = redis.key(&member("shop", 1));
    let loaded = redis.load(&[member("shop", 1)], &[]).await.unwrap();
    assert_eq!(loaded[0].state.records_swept, 1_800_000_000 + 1);
    let ttl = server.call(&["PTTL", &format!("{name}:r")]).expect_int("PTTL");
    assert!(ttl > 0, "{ttl}");
}

#[tokio::test]
async fn writes_refused_at_maxmemory_are_retried_later_and_applied_once() {
    let server = RedisServer::start();
    let mut store = RedisStore::connect(&server.url(), "oom").await.unwrap();
    let keys = [member("shop", 1)];
    let states = [rich_state(1)];
    // Any memory in use is over a 1-byte limit: Redis refuses every write.
    server.call(&["CONFIG", "SET", "maxmemory", "1"]).expect_ok("CONFIG SET maxmemory");
    match store.apply(&writes(&keys, &states, 0)).await {
        Err(StoreError::Unavailable(why)) => assert!(why.contains("OOM"), "{why}"),
        other => panic!("a write at maxmemory must be retryable, not {other:?}"),
    }
    assert_eq!(bytes(server.call(&["GET", &store.key(&keys[0])])), None, "nothing of the refused write applied");

    server.call(&["CONFIG", "SET", "maxmemory", "0"]).expect_ok("CONFIG SET maxmemory");
    assert_eq!(store.apply(&writes(&keys, &states, 0)).await.unwrap(), vec![true]);
    let loaded = store.load(&keys, &ids(&states)).await.unwrap();
    assert_eq!((loaded[0].version, &loaded[0].state), (1, &states[0]));
}
