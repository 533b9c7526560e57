//! Which containers the shim created, and which were there before it first
//! started: what bypass detection ([`super::bypass`]) judges a new container
//! against. A label could say "made by the shim", but anyone creating
//! straight on dockerd can add a label; this set is kept by the shim alone.
//!
//! The set lives in memory and in `<state_dir>/origins.json`, written
//! atomically (as `sleeping.json` is, `super::store`), so a restarted shim
//! still knows its own containers:
//!
//! ```json
//! {
//!   "version": 1,
//!   "first_start_unix_ms": 1764754000000,
//!   "containers": [
//!     { "id": "b7f0…", "origin": "shim", "seen_unix_ms": 1764754100000 },
//!     { "id": "91ac…", "origin": "pre_existing", "seen_unix_ms": 1764754000000 },
//!     { "id": "3e2d…", "origin": "bypass", "name": "sneaky", "image": "busybox",
//!       "seen_unix_ms": 1764754200000, "note": "create event" }
//!   ]
//! }
//! ```
//!
//! Pre-existing containers are the ones dockerd lists when the shim first
//! starts (no file yet): ids, not creation times, so no clock is trusted.
//!
//! **The race with the create answer.** dockerd sends its `create` event
//! before the shim has read the create's answer and the new id. So every
//! create through the shim holds a [`CreateTicket`] from before it is
//! forwarded until its id is recorded; a judgement first waits
//! ([`Origins::settle`]) until every create that began before the container
//! was seen has ended. Creates that begin later cannot have made it.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// The file under `state_dir`.
pub const FILE_NAME: &str = "origins.json";
const FORMAT_VERSION: u64 = 1;
/// Temporary files are `.origins.json.tmp-<pid>-<n>`.
const TEMP_PREFIX: &str = ".origins.json.tmp-";
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How long a background save waits, so that the changes of a burst share
/// one write (and its two fsyncs).
pub const SAVE_DELAY: Duration = Duration::from_millis(200);

/// The longest a judgement waits for creates in flight through the shim; a
/// create that takes longer (dockerd stuck) no longer holds judgements up.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(120);

/// Where a container came from, as the shim knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Created through the shim's socket.
    Shim,
    /// Listed by dockerd when the shim first started.
    PreExisting,
    /// Created straight on dockerd, around the shim.
    Bypass,
    /// Created around the shim, but outside `bypass.scope`.
    OutOfScope,
}

impl Origin {
    /// The word `status` and `audit` show.
    pub fn label(self) -> &'static str {
        match self {
            Origin::Shim => "shim",
            Origin::PreExisting => "pre_existing",
            Origin::Bypass => "bypass",
            Origin::OutOfScope => "out_of_scope",
        }
    }
}

/// One container the shim has an origin for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginRecord {
    pub id: String,
    pub origin: Origin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// When the shim learnt it.
    pub seen_unix_ms: u64,
    /// For a bypass: how it was found, and what was done about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The registry's change number when it was recorded (not saved): a
    /// prune after a list keeps what was recorded after the list began.
    #[serde(skip)]
    seq: u64,
}

impl OriginRecord {
    pub fn new(id: &str, origin: Origin) -> OriginRecord {
        OriginRecord {
            id: id.to_string(),
            origin,
            name: None,
            image: None,
            seen_unix_ms: unix_ms_now(),
            note: None,
            seq: 0,
        }
    }
}

#[derive(Serialize)]
struct FileOut<'a> {
    version: u64,
    first_start_unix_ms: u64,
    containers: Vec<&'a OriginRecord>,
}

#[derive(Deserialize)]
struct FileIn {
    version: u64,
    #[serde(default)]
    first_start_unix_ms: u64,
    #[serde(default)]
    containers: Vec<OriginRecord>,
}

/// The set and the creates in flight; pure, no I/O, no clock but the
/// `seen_unix_ms` of new records.
#[derive(Debug)]
pub(super) struct Registry {
    first_start_unix_ms: u64,
    /// No file yet: the first list of dockerd's containers is the baseline
    /// of pre-existing ones.
    baseline_pending: bool,
    records: HashMap<String, OriginRecord>,
    /// The last ticket handed out; tickets start at 1.
    last_ticket: u64,
    in_flight: BTreeSet<u64>,
    /// Bumped by every change of `records`.
    seq: u64,
}

impl Registry {
    pub(super) fn first_start() -> Registry {
        Registry {
            first_start_unix_ms: unix_ms_now(),
            baseline_pending: true,
            records: HashMap::new(),
            last_ticket: 0,
            in_flight: BTreeSet::new(),
            seq: 0,
        }
    }

    fn from_file(file: FileIn) -> Registry {
        Registry {
            first_start_unix_ms: file.first_start_unix_ms,
            baseline_pending: false,
            records: file.containers.into_iter().map(|r| (r.id.clone(), r)).collect(),
            last_ticket: 0,
            in_flight: BTreeSet::new(),
            seq: 0,
        }
    }

    /// A create through the shim begins.
    pub(super) fn begin(&mut self) -> u64 {
        self.last_ticket += 1;
        self.in_flight.insert(self.last_ticket);
        self.last_ticket
    }

    pub(super) fn end(&mut self, ticket: u64) {
        self.in_flight.remove(&ticket);
    }

    /// The last create that began: one that made a container seen now began
    /// no later.
    pub(super) fn horizon(&self) -> u64 {
        self.last_ticket
    }

    /// Whether every create that began by `horizon` has ended.
    pub(super) fn settled(&self, horizon: u64) -> bool {
        self.in_flight.first().is_none_or(|first| *first > horizon)
    }

    pub(super) fn get(&self, id: &str) -> Option<Origin> {
        self.records.get(id).map(|r| r.origin)
    }

    /// The shim created `id`: recorded whatever was said of it before (a
    /// judgement that gave up waiting may have called it a bypass).
    /// Returns what it was recorded as before.
    pub(super) fn created(&mut self, id: &str) -> Option<Origin> {
        self.seq += 1;
        let mut record = OriginRecord::new(id, Origin::Shim);
        record.seq = self.seq;
        self.records.insert(id.to_string(), record).map(|old| old.origin)
    }

    /// Records a judgement of a container the shim had no origin for; a
    /// container judged already keeps its first one. Whether it was new.
    pub(super) fn judged(&mut self, mut record: OriginRecord) -> bool {
        if self.records.contains_key(&record.id) {
            return false;
        }
        self.seq += 1;
        record.seq = self.seq;
        self.records.insert(record.id.clone(), record);
        true
    }

    /// Adds a note to a record (what was done about a bypass).
    pub(super) fn note(&mut self, id: &str, note: String) {
        if let Some(record) = self.records.get_mut(id) {
            self.seq += 1;
            record.note = Some(note);
        }
    }

    pub(super) fn forget(&mut self, id: &str) -> bool {
        let removed = self.records.remove(id).is_some();
        if removed {
            self.seq += 1;
        }
        removed
    }

    /// The change number now, to give [`Registry::prune`] after a list.
    pub(super) fn seq(&self) -> u64 {
        self.seq
    }

    /// Drops the records of containers no longer listed, among those
    /// recorded by `before` (the list began then: later ones may be newer
    /// than the list).
    pub(super) fn prune(&mut self, listed: &BTreeSet<String>, before: u64) {
        let stale: Vec<String> = self
            .records
            .values()
            .filter(|r| r.seq <= before && !listed.contains(&r.id))
            .map(|r| r.id.clone())
            .collect();
        for id in stale {
            self.forget(&id);
        }
    }

    /// Whether this is the first start's list (and it is then taken).
    pub(super) fn take_baseline(&mut self) -> bool {
        std::mem::take(&mut self.baseline_pending)
    }

    fn bypasses(&self) -> Vec<OriginRecord> {
        let mut list: Vec<OriginRecord> = self
            .records
            .values()
            .filter(|r| r.origin == Origin::Bypass)
            .cloned()
            .collect();
        list.sort_by(|a, b| (a.seen_unix_ms, &a.id).cmp(&(b.seen_unix_ms, &b.id)));
        list
    }

    fn to_bytes(&self) -> serde_json::Result<Vec<u8>> {
        let mut containers: Vec<&OriginRecord> = self.records.values().collect();
        containers.sort_by(|a, b| a.id.cmp(&b.id));
        let mut bytes = serde_json::to_vec_pretty(&FileOut {
            version: FORMAT_VERSION,
            first_start_unix_ms: self.first_start_unix_ms,
            containers,
        })?;
        bytes.push(b'\n');
        Ok(bytes)
    }
}

/// The shim's origins: shared by the proxy (which records its creates), the
/// bypass watcher and the shim's API.
#[derive(Clone)]
pub struct Origins {
    inner: Arc<OriginsInner>,
}

struct OriginsInner {
    /// `None`: not saved (tests).
    dir: Option<PathBuf>,
    registry: Mutex<Registry>,
    /// Told whenever a create ends.
    ended: watch::Sender<()>,
    /// The change number last saved (`None`: never saved); held while
    /// saving, so saves land in order and concurrent ones coalesce.
    saved: tokio::sync::Mutex<Option<u64>>,
}

/// A create through the shim in flight; ends when dropped.
pub struct CreateTicket {
    origins: Origins,
    ticket: u64,
}

impl Drop for CreateTicket {
    fn drop(&mut self) {
        self.origins.inner.registry.lock().end(self.ticket);
        self.origins.inner.ended.send_modify(|_| {});
    }
}

impl Origins {
    /// Loads `<state_dir>/origins.json`. No file: this is the first start,
    /// and what dockerd lists first is pre-existing. A file that cannot be
    /// read as one is moved aside (`origins.json.corrupt-<unix ms>`) and the
    /// shim starts as on its first start (logged): it cannot tell its own
    /// containers from others then, and stopping its own would be worse.
    pub fn open(state_dir: &Path) -> Origins {
        let path = state_dir.join(FILE_NAME);
        remove_stale_temp_files(state_dir);
        let registry = match read_file(&path) {
            Ok(Some(file)) => Registry::from_file(file),
            Ok(None) => Registry::first_start(),
            Err(error) => {
                let aside = state_dir.join(format!("{FILE_NAME}.corrupt-{}", unix_ms_now()));
                let moved = fs::rename(&path, &aside);
                tracing::warn!(
                    %error,
                    moved_to = %aside.display(),
                    moved = moved.is_ok(),
                    "the record of which containers the shim created is unreadable; \
                     every container there now counts as pre-existing"
                );
                Registry::first_start()
            }
        };
        Origins::with(Some(state_dir.to_path_buf()), registry)
    }

    /// Kept in memory only, as on a first start (tests).
    #[cfg(test)]
    pub fn in_memory() -> Origins {
        Origins::with(None, Registry::first_start())
    }

    fn with(dir: Option<PathBuf>, registry: Registry) -> Origins {
        Origins {
            inner: Arc::new(OriginsInner {
                dir,
                registry: Mutex::new(registry),
                ended: watch::channel(()).0,
                saved: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// Marks a create through the shim in flight, until the ticket drops.
    /// Take it before the create is forwarded.
    pub fn begin_create(&self) -> CreateTicket {
        let ticket = self.inner.registry.lock().begin();
        CreateTicket {
            origins: self.clone(),
            ticket,
        }
    }

    /// The shim created `id` (dockerd's create answer named it): known in
    /// memory at once (judgements read that), and saved in the background,
    /// so the create's answer does not wait on two fsyncs. Saves coalesce:
    /// creates that land while one is written share the next. Shutdown
    /// saves what is pending. A shim killed in between forgets the newest
    /// ones, as one killed between dockerd's create and its answer always
    /// could: they read as bypasses on the next start.
    pub fn record_created(&self, id: &str) {
        let before = self.inner.registry.lock().created(id);
        if let Some(origin) = before.filter(|o| *o != Origin::Shim) {
            tracing::warn!(container = %id, was = origin.label(), "a container judged before its create answer was read is the shim's own");
        }
        self.save_soon();
    }

    /// Saves within [`SAVE_DELAY`]: the changes of a burst (a compose
    /// project coming up or down) share one write.
    pub fn save_soon(&self) {
        let origins = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SAVE_DELAY).await;
            origins.save().await
        });
    }

    pub fn get(&self, id: &str) -> Option<Origin> {
        self.inner.registry.lock().get(id)
    }

    /// The containers created around the shim, oldest first.
    pub fn bypasses(&self) -> Vec<OriginRecord> {
        self.inner.registry.lock().bypasses()
    }

    pub fn first_start_unix_ms(&self) -> u64 {
        self.inner.registry.lock().first_start_unix_ms
    }

    /// Waits until every create through the shim that began before now has
    /// ended (at most [`SETTLE_LIMIT`]); false when it gave up. Call it after
    /// seeing a container, before asking whether the shim created it.
    pub async fn settle(&self) -> bool {
        // Subscribed before the check, so no end between them is missed.
        let mut ended = self.inner.ended.subscribe();
        let horizon = self.inner.registry.lock().horizon();
        let wait = async {
            while !self.inner.registry.lock().settled(horizon) {
                if ended.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(SETTLE_LIMIT, wait).await.is_ok()
    }

    pub(super) fn registry(&self) -> parking_lot::MutexGuard<'_, Registry> {
        self.inner.registry.lock()
    }

    /// Saves the set if it changed since the last save. Concurrent callers
    /// share one write; a failure is logged (the set in memory stays right).
    pub async fn save(&self) {
        let Some(dir) = self.inner.dir.clone() else { return };
        let wanted = self.inner.registry.lock().seq;
        let mut saved = self.inner.saved.lock().await;
        if saved.is_some_and(|saved| saved >= wanted) {
            return;
        }
        let (seq, bytes) = {
            let registry = self.inner.registry.lock();
            (registry.seq, registry.to_bytes())
        };
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the container origins");
                return;
            }
        };
        let written = tokio::task::spawn_blocking(move || write_file(&dir, &bytes)).await;
        match written {
            Ok(Ok(())) => *saved = Some(seq),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot save {FILE_NAME}; it is kept in memory"),
            Err(e) => tracing::warn!(error = %e, "saving {FILE_NAME} did not finish"),
        }
    }
}

/// What `forge-shim audit` reads: every container's recorded origin, by
/// full id; `None` when the shim never ran with this `state_dir`.
pub fn recorded_origins(state_dir: &Path) -> Result<Option<HashMap<String, Origin>>, String> {
    let path = state_dir.join(FILE_NAME);
    match read_file(&path) {
        Ok(Some(file)) => Ok(Some(file.containers.into_iter().map(|r| (r.id, r.origin)).collect())),
        Ok(None) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The file, `None` when there is none; an error names the file.
fn read_file(path: &Path) -> Result<Option<FileIn>, String> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let file: FileIn = serde_json::from_str(&text).map_err(|e| format!("{} is corrupt: {e}", path.display()))?;
    if file.version != FORMAT_VERSION {
        return Err(format!(
            "{} has format version {}; this shim reads version {FORMAT_VERSION}",
            path.display(),
            file.version
        ));
    }
    Ok(Some(file))
}

fn write_file(dir: &Path, bytes: &[u8]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let temp = dir.join(format!(
        "{TEMP_PREFIX}{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = super::store::write_atomically(&temp, &dir.join(FILE_NAME), dir, bytes);
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn remove_stale_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_means_every_create_begun_by_the_horizon_has_ended() {
        let mut registry = Registry::first_start();
        assert!(registry.settled(registry.horizon()), "nothing in flight");
        let a = registry.begin();
        let horizon = registry.horizon();
        let b = registry.begin();
        assert!(!registry.settled(horizon));
        registry.end(a);
        assert!(
            registry.settled(horizon),
            "b began after the horizon: it cannot have made the container"
        );
        assert!(!registry.settled(registry.horizon()));
        registry.end(b);
        assert!(registry.settled(registry.horizon()));
    }

    #[test]
    fn a_judged_container_keeps_its_first_origin_but_a_create_answer_wins() {
        let mut registry = Registry::first_start();
        assert!(registry.judged(OriginRecord::new("x", Origin::Bypass)));
        assert!(!registry.judged(OriginRecord::new("x", Origin::OutOfScope)));
        assert_eq!(registry.get("x"), Some(Origin::Bypass));
        assert_eq!(registry.created("x"), Some(Origin::Bypass));
        assert_eq!(registry.get("x"), Some(Origin::Shim));
        assert!(!registry.judged(OriginRecord::new("x", Origin::Bypass)));
        assert_eq!(registry.get("x"), Some(Origin::Shim));
    }

    #[test]
    fn a_prune_keeps_what_was_recorded_after_the_list_began() {
        let mut registry = Registry::first_start();
        registry.created("old-gone");
        registry.created("old-kept");
        let before = registry.seq();
        // Created through the shim while dockerd was listing: not listed.
        registry.created("new");
        let listed: BTreeSet<String> = ["old-kept".to_string()].into();
        registry.prune(&listed, before);
        assert_eq!(registry.get("old-gone"), None);
        assert_eq!(registry.get("old-kept"), Some(Origin::Shim));
        assert_eq!(registry.get("new"), Some(Origin::Shim));
    }

    #[test]
    fn the_baseline_is_taken_once_and_never_after_a_file() {
        let mut registry = Registry::first_start();
        assert!(registry.take_baseline());
        assert!(!registry.take_baseline());
        let file = FileIn {
            version: 1,
            first_start_unix_ms: 5,
            containers: vec![],
        };
        assert!(!Registry::from_file(file).take_baseline());
    }

    #[tokio::test]
    async fn the_file_keeps_the_set_across_a_restart_and_a_corrupt_one_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let origins = Origins::open(dir.path());
        assert!(origins.registry().take_baseline());
        origins
            .registry()
            .judged(OriginRecord::new("before", Origin::PreExisting));
        origins.record_created("mine");
        let mut bypass = OriginRecord::new("around", Origin::Bypass);
        bypass.name = Some("sneaky".into());
        origins.registry().judged(bypass);
        origins.save().await;
        let first_start = origins.first_start_unix_ms();

        let again = Origins::open(dir.path());
        assert!(!again.registry().take_baseline(), "not a first start");
        assert_eq!(again.first_start_unix_ms(), first_start);
        assert_eq!(again.get("mine"), Some(Origin::Shim));
        assert_eq!(again.get("before"), Some(Origin::PreExisting));
        let bypasses = again.bypasses();
        assert_eq!(bypasses.len(), 1);
        assert_eq!(bypasses[0].name.as_deref(), Some("sneaky"));
        let read = recorded_origins(dir.path()).unwrap().unwrap();
        assert_eq!(read.get("around"), Some(&Origin::Bypass));

        fs::write(dir.path().join(FILE_NAME), "{ not json").unwrap();
        let after_corruption = Origins::open(dir.path());
        assert!(after_corruption.registry().take_baseline());
        assert_eq!(after_corruption.get("mine"), None);
        let aside = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("origins.json.corrupt-"));
        assert!(aside, "the corrupt file is kept for a person to look at");
        assert_eq!(recorded_origins(&dir.path().join("none")).unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn settle_waits_for_the_create_in_flight_and_not_for_later_ones() {
        let origins = Origins::in_memory();
        let first = origins.begin_create();
        let waiting = tokio::spawn({
            let origins = origins.clone();
            async move { origins.settle().await }
        });
        tokio::task::yield_now().await;
        // A create that begins after the container was seen is not waited for.
        let _later = origins.begin_create();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished(), "the first create is still in flight");
        drop(first);
        assert!(waiting.await.unwrap(), "settled once the first create ended");
    }

    #[tokio::test(start_paused = true)]
    async fn settle_gives_up_after_its_limit() {
        let origins = Origins::in_memory();
        let _stuck = origins.begin_create();
        assert!(!origins.settle().await);
    }
}
