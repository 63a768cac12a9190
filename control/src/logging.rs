//! Log output: text (ANSI colour only when stderr is a terminal) or JSON lines, with a level
//! that a config reload can change while running (`tracing-subscriber`'s reload layer).

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

use crate::config::LogFormat;

/// The installed subscriber's level control.
#[derive(Debug)]
pub struct Logging {
    filter: reload::Handle<EnvFilter, Registry>,
}

impl Logging {
    /// Installs the global subscriber writing to stderr. `RUST_LOG`, when set, wins over `level`
    /// at start.
    pub fn init(level: &str, format: LogFormat) -> Result<Logging, String> {
        let filter = match EnvFilter::try_from_default_env() {
            Ok(f) => f,
            Err(_) => EnvFilter::try_new(level).map_err(|e| format!("log_level {level:?}: {e}"))?,
        };
        let (filter, handle) = reload::Layer::new(filter);
        let registry = tracing_subscriber::registry().with(filter);
        let done = match format {
            LogFormat::Text => registry
                .with(fmt::layer().with_writer(std::io::stderr).with_ansi(std::io::stderr().is_terminal()))
                .try_init(),
            LogFormat::Json => registry
                .with(
                    fmt::layer()
                        .json()
                        .flatten_event(true)
                        .with_current_span(false)
                        .with_writer(std::io::stderr),
                )
                .try_init(),
        };
        done.map_err(|e| format!("logging: {e}"))?;
        Ok(Logging { filter: handle })
    }

    /// Replaces the level (a reload of `log_level`).
    pub fn set_level(&self, level: &str) -> Result<(), String> {
        let f = EnvFilter::try_new(level).map_err(|e| format!("log_level {level:?}: {e}"))?;
        self.filter.reload(f).map_err(|e| format!("log_level: {e}"))
    }
}
