//! Loading: read a file, parse it as a layer over the embedded `shim.yml`,
//! and report every problem with its file, line and column.

use std::fmt;
use std::path::Path;

use super::policy::{CompiledSelector, PolicyTable};
use super::schema::{Config, Exemption};

/// The embedded default config.
const DEFAULT_CONFIG_YAML: &str = include_str!("../../shim.yml");
const DEFAULT_CONFIG_NAME: &str = "<embedded shim.yml>";

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: String,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// The key path (`standards.limits.memory`), when known.
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// Every problem found in a config; loading reports them all at once.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// A validated config with its matchers compiled.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    pub source: String,
    pub config: Config,
    pub policy: PolicyTable,
    pub exemptions: Vec<(CompiledSelector, Exemption)>,
}

impl Config {
    /// Reads `path`, or the embedded default when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
        match path {
            None => Config::from_yaml(DEFAULT_CONFIG_YAML, DEFAULT_CONFIG_NAME),
            Some(path) => {
                let name = path.display().to_string();
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
                    problems: vec![ConfigProblem {
                        file: name.clone(),
                        position: None,
                        key: None,
                        message: format!("cannot read: {e}"),
                    }],
                })?;
                Config::from_yaml_over_default(&text, &name)
            }
        }
    }

    /// Parses `text` as a layer over the embedded `shim.yml`: mappings merge
    /// key by key, anything else (lists, scalars) replaces the default. A
    /// file that sets only `listen` keeps every standard and class of the
    /// default. `file` names it in errors, which point into `text`.
    pub fn from_yaml_over_default(text: &str, file: &str) -> Result<LoadedConfig, ConfigError> {
        let problem = |e: serde_norway::Error| parse_error(file, &e);
        if text.trim().is_empty() {
            return Config::from_yaml(DEFAULT_CONFIG_YAML, file);
        }
        // The layer alone first: unknown keys, duplicates and bad values are
        // reported with their place in the user's file.
        serde_norway::from_str::<Config>(text).map_err(problem)?;
        let layer: serde_norway::Value = serde_norway::from_str(text).map_err(problem)?;
        let mut merged: serde_norway::Value =
            serde_norway::from_str(DEFAULT_CONFIG_YAML).expect("the embedded shim.yml parses");
        merge_yaml(&mut merged, layer);
        let config: Config = serde_norway::from_value(merged).map_err(problem)?;
        config.validate(text, file)
    }

    /// Parses and validates `text`; `file` names it in errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<LoadedConfig, ConfigError> {
        // An empty file is the all-defaults config, not a parse error.
        let parsed: Result<Config, _> = if text.trim().is_empty() {
            serde_norway::from_str("{}")
        } else {
            serde_norway::from_str(text)
        };
        let config = parsed.map_err(|e| parse_error(file, &e))?;
        config.validate(text, file)
    }
}

/// A YAML or schema error, placed where the parser found it.
fn parse_error(file: &str, error: &serde_norway::Error) -> ConfigError {
    ConfigError {
        problems: vec![ConfigProblem {
            file: file.to_string(),
            position: error.location().map(|l| (l.line(), l.column())),
            key: None,
            message: strip_location(&error.to_string()),
        }],
    }
}

/// Merges `layer` into `base`: mappings key by key, recursively; any other
/// value of `layer` replaces `base`'s.
fn merge_yaml(base: &mut serde_norway::Value, layer: serde_norway::Value) {
    use serde_norway::Value;
    match (base, layer) {
        (Value::Mapping(base), Value::Mapping(layer)) => {
            for (key, value) in layer {
                match base.get_mut(&key) {
                    Some(existing) => merge_yaml(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, layer) => *base = layer,
    }
}

/// serde_norway appends " at line L column C"; we print the position first.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}
