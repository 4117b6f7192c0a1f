//! Tracing setup: text for people, JSON for log pipelines, filtered by
//! `LOYALTY_SCORER_LOG` (an `EnvFilter` directive such as `info` or
//! `loyalty_scorer=debug,rdkafka=warn`).

use std::fmt;
use std::str::FromStr;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

/// The environment variable holding the filter directives.
pub const LOG_ENV: &str = "LOYALTY_SCORER_LOG";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line, the event's fields at the top level.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (expected text or json)")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Installs the global subscriber, writing to stderr. `default_directives`
/// applies when [`LOG_ENV`] is unset; a set but invalid [`LOG_ENV`] is an
/// error rather than a silent fallback, so a typo cannot hide the logs.
pub fn init_tracing(format: LogFormat, default_directives: &str) -> anyhow::Result<()> {
    let filter = match std::env::var(LOG_ENV) {
        Ok(directives) => EnvFilter::try_new(&directives).with_context(|| format!("{LOG_ENV}={directives:?}"))?,
        Err(std::env::VarError::NotPresent) => EnvFilter::try_new(default_directives)
            .with_context(|| format!("default log filter {default_directives:?}"))?,
        Err(std::env::VarError::NotUnicode(_)) => anyhow::bail!("{LOG_ENV} is not valid UTF-8"),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the tracing subscriber: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip() {
        for f in [LogFormat::Text, LogFormat::Json] {
            assert_eq!(f.to_string().parse::<LogFormat>(), Ok(f));
        }
        assert!("yaml".parse::<LogFormat>().is_err());
    }
}
