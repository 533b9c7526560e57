//! Which containers the shim put to sleep, persisted in
//! `<state_dir>/sleeping.json` so that a restarted shim (even after
//! `kill -9`) knows which paused or stopped containers are its own, and which
//! memory limits to put back.
//!
//! Writes are atomic: a temporary file in the same directory is written and
//! fsynced, renamed over the old file, and the directory is fsynced. A reader
//! sees the old file or the new one, never half of one. Saves are whole
//! snapshots: callers serialise them so that an older snapshot never lands
//! after a newer one.
//!
//! ```json
//! {
//!   "version": 1,
//!   "records": [
//!     { "id": "b7f0…", "name": "web", "state": "paused", "since_unix_ms": 1732680000000,
//!       "saved_limits": { "cgroup": "v1", "memory_limit": 9223372036854771712,
//!                         "memsw_limit": 9223372036854771712 },
//!       "memory_before": 105906176, "memory_after": 8314880 }
//!   ]
//! }
//! ```

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::cgroup::SavedLimits;

/// The file under `state_dir`.
pub const FILE_NAME: &str = "sleeping.json";
/// The format this shim reads and writes.
const FORMAT_VERSION: u64 = 1;
/// Temporary files are `.sleeping.json.tmp-<pid>-<n>`.
const TEMP_PREFIX: &str = ".sleeping.json.tmp-";

/// Numbers temporary files, so that two saves never share one.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What the shim did to a container.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SleptState {
    /// Paused (frozen), memory maybe squeezed.
    Paused,
    /// Stopped after a long sleep (deep sleep).
    Stopped,
}

/// One container the shim put to sleep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SleepRecord {
    pub id: String,
    pub name: String,
    pub state: SleptState,
    pub since_unix_ms: u64,
    /// Limits a squeeze changed; put them back before unpausing.
    #[serde(default)]
    pub saved_limits: Option<SavedLimits>,
    /// Memory usage in bytes when it fell asleep and after the squeeze.
    #[serde(default)]
    pub memory_before: Option<u64>,
    #[serde(default)]
    pub memory_after: Option<u64>,
    /// The host ports it published while it ran, for a deep sleeper: held
    /// again when a restarted shim finds it still stopped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<crate::docker::PublishedPort>,
    /// Its `State.Health` before the pause, shown to clients while it sleeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<serde_json::Value>,
}

/// Why the records could not be loaded or saved. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} has format version {found}; this shim reads version {FORMAT_VERSION}")]
    UnsupportedVersion { path: PathBuf, found: u64 },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// A file we cannot make sense of, as opposed to one we cannot read.
    fn is_bad_content(&self) -> bool {
        matches!(self, StoreError::Corrupt { .. } | StoreError::UnsupportedVersion { .. })
    }
}

#[derive(Serialize)]
struct FileOut<'a> {
    version: u64,
    records: &'a [SleepRecord],
}

#[derive(Deserialize)]
struct FileIn {
    #[serde(default)]
    records: Vec<SleepRecord>,
}

/// The sleep records under one state directory.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// Does no I/O: the directory is created by the first save.
    pub fn open(state_dir: impl AsRef<Path>) -> Store {
        Store {
            dir: state_dir.as_ref().to_path_buf(),
        }
    }

    /// `<state_dir>/sleeping.json`.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// The saved records; none when the file (or the directory) does not
    /// exist yet.
    pub fn load(&self) -> Result<Vec<SleepRecord>, StoreError> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|source| StoreError::Corrupt {
            path: path.clone(),
            source,
        })?;
        // Check the version before the records: a newer format may not parse.
        match value.get("version").and_then(serde_json::Value::as_u64) {
            Some(FORMAT_VERSION) => {}
            Some(found) => return Err(StoreError::UnsupportedVersion { path, found }),
            None => {
                let source = serde::de::Error::custom("no \"version\" number");
                return Err(StoreError::Corrupt { path, source });
            }
        }
        let file: FileIn = serde_json::from_value(value).map_err(|source| StoreError::Corrupt {
            path: path.clone(),
            source,
        })?;
        Ok(file.records)
    }

    /// Loads at startup, never failing: a file we cannot make sense of is
    /// renamed to `sleeping.json.corrupt-<unix ms>` (kept for a person to
    /// look at) and the shim starts with no records, as it does when the file
    /// cannot be read. Also removes temporary files left by a save that was
    /// cut short. Problems are logged.
    pub fn load_or_quarantine(&self) -> Vec<SleepRecord> {
        self.remove_stale_temp_files();
        match self.load() {
            Ok(records) => records,
            Err(error) if error.is_bad_content() => {
                let path = self.path();
                let quarantined = self.dir.join(format!("{FILE_NAME}.corrupt-{}", unix_ms_now()));
                match fs::rename(&path, &quarantined) {
                    Ok(()) => tracing::warn!(
                        %error,
                        moved_to = %quarantined.display(),
                        "sleep records unreadable; starting with none"
                    ),
                    Err(e) => tracing::warn!(
                        %error,
                        rename_error = %e,
                        "sleep records unreadable and could not be moved aside; starting with none"
                    ),
                }
                Vec::new()
            }
            Err(error) => {
                tracing::warn!(%error, "cannot load sleep records; starting with none");
                Vec::new()
            }
        }
    }

    /// Replaces the file with `records`, atomically. Creates the state
    /// directory if needed.
    pub fn save(&self, records: &[SleepRecord]) -> Result<(), StoreError> {
        let path = self.path();
        fs::create_dir_all(&self.dir).map_err(|source| StoreError::Write {
            path: self.dir.clone(),
            source,
        })?;
        let temp = self.dir.join(format!(
            "{TEMP_PREFIX}{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = write_then_rename(&temp, &path, &self.dir, records);
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result.map_err(|source| StoreError::Write { path, source })
    }

    fn remove_stale_temp_files(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

fn write_then_rename(temp: &Path, path: &Path, dir: &Path, records: &[SleepRecord]) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(&FileOut {
        version: FORMAT_VERSION,
        records,
    })?;
    bytes.push(b'\n');
    write_atomically(temp, path, dir, &bytes)
}

/// Writes `bytes` to `temp` (created with mode 0600), fsyncs it, renames it
/// over `path` and fsyncs `dir`: a reader sees the old file or the new one.
/// Also the writer of `origins.json` (`super::origins`).
pub(super) fn write_atomically(temp: &Path, path: &Path, dir: &Path, bytes: &[u8]) -> io::Result<()> {
    // Not create_new: a leftover from a crashed save by a process with the
    // same pid (pid 1 in a container) must not block every later save.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(temp)?;
    file.write_all(bytes)?;
    // The data must be on disk before the rename makes it the file, or a
    // crash could leave an empty sleeping.json.
    file.sync_all()?;
    drop(file);
    fs::rename(temp, path)?;
    // And the rename itself must be on disk.
    fs::File::open(dir)?.sync_all()
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
