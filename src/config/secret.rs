//! Values that must never be shown: SASL and TLS passwords, Redis URLs with
//! credentials. Each type here prints itself redacted in `Debug` and
//! `Display`, so a `Config` can be logged whole; the clear text is reachable
//! only through a method named `expose`, which only the code that hands it to
//! a client should call.

use std::collections::BTreeMap;
use std::fmt;

use crate::state::redis::redact;

/// A secret string: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear text, for the client that needs it; never for a message.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The Redis target (`redis.url`), as `RedisStore::connect` takes it.
/// `Debug` and `Display` show it with every password replaced by `***`, the
/// host and database kept: that much is what an operator needs in a log.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(Secret);

impl RedisUrl {
    pub(super) fn new(url: String) -> Self {
        Self(Secret::new(url))
    }

    /// The URL with its credentials, for `RedisStore::connect` only.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&redact(self.0.expose()), f)
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(self.0.expose()))
    }
}

/// Whether a librdkafka property holds a secret, by its name: every
/// `*.password`, `*.secret`, `*.key*` (`ssl.key.pem` is a private key),
/// token and credential property, and `sasl.oauthbearer.config`, which may
/// carry a client secret. A path (`ssl.key.location`) is hidden too: hiding
/// one harmless value costs less than a list that misses a new secret.
pub fn is_secret_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["password", "secret", "key", "token", "credential"].iter().any(|word| name.contains(word))
        || name == "sasl.oauthbearer.config"
}

/// The librdkafka properties of `kafka.properties`, by name, passed to the
/// clients as they are. `Debug` shows secret values (see
/// [`is_secret_property`]) as `***` and the others in clear.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KafkaProperties(BTreeMap<String, Property>);

#[derive(Clone, PartialEq, Eq)]
enum Property {
    Plain(String),
    Secret(Secret),
}

impl KafkaProperties {
    pub(super) fn insert(&mut self, name: String, value: String) {
        let value =
            if is_secret_property(&name) { Property::Secret(Secret::new(value)) } else { Property::Plain(value) };
        self.0.insert(name, value);
    }

    /// Every property with its clear value, in name order: for the Kafka
    /// client's configuration only, never for a message.
    pub fn expose(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(name, value)| {
            let value = match value {
                Property::Plain(v) => v.as_str(),
                Property::Secret(s) => s.expose(),
            };
            (name.as_str(), value)
        })
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for KafkaProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, value)| {
                let shown: &dyn fmt::Debug = match value {
                    Property::Plain(v) => v,
                    Property::Secret(s) => s,
                };
                (name, shown)
            }))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_property_names() {
        for name in [
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "ssl.key.pem",
            "sasl.oauthbearer.client.secret",
            "sasl.oauthbearer.config",
            "SASL.PASSWORD",
        ] {
            assert!(is_secret_property(name), "{name}");
        }
        for name in ["sasl.username", "security.protocol", "sasl.mechanism", "session.timeout.ms"] {
            assert!(!is_secret_property(name), "{name}");
        }
    }

    #[test]
    fn nothing_secret_is_printed() {
        let mut properties = KafkaProperties::default();
        properties.insert("sasl.password".into(), "hunter2".into());
        properties.insert("sasl.username".into(), "scorer".into());
        let shown = format!("{properties:?}");
        assert_eq!(shown, r#"{"sasl.password": ***, "sasl.username": "scorer"}"#);
        let url = RedisUrl::new("redis://user:hunter2@h:6379/0".into());
        assert_eq!(format!("{url:?} {url}"), r#""redis://user:***@h:6379/0" redis://user:***@h:6379/0"#);
        assert_eq!(format!("{:?} {}", Secret::new("hunter2"), Secret::new("hunter2")), "*** ***");
        assert_eq!(
            properties.expose().collect::<Vec<_>>(),
            [("sasl.password", "hunter2"), ("sasl.username", "scorer")]
        );
    }
}
