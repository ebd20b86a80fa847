//! The `metrics:` config section: where the HTTP scrape endpoint listens (issue 13).
//!
//! ```yaml
//! metrics:
//!   listen: 127.0.0.1:9817   # absent or "": off (the default)
//! ```
//!
//! Under the packaged systemd unit (`PrivateNetwork=yes`) chartd cannot bind a TCP port; there
//! `chartd-metrics.socket` passes the listening socket in and `listen` is not needed (a passed
//! socket wins over `listen`).
//!
//! May touch: nothing outside its arguments (pure).

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::net::SocketAddr;

/// The effective `metrics:` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsConfig {
    /// TCP address of the scrape endpoint; `None`: off (unless systemd passes a socket).
    pub listen: Option<SocketAddr>,
}

/// `metrics:` in the file.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileMetrics {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<Listen>,
}

impl FileMetrics {
    pub fn effective(section: Option<&FileMetrics>) -> MetricsConfig {
        MetricsConfig {
            listen: section.and_then(|m| m.listen).and_then(|l| l.0),
        }
    }

    /// The file form of the effective settings (`None` when off, so `to_yaml` stays unchanged).
    pub fn from_config(c: &MetricsConfig) -> Option<FileMetrics> {
        c.listen.map(|a| FileMetrics {
            listen: Some(Listen(Some(a))),
        })
    }
}

/// `listen`: `IP:PORT` (`[::1]:9817` for IPv6); an empty string turns the endpoint off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

struct ListenVisitor;

impl Visitor<'_> for ListenVisitor {
    type Value = Listen;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an address such as 127.0.0.1:9817")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Listen, E> {
        let text = v.trim();
        if text.is_empty() {
            return Ok(Listen(None));
        }
        text.parse::<SocketAddr>().map(|a| Listen(Some(a))).map_err(|e| {
            let shown: String = text.chars().take(64).collect();
            E::custom(format!(
                "invalid listen address {shown:?} ({e}; expected IP:PORT such as 127.0.0.1:9817 or [::1]:9817)"
            ))
        })
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(ListenVisitor)
    }
}

impl Serialize for Listen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(a) => s.serialize_str(&a.to_string()),
            None => s.serialize_str(""),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MetricsConfig, String> {
        serde_yaml::from_str::<FileMetrics>(text)
            .map(|m| FileMetrics::effective(Some(&m)))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse("{}").unwrap().listen, None);
        assert_eq!(parse("listen: ''").unwrap().listen, None);
        assert_eq!(
            parse("listen: 127.0.0.1:9817").unwrap().listen,
            Some("127.0.0.1:9817".parse().unwrap())
        );
        assert_eq!(
            parse("listen: '[::1]:0'").unwrap().listen,
            Some("[::1]:0".parse().unwrap())
        );
        let e = parse("listen: localhost").unwrap_err();
        assert!(e.contains("invalid listen address \"localhost\""), "{e}");
        assert!(parse("listne: 127.0.0.1:1").is_err());
    }

    #[test]
    fn round_trip() {
        let c = parse("listen: 127.0.0.1:9817").unwrap();
        let text = serde_yaml::to_string(&FileMetrics::from_config(&c)).unwrap();
        assert_eq!(parse(&text).unwrap(), c);
        assert!(FileMetrics::from_config(&MetricsConfig::default()).is_none());
    }
}
