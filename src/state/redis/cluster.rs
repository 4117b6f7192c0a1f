//! What the store needs to know of Redis Cluster: the slot of a key, the
//! owner of each slot (`CLUSTER SLOTS`), and where a `MOVED`/`ASK` points.
//! Pure functions over values; the I/O is in the parent module.

use redis::Value;

/// The number of hash slots of a Redis cluster.
pub(super) const SLOTS: usize = 16384;

/// The slot of `key` per the cluster spec: CRC16 (XMODEM) of the hash tag
/// (the text between the first `{` and the next `}`, when not empty) or of
/// the whole key, modulo 16384.
pub(super) fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    let mut crc: u16 = 0;
    for &byte in hashed {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    // 16384 is a power of two: the remainder always fits the slot range.
    crc & (SLOTS as u16 - 1)
}

/// One range of slots and the `host:port` of its master, from `CLUSTER SLOTS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SlotRange {
    pub first: u16,
    pub last: u16,
    pub master: String,
}

/// Parses a `CLUSTER SLOTS` reply. An empty host (the node does not know
/// its own address) means the host the reply came from: `asked_host`.
pub(super) fn parse_slots(reply: &Value, asked_host: &str) -> Result<Vec<SlotRange>, String> {
    let Value::Array(entries) = reply else {
        return Err(format!("CLUSTER SLOTS answered {reply:?}"));
    };
    let mut ranges = Vec::with_capacity(entries.len());
    for entry in entries {
        let bad = || format!("CLUSTER SLOTS entry {entry:?}");
        let Value::Array(fields) = entry else { return Err(bad()) };
        let (Some(first), Some(last), Some(Value::Array(master))) = (fields.first(), fields.get(1), fields.get(2))
        else {
            return Err(bad());
        };
        let slot = |v: &Value| match v {
            Value::Int(n) => u16::try_from(*n).ok().filter(|&s| usize::from(s) < SLOTS),
            _ => None,
        };
        let (Some(first), Some(last)) = (slot(first), slot(last)) else { return Err(bad()) };
        let host = match master.first() {
            Some(Value::BulkString(host)) => String::from_utf8_lossy(host).into_owned(),
            Some(Value::SimpleString(host)) => host.clone(),
            _ => return Err(bad()),
        };
        let Some(Value::Int(port)) = master.get(1) else { return Err(bad()) };
        let host = if host.is_empty() { asked_host.to_owned() } else { host };
        ranges.push(SlotRange { first, last, master: join_host_port(&host, *port) });
    }
    Ok(ranges)
}

/// `host:port`, with brackets around an IPv6 host, as Redis writes it in
/// `MOVED` and as [`NodeAddr`] keys nodes.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

/// The `host:port` of a node, split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NodeAddr {
    pub host: String,
    pub port: u16,
}

impl NodeAddr {
    /// Parses `host:port` (`[v6]:port` too); an empty host means `default_host`
    /// (Redis writes `:port` when a node does not know its own address).
    pub(super) fn parse(text: &str, default_host: &str) -> Option<NodeAddr> {
        let (host, port) = text.rsplit_once(':')?;
        let port = port.parse().ok()?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host.is_empty() { default_host } else { host };
        Some(NodeAddr { host: host.to_owned(), port })
    }

    /// The key the store files the node under: the form of [`join_host_port`].
    pub(super) fn key(&self) -> String {
        join_host_port(&self.host, i64::from(self.port))
    }
}

/// The `host:port` in the details of a `MOVED` or `ASK` error (`3999 127.0.0.1:6381`).
pub(super) fn redirect_target(details: Option<&str>) -> Option<&str> {
    details?.split_whitespace().nth(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_spec() {
        // Examples from the cluster specification and the redis crate's tests.
        assert_eq!(key_slot(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{foo}bar"), 12182);
        assert_eq!(key_slot(b"p:{foo}:x"), 12182);
        assert_eq!(key_slot(b"{}foo"), key_slot(b"{}foo"));
        assert_ne!(key_slot(b"{}foo"), key_slot(b"foo"));
    }

    #[test]
    fn cluster_slots_parse() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![Value::BulkString(host.into()), Value::Int(port), Value::BulkString(b"id".to_vec())])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![Value::Int(0), Value::Int(5460), node("10.0.0.1", 7000), node("10.0.0.4", 7003)]),
            Value::Array(vec![Value::Int(5461), Value::Int(16383), node("", 7001)]),
        ]);
        assert_eq!(
            parse_slots(&reply, "seed"),
            Ok(vec![
                SlotRange { first: 0, last: 5460, master: "10.0.0.1:7000".into() },
                SlotRange { first: 5461, last: 16383, master: "seed:7001".into() },
            ])
        );
        assert!(parse_slots(&Value::Nil, "seed").is_err());
        let out_of_range = Value::Array(vec![Value::Array(vec![Value::Int(0), Value::Int(16384), node("h", 1)])]);
        assert!(parse_slots(&out_of_range, "seed").is_err());
    }

    #[test]
    fn redirects_parse() {
        assert_eq!(redirect_target(Some("3999 127.0.0.1:6381")), Some("127.0.0.1:6381"));
        assert_eq!(redirect_target(None), None);
        assert_eq!(NodeAddr::parse("127.0.0.1:6381", "x"), Some(NodeAddr { host: "127.0.0.1".into(), port: 6381 }));
        assert_eq!(NodeAddr::parse(":6381", "h"), Some(NodeAddr { host: "h".into(), port: 6381 }));
        assert_eq!(NodeAddr::parse("[::1]:7000", "h").map(|a| a.key()), Some("[::1]:7000".into()));
        assert_eq!(NodeAddr::parse("nonsense", "h"), None);
    }
}
