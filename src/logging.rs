//! Logging: journald when chartd runs under systemd (stderr is the journal), text on stderr
//! otherwise; the level can change on reload.
//!
//! May touch: the process-wide tracing subscriber (installed once, level reloadable), stderr or
//! journald, and `JOURNAL_STREAM`.

use crate::config::{LogConfig, LogFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

/// Changes the level of the running subscriber.
pub struct LogHandle(Option<reload::Handle<EnvFilter, Registry>>);

impl LogHandle {
    pub fn set_level(&self, level: &str) {
        if let Some(h) = &self.0 {
            if let Ok(f) = EnvFilter::try_new(level) {
                let _ = h.reload(f);
            }
        }
    }
}

/// Whether stderr is connected to the journal (systemd sets `JOURNAL_STREAM=dev:ino`).
fn stderr_is_journal() -> bool {
    let Ok(v) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let Ok(st) = rustix::fs::fstat(rustix::stdio::stderr()) else {
        return false;
    };
    dev.parse::<u64>().ok() == Some(st.st_dev) && ino.parse::<u64>().ok() == Some(st.st_ino)
}

pub fn init(cfg: &LogConfig) -> LogHandle {
    let filter = EnvFilter::try_new(&cfg.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let journald = match cfg.format {
        LogFormat::Journald => true,
        LogFormat::Text => false,
        LogFormat::Auto => stderr_is_journal(),
    };
    let out: Box<dyn Layer<_> + Send + Sync> = match journald.then(tracing_journald::layer) {
        Some(Ok(layer)) => Box::new(layer.with_syslog_identifier("chartd".into())),
        other => {
            if let Some(Err(e)) = other {
                eprintln!("chartd: journald logging unavailable ({e}); logging to stderr");
            }
            let ansi = rustix::termios::isatty(rustix::stdio::stderr());
            Box::new(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(ansi)
                    .with_target(false),
            )
        }
    };
    match tracing_subscriber::registry()
        .with(filter)
        .with(out)
        .try_init()
    {
        Ok(()) => LogHandle(Some(handle)),
        Err(_) => LogHandle(None),
    }
}
