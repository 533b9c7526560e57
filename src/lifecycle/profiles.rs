//! The image profiles of fitted hardening ([`crate::standards::fitted`]):
//! one JSON file per image under `<state_dir>/profiles/`, named by the
//! image's content id (`<64 hex>.json`), so that `docker tag` cannot give
//! one image another's profile, and a rebuilt image starts learning afresh.
//!
//! Files are written atomically (as `sleeping.json` is). A file that does
//! not parse is left in place, logged, and read as no profile: the image is
//! learned again, and the next save replaces it. Profiles are cached in
//! memory; the shim is their only writer.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::standards::fitted::Profile;

use super::store::write_atomically;

/// The folder under `state_dir`.
pub const DIR_NAME: &str = "profiles";
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);
/// At most this many profiles are cached; past it the cache starts over
/// (the files stay).
const MAX_CACHED: usize = 4096;

/// The profile store: a cheap handle.
#[derive(Clone)]
pub struct Profiles {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None`: the folder could not be made; profiles live in memory only.
    dir: Option<PathBuf>,
    /// Image id → its profile (`None`: looked for, none).
    cache: Mutex<HashMap<String, Option<Arc<Profile>>>>,
    /// Serialises read-modify-write of one profile.
    write: Mutex<()>,
}

/// The file name for an image id (`sha256:<64 hex>` or the bare hex);
/// `None` for anything else, which is never turned into a path.
pub fn file_name(image_id: &str) -> Option<String> {
    let hex = image_id.strip_prefix("sha256:").unwrap_or(image_id);
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        .then(|| format!("{hex}.json"))
}

impl Profiles {
    /// The store under `state_dir` (made, mode 0700, when missing).
    pub fn open(state_dir: &Path) -> Profiles {
        let dir = state_dir.join(DIR_NAME);
        let made = fs::create_dir_all(&dir).and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        });
        let dir = match made {
            Ok(()) => Some(dir),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot make the profiles folder; profiles are kept in memory only");
                None
            }
        };
        Profiles {
            inner: Arc::new(Inner {
                dir,
                cache: Mutex::new(HashMap::new()),
                write: Mutex::new(()),
            }),
        }
    }

    /// The profiles a shim kept under `state_dir`, for reading (`audit`):
    /// `None` when there is no profiles folder.
    pub fn existing(state_dir: &Path) -> Option<Profiles> {
        let dir = state_dir.join(DIR_NAME);
        dir.is_dir().then(|| Profiles {
            inner: Arc::new(Inner {
                dir: Some(dir),
                cache: Mutex::new(HashMap::new()),
                write: Mutex::new(()),
            }),
        })
    }

    /// A store that keeps nothing on disk (tests).
    #[cfg(test)]
    pub fn in_memory() -> Profiles {
        Profiles {
            inner: Arc::new(Inner {
                dir: None,
                cache: Mutex::new(HashMap::new()),
                write: Mutex::new(()),
            }),
        }
    }

    /// Image `image_id`'s profile, if one was learned.
    pub fn get(&self, image_id: &str) -> Option<Arc<Profile>> {
        let name = file_name(image_id)?;
        if let Some(cached) = self.inner.cache.lock().get(image_id) {
            return cached.clone();
        }
        let loaded = self.load(&name).map(Arc::new);
        let mut cache = self.inner.cache.lock();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(image_id.to_string(), loaded.clone());
        loaded
    }

    fn load(&self, name: &str) -> Option<Profile> {
        let path = self.inner.dir.as_ref()?.join(name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read a profile; the image is learned again");
                return None;
            }
        };
        match serde_json::from_slice::<Profile>(&bytes) {
            Ok(profile) => Some(profile),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "a profile does not parse; the image is learned again");
                None
            }
        }
    }

    /// Changes image `image_id`'s profile (made when there is none, under
    /// the name `image`) with `change`, saves it and returns it. `None`
    /// for an id that is not a content id.
    pub fn update(&self, image_id: &str, image: &str, change: impl FnOnce(&mut Profile)) -> Option<Arc<Profile>> {
        let name = file_name(image_id)?;
        let _write = self.inner.write.lock();
        let mut profile = self
            .get(image_id)
            .map(|p| (*p).clone())
            .unwrap_or_else(|| Profile::new(image_id, image));
        if profile.image.is_empty() || profile.image.starts_with("sha256:") {
            profile.image = image.to_string();
        }
        change(&mut profile);
        let profile = Arc::new(profile);
        self.save(&name, &profile);
        self.inner
            .cache
            .lock()
            .insert(image_id.to_string(), Some(profile.clone()));
        Some(profile)
    }

    fn save(&self, name: &str, profile: &Profile) {
        let Some(dir) = &self.inner.dir else { return };
        let bytes = match serde_json::to_vec_pretty(profile) {
            Ok(mut bytes) => {
                bytes.push(b'\n');
                bytes
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode a profile");
                return;
            }
        };
        let temp = dir.join(format!(
            ".{name}.tmp-{}-{}",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        if let Err(e) = write_atomically(&temp, &dir.join(name), dir, &bytes) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot save a profile; it is kept in memory");
            let _ = fs::remove_file(&temp);
        }
    }

    /// Every profile: those on disk, and those only in memory.
    pub fn list(&self) -> Vec<Arc<Profile>> {
        let mut ids: Vec<String> = Vec::new();
        if let Some(dir) = &self.inner.dir {
            if let Ok(entries) = fs::read_dir(dir) {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().to_string();
                    if let Some(hex) = name.strip_suffix(".json") {
                        if file_name(hex).is_some() {
                            ids.push(format!("sha256:{hex}"));
                        }
                    }
                }
            }
        }
        for (id, profile) in self.inner.cache.lock().iter() {
            if profile.is_some() && !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        let mut profiles: Vec<Arc<Profile>> = ids.iter().filter_map(|id| self.get(id)).collect();
        profiles.sort_by(|a, b| a.image.cmp(&b.image).then(a.image_id.cmp(&b.image_id)));
        profiles.dedup_by(|a, b| a.image_id == b.image_id);
        profiles
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn only_content_ids_become_file_names() {
        assert_eq!(file_name(&id('a')), Some(format!("{}.json", "a".repeat(64))));
        assert_eq!(file_name(&"b".repeat(64)), Some(format!("{}.json", "b".repeat(64))));
        for bad in [
            "../../etc/passwd",
            "sha256:abc",
            "nginx:latest",
            "",
            &"A".repeat(64),
            &format!("sha256:{}/x", "a".repeat(62)),
        ] {
            assert_eq!(file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_profile_survives_a_restart_and_a_bad_file_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let store = Profiles::open(dir.path());
        assert!(store.get(&id('a')).is_none());
        store.update(&id('a'), "web:1", |p| p.runs = 2).unwrap();
        assert!(
            store.update("web:1", "web:1", |p| p.runs = 9).is_none(),
            "a name is not an id"
        );

        let reopened = Profiles::open(dir.path());
        let profile = reopened.get(&id('a')).expect("saved");
        assert_eq!((profile.runs, profile.image.as_str()), (2, "web:1"));
        assert_eq!(reopened.list().len(), 1);

        fs::write(
            dir.path().join(DIR_NAME).join(file_name(&id('c')).unwrap()),
            b"{not json",
        )
        .unwrap();
        let again = Profiles::open(dir.path());
        assert!(again.get(&id('c')).is_none());
        // The next save replaces it.
        again.update(&id('c'), "db", |p| p.runs = 1).unwrap();
        assert_eq!(Profiles::open(dir.path()).get(&id('c')).unwrap().runs, 1);
    }
}
