//! The one configuration struct, read from a TOML file, then the environment, then flags
//! (each later layer wins). Unknown fields in the file are errors.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use lodestar_server::ServerConfig;
use lodestar_store::StoreConfig;

/// Everything `lodestar` can be told.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The embedded store.
    pub store: StoreConfig,
    /// The HTTP server.
    pub server: ServerConfig,
    /// Logging.
    pub log: LogConfig,
}

/// How the process logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` for people, `json` for log collectors.
    pub format: String,
    /// A `tracing` filter such as `info` or `lodestar_store=debug,info`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            filter: "info".into(),
        }
    }
}

/// Values from the environment and command-line flags; `None` leaves the lower layer.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--data-dir` / `LODESTAR_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--listen` / `LODESTAR_LISTEN`.
    pub listen: Option<String>,
    /// `--admin-token` / `LODESTAR_ADMIN_TOKEN`.
    pub admin_token: Option<String>,
    /// `--log-format` / `LODESTAR_LOG_FORMAT`.
    pub log_format: Option<String>,
}

impl Config {
    /// Loads the file (the given one, which must exist, or `./lodestar.toml` if present),
    /// then applies the overrides.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let default_file = Path::new("lodestar.toml");
        let path = match file {
            Some(p) => Some(p),
            None if default_file.exists() => Some(default_file),
            None => None,
        };
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config file {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("in config file {}", p.display()))?
            }
            None => Config::default(),
        };
        if let Some(d) = &overrides.data_dir {
            config.store.data_dir = d.clone();
        }
        if let Some(l) = &overrides.listen {
            config.server.listen = l.clone();
        }
        if let Some(t) = &overrides.admin_token {
            config.server.admin_token = Some(t.clone()).filter(|t| !t.is_empty());
        }
        if let Some(f) = &overrides.log_format {
            config.log.format = f.clone();
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_and_layers_apply_in_order() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../lodestar.example.toml");
        let from_file = Config::load(Some(Path::new(example)), &Overrides::default()).unwrap();
        assert_eq!(from_file.server.listen, "127.0.0.1:8080");
        let over = Overrides {
            listen: Some("127.0.0.1:9999".into()),
            data_dir: Some("/tmp/x".into()),
            ..Default::default()
        };
        let layered = Config::load(Some(Path::new(example)), &over).unwrap();
        assert_eq!(layered.server.listen, "127.0.0.1:9999");
        assert_eq!(layered.store.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[server]\nlisen = \"x\"\n").unwrap();
        let err = Config::load(Some(&path), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
    }
}
