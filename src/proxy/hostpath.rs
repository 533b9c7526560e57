//! Host paths resolved as the kernel will resolve them when dockerd mounts
//! them, for [`standards::check_host_paths`]: every symlink followed (a
//! dangling one too: dockerd creates a missing bind folder through it), a
//! missing tail appended as written, a relative volume device left
//! relative.
//!
//! The shim reads the host's filesystem, so this is right when the shim
//! runs on the host, next to dockerd. A shim in a container sees its own
//! filesystem: a symlink on the host it cannot see is judged as written.
//! dockerd's data root comes from `GET /info` (`DockerRootDir`), read once
//! and kept; `/var/lib/docker` stands in while dockerd cannot say.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

use parking_lot::Mutex;

use super::Proxy;
use crate::config::{ContainerIdentity, LoadedConfig};
use crate::error::ShimError;
use crate::standards::{self, Change, HostPath, Protected, Rejection, Resolution, ResolvedHostPath};

/// dockerd's default data root, used while `GET /info` does not answer.
const FALLBACK_DATA_ROOT: &str = "/var/lib/docker";
/// The kernel's own limit on symlinks followed in one lookup (`ELOOP`).
const MAX_SYMLINKS: usize = 40;

/// What the proxy keeps between requests: dockerd's data root, once known.
#[derive(Default)]
pub struct HostPathState {
    data_root: Mutex<Option<String>>,
}

/// Resolves and judges `paths` (a create's or a volume create's). The outer
/// error is a path that cannot be resolved (a symlink loop, a folder the
/// shim may not read): it is not forwarded unjudged.
pub async fn judge(
    proxy: &Proxy,
    loaded: &LoadedConfig,
    who: &ContainerIdentity<'_>,
    paths: Vec<HostPath>,
) -> Result<Result<Vec<Change>, Rejection>, ShimError> {
    if paths.is_empty() || !loaded.config.standards.deny.docker_socket {
        return Ok(Ok(Vec::new()));
    }
    let data_root = data_root(proxy).await;
    let sockets = standards::protected_sockets(loaded);
    let (resolved, protected) = tokio::task::spawn_blocking(move || {
        let protected = Protected {
            data_root: with_resolved([data_root]),
            sockets: with_resolved(sockets),
        };
        let resolved: Result<Vec<ResolvedHostPath>, ShimError> = paths
            .into_iter()
            .map(|written| match resolve(&written.path) {
                Ok(resolution) => Ok(ResolvedHostPath { written, resolution }),
                Err(e) => Err(ShimError::BadRequest(format!(
                    "mount source {} ({}) cannot be checked: {e}",
                    written.path, written.field
                ))),
            })
            .collect();
        (resolved, protected)
    })
    .await
    .map_err(|e| ShimError::Internal(format!("resolving host paths: {e}")))?;
    Ok(standards::check_host_paths(loaded, who, &protected, &resolved?))
}

/// Each path as written and as resolved (when that differs, and resolves).
fn with_resolved(paths: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    for path in paths {
        if let Ok(Resolution::Resolved(resolved)) = resolve(&path) {
            out.push(resolved);
        }
        out.push(path);
    }
    out.sort();
    out.dedup();
    out
}

/// dockerd's data root: asked once and kept; the fallback (not kept) while
/// dockerd cannot say.
async fn data_root(proxy: &Proxy) -> String {
    let state = &proxy.inner.host_paths;
    if let Some(root) = state.data_root.lock().clone() {
        return root;
    }
    match proxy.inner.docker.data_root().await {
        Ok(root) => {
            *state.data_root.lock() = Some(root.clone());
            root
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read dockerd's data root; assuming {FALLBACK_DATA_ROOT}");
            FALLBACK_DATA_ROOT.to_string()
        }
    }
}

/// Where the host resolves `path` when it is mounted: cleaned as dockerd
/// cleans it, then walked one component at a time as the kernel walks it,
/// following symlinks (dangling ones too) up to the kernel's limit. A
/// component that does not exist ends the walk: the rest is appended as
/// written. Symlinks under `/proc` are magic (a process's root, its open
/// files) and not followed, so the rules see the `/proc` path itself.
pub fn resolve(path: &str) -> io::Result<Resolution> {
    let path = path.trim();
    if !path.starts_with('/') {
        return Ok(Resolution::Relative);
    }
    let mut pending: VecDeque<OsString> = components(Path::new(path));
    let mut resolved = PathBuf::from("/");
    let mut links = 0;
    let mut missing = false;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let next = resolved.join(&part);
        if missing || next.starts_with("/proc") {
            resolved = next;
            continue;
        }
        match std::fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("more than {MAX_SYMLINKS} symlinks on the way to {path}"),
                    ));
                }
                let target = std::fs::read_link(&next)?;
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                for part in components(&target).into_iter().rev() {
                    pending.push_front(part);
                }
            }
            Ok(_) => resolved = next,
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
                missing = true;
                resolved = next;
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", next.display()))),
        }
    }
    Ok(Resolution::Resolved(resolved.to_string_lossy().into_owned()))
}

/// The normal and `..` components of a path (`.` and `//` dropped).
fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(part) => Some(part.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn resolved(path: &Path) -> String {
        match resolve(&path.to_string_lossy()).unwrap() {
            Resolution::Resolved(resolved) => resolved,
            Resolution::Relative => panic!("{} is absolute", path.display()),
        }
    }

    #[test]
    fn symlinks_are_followed_as_the_kernel_follows_them() {
        let dir = tempfile::tempdir().unwrap();
        // The temporary folder may itself be behind a symlink.
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let real = root.join("real");
        std::fs::create_dir_all(real.join("sub")).unwrap();
        std::fs::write(real.join("sub/file"), "x").unwrap();
        symlink(&real, root.join("abs")).unwrap();
        symlink("real/sub", root.join("rel")).unwrap();
        symlink("../../real", real.join("sub/up")).unwrap();
        symlink("/run/docker.sock", root.join("sock")).unwrap();
        symlink(root.join("gone/deeper"), root.join("dangling")).unwrap();
        symlink(root.join("loop-b"), root.join("loop-a")).unwrap();
        symlink(root.join("loop-a"), root.join("loop-b")).unwrap();
        symlink("/proc/self/root/run", root.join("proc")).unwrap();

        let show = |p: &Path| p.to_string_lossy().into_owned();
        assert_eq!(resolved(&root.join("abs/sub/file")), show(&real.join("sub/file")));
        assert_eq!(resolved(&root.join("rel")), show(&real.join("sub")));
        // `..` in a link is taken from the link's folder, after resolving.
        assert_eq!(resolved(&root.join("rel/up/sub")), show(&real.join("sub")));
        assert_eq!(resolved(&root.join("sock")), "/run/docker.sock");
        // A missing tail is kept as written, below what does resolve.
        assert_eq!(resolved(&root.join("abs/new/dir")), show(&real.join("new/dir")));
        // A dangling link leads where dockerd would create the folder.
        assert_eq!(resolved(&root.join("dangling/x")), show(&root.join("gone/deeper/x")));
        // Written with `..`, `.` and `//`: cleaned first, as dockerd does.
        assert_eq!(
            resolved(Path::new(&format!("{}//./abs/../rel", root.display()))),
            show(&real.join("sub"))
        );
        // /proc's magic links are not followed: the rules see the /proc path.
        assert_eq!(resolved(&root.join("proc")), "/proc/self/root/run");
        let looped = resolve(&root.join("loop-a").to_string_lossy()).unwrap_err();
        assert!(looped.to_string().contains("symlinks"), "{looped}");

        assert_eq!(resolve("../../../../run").unwrap(), Resolution::Relative);
        assert_eq!(resolve("tmpfs").unwrap(), Resolution::Relative);
        assert_eq!(resolved(Path::new("/")), "/");
    }

    #[tokio::test]
    async fn the_data_root_is_asked_once_and_kept() {
        use crate::docker::fake::{Call, FakeDocker};
        let docker = FakeDocker::new([]);
        let proxy = super::super::resolve::tests_support::proxy_with(docker.clone());
        assert_eq!(data_root(&proxy).await, "/var/lib/docker");
        assert_eq!(data_root(&proxy).await, "/var/lib/docker");
        assert_eq!(docker.count(&Call::Info), 1);
    }
}
