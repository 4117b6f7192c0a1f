//! The `target` string of [`RedisStore::connect`](super::RedisStore::connect):
//! which servers to reach, and how to print it without its password.

/// Where the store connects: one server, or the seed nodes of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    /// `redis://...` or `rediss://...`: one server.
    Single(String),
    /// The seed URLs of a Redis Cluster, each a `redis://` or `rediss://` URL.
    Cluster(Vec<String>),
}

impl Target {
    /// Splits `target` into one URL or cluster seeds. `redis+cluster://` and
    /// `rediss+cluster://` give their user, password and path to every host
    /// of the list; a comma-separated list of URLs is taken as it is.
    pub(super) fn parse(target: &str) -> Result<Target, String> {
        let target = target.trim();
        for (scheme, base) in [("redis+cluster://", "redis"), ("rediss+cluster://", "rediss")] {
            let Some(rest) = target.strip_prefix(scheme) else { continue };
            // The user part ends at the last `@`: a password may hold `@`, `/` or `,`.
            let (userinfo, hosts_and_path) = match rest.rfind('@') {
                Some(at) => (&rest[..=at], &rest[at + 1..]),
                None => ("", rest),
            };
            let (hosts, path) = match hosts_and_path.find('/') {
                Some(slash) => hosts_and_path.split_at(slash),
                None => (hosts_and_path, "/"),
            };
            let seeds: Vec<String> = hosts
                .split(',')
                .map(str::trim)
                .filter(|host| !host.is_empty())
                .map(|host| format!("{base}://{userinfo}{host}{path}"))
                .collect();
            if seeds.is_empty() {
                return Err("no host:port after the scheme".into());
            }
            return Ok(Target::Cluster(seeds));
        }
        if !(target.starts_with("redis://") || target.starts_with("rediss://")) {
            return Err("expected redis://, rediss://, redis+cluster:// or rediss+cluster://".into());
        }
        // Commas never occur in a plain URL's host; several URLs make a cluster.
        let parts: Vec<&str> = split_urls(target);
        if parts.len() > 1 {
            if let Some(bad) = parts.iter().find(|p| !(p.starts_with("redis://") || p.starts_with("rediss://"))) {
                return Err(format!("seed {} is not a redis:// or rediss:// URL", redact(bad)));
            }
            return Ok(Target::Cluster(parts.into_iter().map(str::to_owned).collect()));
        }
        Ok(Target::Single(target.to_owned()))
    }
}

/// Splits a comma-separated list of URLs at the commas that start a new
/// URL, so a comma inside a password does not split it.
fn split_urls(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, _) in list.match_indices(',') {
        let next = list[i + 1..].trim_start();
        if next.starts_with("redis://") || next.starts_with("rediss://") {
            parts.push(list[start..i].trim());
            start = i + 1;
        }
    }
    parts.push(list[start..].trim());
    parts
}

/// `url` with every password replaced by `***`: `redis://user:***@host:port/`.
/// Works on single URLs, `redis+cluster://` lists and comma-separated lists,
/// and on passwords holding `@`, `/`, `,` or `:`. A user name without a
/// password (`redis://alice@host/`) is kept: the redis crate reads it as a
/// user name, not a secret.
pub fn redact(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut pieces = url.split("://");
    if let Some(first) = pieces.next() {
        out.push_str(first);
    }
    for piece in pieces {
        out.push_str("://");
        // This piece runs from after a scheme to the next scheme (if any): its
        // user part is everything before its last `@`.
        match piece.rfind('@') {
            Some(at) => {
                let userinfo = &piece[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&piece[at..]);
            }
            None => out.push_str(piece),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://user:secret@host:6379/0"), "redis://user:***@host:6379/0");
        assert_eq!(redact("redis://:secret@127.0.0.1:1/"), "redis://:***@127.0.0.1:1/");
        assert_eq!(redact("rediss://u:p@ss/w,rd@h:1/"), "rediss://u:***@h:1/");
        assert_eq!(redact("redis://alice@h:1/"), "redis://alice@h:1/");
        assert_eq!(redact("redis://h:1/"), "redis://h:1/");
        assert_eq!(redact("redis+cluster://u:pw@a:1,b:2/"), "redis+cluster://u:***@a:1,b:2/");
        assert_eq!(redact("redis://:x@a:1/,redis://:y@b:2/"), "redis://:***@a:1/,redis://:***@b:2/");
        assert_eq!(redact("not a url"), "not a url");
        for url in ["redis://u:p,w@a:1/,redis://:p,w@b:2", "redis+cluster://:p,w@a:1,b:2"] {
            assert!(!redact(url).contains("p,w"), "{url}");
        }
    }

    #[test]
    fn targets_parse() {
        assert_eq!(Target::parse("redis://h:1/2"), Ok(Target::Single("redis://h:1/2".into())));
        assert_eq!(Target::parse("rediss://u:p@h:1"), Ok(Target::Single("rediss://u:p@h:1".into())));
        assert_eq!(
            Target::parse("redis+cluster://:pw@a:1,b:2"),
            Ok(Target::Cluster(vec!["redis://:pw@a:1/".into(), "redis://:pw@b:2/".into()]))
        );
        assert_eq!(Target::parse("rediss+cluster://a:1/"), Ok(Target::Cluster(vec!["rediss://a:1/".into()])));
        assert_eq!(
            Target::parse("redis://:p,w@a:1/, redis://b:2/"),
            Ok(Target::Cluster(vec!["redis://:p,w@a:1/".into(), "redis://b:2/".into()]))
        );
        assert!(Target::parse("http://h:1").is_err());
        assert!(Target::parse("redis+cluster://").is_err());
    }
}
