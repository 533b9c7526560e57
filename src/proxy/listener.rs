//! The listening socket: its folder, stale-socket handling, mode and group,
//! and removal on exit.

use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("another process is already listening on {0}")]
    InUse(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("socket group {0:?} does not exist")]
    NoSuchGroup(String),
}

/// Removes the socket file when dropped, so every exit path cleans up.
#[derive(Debug)]
pub struct SocketGuard {
    path: PathBuf,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "could not remove socket");
            }
        }
    }
}

/// Binds `path`: creates its folder, replaces a stale socket (one nobody
/// answers on), refuses a live one, then sets mode and group.
pub async fn bind(path: &Path, mode: u32, group: Option<&str>) -> Result<(UnixListener, SocketGuard), ListenError> {
    let io_err = |source| ListenError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if UnixStream::connect(path).await.is_ok() {
                return Err(ListenError::InUse(path.to_path_buf()));
            }
            tracing::info!(path = %path.display(), "replacing stale socket");
            std::fs::remove_file(path).map_err(io_err)?;
        }
        Ok(_) => return Err(ListenError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    let listener = UnixListener::bind(path).map_err(io_err)?;
    let guard = SocketGuard {
        path: path.to_path_buf(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_err)?;
    let gid = match group {
        Some(name) => Some(lookup_group(name)?.ok_or_else(|| ListenError::NoSuchGroup(name.to_string()))?),
        // The default: the `docker` group, when the host has one.
        None => lookup_group("docker")?,
    };
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(io_err)?;
    }
    Ok((listener, guard))
}

fn lookup_group(name: &str) -> Result<Option<u32>, ListenError> {
    nix::unistd::Group::from_name(name)
        .map(|g| g.map(|g| g.gid.as_raw()))
        .map_err(|errno| ListenError::Io {
            path: PathBuf::from("/etc/group"),
            source: io::Error::from(errno),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_socket_is_replaced_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/shim.sock");
        let (listener, guard) = bind(&path, 0o600, None).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        // Live: refused, and the live socket is left alone.
        assert!(matches!(bind(&path, 0o600, None).await, Err(ListenError::InUse(_))));
        assert!(path.exists());
        // Stale: the listener is gone but the file stays behind.
        drop(listener);
        std::mem::forget(guard);
        let (_listener, guard) = bind(&path, 0o660, None).await.unwrap();
        drop(guard);
        assert!(!path.exists(), "the guard removes the socket");
    }

    #[tokio::test]
    async fn regular_file_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-socket");
        std::fs::write(&path, "data").unwrap();
        assert!(matches!(
            bind(&path, 0o600, None).await,
            Err(ListenError::NotASocket(_))
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
    }

    #[tokio::test]
    async fn unknown_group_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shim.sock");
        let result = bind(&path, 0o600, Some("no-such-group-forge")).await;
        assert!(matches!(result, Err(ListenError::NoSuchGroup(_))));
    }
}
