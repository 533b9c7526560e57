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
    // Not create_new: a leftover from a crashed save by a process with the
    // same pid (pid 1 in a container) must not block every later save.
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(temp)?;
    file.write_all(&bytes)?;
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
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn records() -> Vec<SleepRecord> {
        vec![
            SleepRecord {
                id: "b7f0f468feb61f36c3e40ac7b8dd69da797edacb089aa43162daabebc0532170".into(),
                name: "web".into(),
                state: SleptState::Paused,
                since_unix_ms: 1_732_680_000_000,
                saved_limits: Some(SavedLimits::V1 {
                    memory_limit: 9_223_372_036_854_771_712,
                    memsw_limit: Some(9_223_372_036_854_771_712),
                }),
                memory_before: Some(105_906_176),
                memory_after: Some(8_314_880),
                published: Vec::new(),
            },
            SleepRecord {
                id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
                name: "db".into(),
                state: SleptState::Stopped,
                since_unix_ms: 1_732_680_001_000,
                saved_limits: Some(SavedLimits::V2 { memory_high: None }),
                memory_before: None,
                memory_after: None,
                published: vec![crate::docker::PublishedPort {
                    host_ip: "127.0.0.1".parse().unwrap(),
                    host_port: 18080,
                    container_port: 8080,
                }],
            },
        ]
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        store.save(&records()).unwrap();
        assert_eq!(store.load().unwrap(), records());

        let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(store.path()).unwrap()).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["records"][0]["state"], "paused");
        assert_eq!(json["records"][1]["state"], "stopped");
        assert_eq!(json["records"][0]["saved_limits"]["cgroup"], "v1");

        // A save replaces, it does not append.
        store.save(&records()[1..]).unwrap();
        assert_eq!(store.load().unwrap(), records()[1..].to_vec());
        store.save(&[]).unwrap();
        assert_eq!(store.load().unwrap(), Vec::new());
    }

    #[test]
    fn missing_file_or_directory_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Store::open(dir.path()).load().unwrap(), Vec::new());
        let store = Store::open(dir.path().join("not/yet"));
        assert_eq!(store.load().unwrap(), Vec::new());
        assert_eq!(store.load_or_quarantine(), Vec::new());
        // The first save creates the directory.
        store.save(&records()).unwrap();
        assert_eq!(store.load().unwrap(), records());
    }

    #[test]
    fn older_records_without_optional_fields_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        fs::write(
            store.path(),
            r#"{"version":1,"records":[{"id":"a","name":"b","state":"paused","since_unix_ms":5,"later":true}]}"#,
        )
        .unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].saved_limits, None);
        assert_eq!(loaded[0].memory_before, None);
    }

    #[test]
    fn corrupt_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        for (text, want_version_error) in [
            ("{\"version\": 1, \"records\": [", false),
            ("", false),
            ("[]", false),
            ("{\"records\": []}", false),
            ("{\"version\": 1, \"records\": [{\"id\": 5}]}", false),
            ("{\"version\": 1, \"records\": [{\"id\":\"a\",\"name\":\"b\",\"state\":\"dozing\",\"since_unix_ms\":1}]}", false),
            ("{\"version\": 2, \"records\": \"new shape\"}", true),
        ] {
            fs::write(store.path(), text).unwrap();
            let error = store.load().unwrap_err();
            assert!(error.is_bad_content(), "{text}: {error}");
            assert_eq!(matches!(error, StoreError::UnsupportedVersion { found: 2, .. }), want_version_error);
            assert!(error.to_string().contains(&store.path().display().to_string()), "{error}");
        }
    }

    #[test]
    fn corrupt_file_is_quarantined() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        fs::write(store.path(), "{not json").unwrap();
        assert_eq!(store.load_or_quarantine(), Vec::new());

        let names = names_in(dir.path());
        assert_eq!(names.len(), 1, "{names:?}");
        assert!(names[0].starts_with("sleeping.json.corrupt-"), "{names:?}");
        assert_eq!(fs::read_to_string(dir.path().join(&names[0])).unwrap(), "{not json");
        // The next start is clean.
        assert_eq!(store.load().unwrap(), Vec::new());
        store.save(&records()).unwrap();
        assert_eq!(store.load_or_quarantine(), records());
    }

    #[test]
    fn unreadable_file_is_left_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        fs::create_dir(store.path()).unwrap();
        let error = store.load().unwrap_err();
        assert!(matches!(error, StoreError::Read { .. }), "{error}");
        assert_eq!(store.load_or_quarantine(), Vec::new());
        assert_eq!(names_in(dir.path()), vec![FILE_NAME.to_string()]);
    }

    #[test]
    fn save_leaves_only_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        for _ in 0..3 {
            store.save(&records()).unwrap();
        }
        assert_eq!(names_in(dir.path()), vec![FILE_NAME.to_string()]);
        let mode = fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn failed_save_cleans_up_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        // A non-empty directory where the file should be: the rename fails.
        fs::create_dir(store.path()).unwrap();
        fs::write(store.path().join("keep"), "x").unwrap();
        let error = store.save(&records()).unwrap_err();
        assert!(matches!(error, StoreError::Write { .. }), "{error}");
        assert!(
            error.to_string().contains(&store.path().display().to_string()),
            "{error}"
        );
        assert_eq!(names_in(dir.path()), vec![FILE_NAME.to_string()], "no temp file left");
        assert!(store.path().join("keep").exists());
    }

    #[test]
    fn stale_temp_files_are_removed_at_startup() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        store.save(&records()).unwrap();
        let stale = dir.path().join(format!("{TEMP_PREFIX}1-0"));
        fs::write(&stale, "{\"version\": 1, \"rec").unwrap();
        // A temp file left by a save cut short (pid 1, say) goes at startup.
        assert_eq!(store.load_or_quarantine(), records());
        assert!(!stale.exists());
        assert_eq!(names_in(dir.path()), vec![FILE_NAME.to_string()]);
    }
}
