//! `forge-shim install [--takeover]` and `forge-shim uninstall`: the shim as
//! a systemd service, and with `--takeover` as the host's Docker socket.
//!
//! The layout (README "Install as the host's Docker socket"):
//! - `/etc/systemd/system/forge-shim.service`, enabled by the link
//!   `multi-user.target.wants/forge-shim.service`; plain: the shim on the
//!   config's `listen`, in front of the config's `upstream`;
//! - `--takeover`: the shim on `/var/run/docker.sock` with `upstream` at
//!   dockerd's private socket [`PRIVATE_SOCKET`], in a directory only root
//!   may enter (created now, and at boot by `/etc/tmpfiles.d/forge-shim.conf`).
//!   dockerd is moved there one of two ways, whichever the host's
//!   `docker.service` allows ([`Layout`]): a drop-in for `docker.socket`
//!   when dockerd runs as `-H fd://` (socket activation, Debian's and
//!   Docker's packages), or a `hosts` entry in daemon.json when dockerd is
//!   started with no `-H` at all. Anything else is refused ([`Refusal`]).
//!
//! Nothing is written before every check passed. Every file written, link
//! made, directory created and file changed (with a byte-for-byte backup)
//! is recorded first in a manifest under [`STATE_DIR`]; `uninstall` undoes
//! exactly that, and refuses (unless `--force`) when a file it would remove
//! or restore was changed since. Neither command runs `systemctl`: they
//! print the commands that make the change take effect.
//!
//! `--root DIR` puts every path read and written under DIR (tests, staging
//! an image); the binary and config the unit names are taken as given.

pub mod systemd;

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use systemd::{rooted, Found};

/// Where the manifest and the backups live.
pub const STATE_DIR: &str = "/var/lib/forge-shim/install";
pub const MANIFEST: &str = "/var/lib/forge-shim/install/manifest.json";
pub const SHIM_UNIT: &str = "/etc/systemd/system/forge-shim.service";
pub const SHIM_WANTS: &str = "/etc/systemd/system/multi-user.target.wants/forge-shim.service";
pub const SOCKET_DROPIN: &str = "/etc/systemd/system/docker.socket.d/forge-shim.conf";
pub const TMPFILES: &str = "/etc/tmpfiles.d/forge-shim.conf";
/// dockerd's private socket under `--takeover`, and its folder (0700 root).
pub const PRIVATE_DIR: &str = "/run/forge-shim/dockerd";
pub const PRIVATE_SOCKET: &str = "/run/forge-shim/dockerd/docker.sock";
/// Where the shim listens under `--takeover`.
pub const HOST_SOCKET: &str = "/var/run/docker.sock";
pub const DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// How the paths dockerd's clients know name the default socket.
const DEFAULT_SOCKETS: &[&str] = &["/run/docker.sock", "/var/run/docker.sock"];
const DEFAULT_HOSTS: &[&str] = &["unix://", "unix:///run/docker.sock", "unix:///var/run/docker.sock"];

#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub root: Option<PathBuf>,
    pub takeover: bool,
    /// The binary the unit runs (absolute).
    pub bin: PathBuf,
    /// A config file the unit passes with `--config` (absolute).
    pub config: Option<PathBuf>,
    /// The `listen` of that config (the embedded default when none): the
    /// plain install's socket.
    pub listen: PathBuf,
}

/// Why install or uninstall will not go ahead. Nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

fn refuse<T>(message: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal(message.into()))
}

/// How `--takeover` moves dockerd off `/var/run/docker.sock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// No takeover: the shim on its own socket.
    Plain,
    /// dockerd runs `-H fd://`: `docker.socket` moves to the private socket.
    SocketActivation,
    /// dockerd has no `-H`: daemon.json (this file) gets `hosts`.
    DaemonJson { path: PathBuf },
}

/// One change, with paths as on the target system (not under the root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    /// A directory that did not exist.
    Dir { path: PathBuf, mode: u32 },
    /// A file that did not exist.
    File { path: PathBuf, mode: u32, content: String },
    /// An existing file changed; the original is in `backup` (under the
    /// state dir), its mode and owner recorded to restore.
    Modify {
        path: PathBuf,
        content: String,
        backup: PathBuf,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// A symbolic link that did not exist.
    Symlink { path: PathBuf, target: PathBuf },
}

/// What install will do, or did (the manifest).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub forge_shim: String,
    pub layout: Layout,
    /// Directories made to hold the manifest (removed when empty).
    pub state_dirs_created: Vec<PathBuf>,
    pub steps: Vec<Step>,
}

/// A plan: the manifest, the originals of modified files, and the commands
/// that activate it.
#[derive(Debug)]
pub struct Plan {
    pub root: PathBuf,
    pub manifest: Manifest,
    pub originals: Vec<(PathBuf, Vec<u8>)>,
    pub activate: Vec<String>,
    /// Things the operator should know that do not stop the install.
    pub notes: Vec<String>,
}

struct Builder<'a> {
    root: &'a Path,
    steps: Vec<Step>,
    originals: Vec<(PathBuf, Vec<u8>)>,
}

impl Builder<'_> {
    fn at(&self, path: &str) -> PathBuf {
        rooted(self.root, Path::new(path))
    }

    /// The directories from the first missing ancestor of `dir` down.
    fn dirs(&mut self, dir: &Path, mode: u32) -> Result<(), Refusal> {
        let mut missing = Vec::new();
        let mut cur = dir.to_path_buf();
        loop {
            if self
                .steps
                .iter()
                .any(|s| matches!(s, Step::Dir { path, .. } if *path == cur))
            {
                break;
            }
            match fs::metadata(rooted(self.root, &cur)) {
                Ok(meta) if meta.is_dir() => {
                    if !missing.is_empty()
                        && nix::unistd::access(&rooted(self.root, &cur), nix::unistd::AccessFlags::W_OK).is_err()
                    {
                        return refuse(format!(
                            "cannot create {}: {} is not writable",
                            dir.display(),
                            rooted(self.root, &cur).display()
                        ));
                    }
                    break;
                }
                Ok(_) => {
                    return refuse(format!(
                        "cannot create {}: {} exists and is not a directory",
                        dir.display(),
                        rooted(self.root, &cur).display()
                    ))
                }
                // ENOTDIR: a parent is a file; the walk up finds which.
                Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
                    missing.push(cur.clone())
                }
                Err(e) => return refuse(format!("cannot read {}: {e}", rooted(self.root, &cur).display())),
            }
            match cur.parent() {
                Some(parent) => cur = parent.to_path_buf(),
                None => break,
            }
        }
        for path in missing.into_iter().rev() {
            // Only the directory asked for gets `mode`; its parents 0755.
            let m = if path == dir { mode } else { 0o755 };
            self.steps.push(Step::Dir { path, mode: m });
        }
        Ok(())
    }

    /// A new file; refused when something is there already.
    fn file(&mut self, path: &str, mode: u32, content: String) -> Result<(), Refusal> {
        let on_disk = self.at(path);
        if fs::symlink_metadata(&on_disk).is_ok() {
            return refuse(format!(
                "{} exists and was not written by forge-shim install (it never overwrites a file it did not write); move it away first",
                on_disk.display()
            ));
        }
        self.dirs(Path::new(path).parent().unwrap_or(Path::new("/")), 0o755)?;
        self.steps.push(Step::File {
            path: PathBuf::from(path),
            mode,
            content,
        });
        Ok(())
    }

    fn symlink(&mut self, path: &str, target: &str) -> Result<(), Refusal> {
        let on_disk = self.at(path);
        if fs::symlink_metadata(&on_disk).is_ok() {
            return refuse(format!("{} exists; move it away first", on_disk.display()));
        }
        self.dirs(Path::new(path).parent().unwrap_or(Path::new("/")), 0o755)?;
        self.steps.push(Step::Symlink {
            path: PathBuf::from(path),
            target: PathBuf::from(target),
        });
        Ok(())
    }
}

/// Reads the host under `root` and decides what install would do, or why
/// it must not. Reads only.
pub fn plan(opts: &InstallOptions) -> Result<Plan, Refusal> {
    let live = opts.root.is_none();
    let root = opts.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    if live && !Path::new("/run/systemd/system").is_dir() {
        return refuse(
            "systemd is not running here (no /run/systemd/system): install writes systemd units, and nothing would start them. \
             Run the shim by hand (`forge-shim serve`), or pass --root DIR to write the files under DIR",
        );
    }
    if !opts.bin.is_absolute() || !opts.bin.is_file() {
        return refuse(format!(
            "the binary {} is not an existing absolute path (--bin)",
            opts.bin.display()
        ));
    }
    if let Some(config) = &opts.config {
        if !config.is_absolute() {
            return refuse(format!(
                "--config {} must be an absolute path: the unit names it",
                config.display()
            ));
        }
    }
    if fs::symlink_metadata(rooted(&root, Path::new(MANIFEST))).is_ok() {
        return refuse(format!(
            "already installed: {} exists; run `forge-shim uninstall` first",
            rooted(&root, Path::new(MANIFEST)).display()
        ));
    }
    let mut b = Builder {
        root: &root,
        steps: Vec::new(),
        originals: Vec::new(),
    };
    let layout = if opts.takeover {
        takeover_layout(&root)?
    } else {
        Layout::Plain
    };
    let mut notes = Vec::new();
    if let Some(why) = writable_by_others(&opts.bin) {
        notes.push(format!(
            "{} {why}: the service runs it as root, so whoever can change it can become root; copy it to /usr/local/bin and pass --bin",
            opts.bin.display()
        ));
    }
    if let Some(why) = opts.config.as_deref().and_then(writable_by_others) {
        notes.push(format!(
            "the config {why}: whoever can change it can turn the standards off"
        ));
    }
    if opts.takeover {
        private_dir_is_roots(&root)?;
    } else if DEFAULT_SOCKETS.iter().any(|p| opts.listen == Path::new(p)) {
        return refuse(format!(
            "the config's listen is {}, dockerd's own socket: that is what --takeover is for (it moves dockerd first)",
            opts.listen.display()
        ));
    }

    let listen = if opts.takeover {
        PathBuf::from(HOST_SOCKET)
    } else {
        opts.listen.clone()
    };
    let unit = shim_unit(opts, &layout, &listen);
    b.file(SHIM_UNIT, 0o644, unit)?;
    b.symlink(SHIM_WANTS, SHIM_UNIT)?;
    let mut activate = vec!["systemctl daemon-reload".to_string()];
    match &layout {
        Layout::Plain => {
            activate.push("systemctl start forge-shim.service".into());
        }
        Layout::SocketActivation => {
            b.file(TMPFILES, 0o644, tmpfiles())?;
            b.dirs(Path::new(PRIVATE_DIR), 0o700)?;
            b.file(SOCKET_DROPIN, 0o644, socket_dropin())?;
            activate.push(
                "systemctl restart docker.socket docker.service   # dockerd moves to the private socket; without live-restore this stops running containers".into(),
            );
            activate.push("systemctl start forge-shim.service".into());
        }
        Layout::DaemonJson { path } => {
            b.file(TMPFILES, 0o644, tmpfiles())?;
            b.dirs(Path::new(PRIVATE_DIR), 0o700)?;
            let on_disk = rooted(&root, path);
            match fs::read(&on_disk) {
                Ok(original) => {
                    let meta = fs::metadata(&on_disk).map_err(|e| Refusal(format!("{}: {e}", on_disk.display())))?;
                    let content = daemon_json_with_hosts(&original, path)?;
                    let backup = Path::new(STATE_DIR)
                        .join("backup")
                        .join(path.strip_prefix("/").unwrap_or(path));
                    b.originals.push((backup.clone(), original));
                    b.steps.push(Step::Modify {
                        path: path.clone(),
                        content,
                        backup,
                        mode: meta.permissions().mode() & 0o7777,
                        uid: meta.uid(),
                        gid: meta.gid(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    let content = daemon_json_with_hosts(b"{}", path)?;
                    let path = path.to_string_lossy().into_owned();
                    b.file(&path, 0o644, content)?;
                }
                Err(e) => return refuse(format!("cannot read {}: {e}", on_disk.display())),
            }
            activate.push(
                "systemctl restart docker.service   # dockerd moves to the private socket; without live-restore this stops running containers".into(),
            );
            activate.push("systemctl start forge-shim.service".into());
        }
    }
    // The manifest's own directories.
    let before = b.steps.len();
    b.dirs(Path::new(STATE_DIR), 0o700)?;
    let state_dirs_created = b
        .steps
        .drain(before..)
        .map(|s| match s {
            Step::Dir { path, .. } => path,
            _ => unreachable!("dirs adds only directories"),
        })
        .collect();
    Ok(Plan {
        root: root.clone(),
        manifest: Manifest {
            version: 1,
            forge_shim: crate::VERSION.to_string(),
            layout,
            state_dirs_created,
            steps: b.steps,
        },
        originals: b.originals,
        activate,
        notes,
    })
}

/// Why `path` (or a folder above it) may be changed by someone but root.
fn writable_by_others(path: &Path) -> Option<String> {
    let mut cur = Some(path);
    while let Some(p) = cur {
        let meta = fs::metadata(p).ok()?;
        let sticky_dir = meta.is_dir() && meta.mode() & 0o1000 != 0;
        if meta.uid() != 0 {
            return Some(format!("is owned by uid {} ({})", meta.uid(), p.display()));
        }
        if meta.mode() & 0o022 != 0 && !sticky_dir {
            return Some(format!(
                "is writable by others ({}, mode {:04o})",
                p.display(),
                meta.mode() & 0o7777
            ));
        }
        cur = p.parent();
    }
    None
}

/// A private folder that is already there must be root's alone: through a
/// wider one, dockerd's socket (group `docker` under daemon.json) would be
/// reachable around the shim.
fn private_dir_is_roots(root: &Path) -> Result<(), Refusal> {
    let dir = rooted(root, Path::new(PRIVATE_DIR));
    match fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o077 == 0 => Ok(()),
        Ok(meta) => refuse(format!(
            "{} exists (uid {}, mode {:04o}) but must be a folder of root's with mode 0700, or dockerd's socket would be reachable around the shim",
            dir.display(),
            meta.uid(),
            meta.mode() & 0o7777
        )),
        Err(_) => Ok(()),
    }
}

/// Which takeover `docker.service` under `root` allows, or why none.
fn takeover_layout(root: &Path) -> Result<Layout, Refusal> {
    let service = match systemd::load(root, "docker.service") {
        Ok(Found::Unit(unit)) => unit,
        Ok(Found::Masked(path)) => return refuse(format!("docker.service is masked ({} is /dev/null)", path.display())),
        Ok(Found::Missing) => {
            return refuse(
                "no docker.service unit found: dockerd is not run by systemd here, so install cannot move its socket (see README for doing it by hand)",
            )
        }
        Err(e) => return refuse(format!("cannot read docker.service: {e}")),
    };
    let execs = systemd::values(&service.assignments, "Service", "ExecStart");
    let [exec] = execs.as_slice() else {
        return refuse(format!(
            "docker.service has {} ExecStart lines; expected one",
            execs.len()
        ));
    };
    let env = systemd::environment(root, &service).map_err(|e| Refusal(format!("docker.service: {e}")))?;
    let words = systemd::command_words(exec, &env);
    let is_dockerd = words
        .first()
        .and_then(|w| Path::new(w).file_name())
        .is_some_and(|n| n == "dockerd");
    if !is_dockerd {
        return refuse(format!(
            "docker.service does not start dockerd directly (ExecStart={exec}): install cannot see which sockets it listens on"
        ));
    }
    let (hosts, config_file) = dockerd_flags(&words[1..]);
    let daemon_json = config_file
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DAEMON_JSON));
    let json_hosts = read_daemon_json_hosts(root, &daemon_json)?;
    let socket = match systemd::load(root, "docker.socket") {
        Ok(Found::Unit(unit)) => Some(unit),
        Ok(_) => None,
        Err(e) => return refuse(format!("cannot read docker.socket: {e}")),
    };
    if hosts == ["fd://"] {
        let Some(socket) = socket else {
            return refuse("dockerd is started with -H fd:// but there is no docker.socket unit to move");
        };
        if let Some(json_hosts) = json_hosts {
            return refuse(format!(
                "{} sets hosts {json_hosts} while docker.service passes -H fd://: dockerd refuses that pair, so this setup is not one install can reason about",
                daemon_json.display()
            ));
        }
        let listens: Vec<String> = ["ListenStream", "ListenDatagram", "ListenSequentialPacket", "ListenFIFO"]
            .iter()
            .flat_map(|key| systemd::values(&socket.assignments, "Socket", key))
            .collect();
        if listens.len() != 1 || !DEFAULT_SOCKETS.contains(&listens[0].as_str()) {
            return refuse(format!(
                "docker.socket listens on {listens:?}; install moves only a docker.socket that listens on /run/docker.sock alone (any other listener would let clients go around the shim)"
            ));
        }
        return Ok(Layout::SocketActivation);
    }
    if !hosts.is_empty() {
        return refuse(format!(
            "dockerd is started with -H flags ({}) in docker.service: install would have to rewrite its command line; remove them (daemon.json `hosts` or -H fd:// with docker.socket are what install can move)",
            hosts.join(" ")
        ));
    }
    if let Some(socket) = socket {
        return refuse(format!(
            "docker.socket ({}) exists but dockerd is not started with -H fd://: it would keep holding /run/docker.sock where the shim must listen; disable and mask it first",
            socket.file.display()
        ));
    }
    if let Some(json_hosts) = json_hosts {
        let only_default = json_hosts
            .as_array()
            .is_some_and(|a| a.iter().all(|h| h.as_str().is_some_and(|h| DEFAULT_HOSTS.contains(&h))));
        if !only_default {
            return refuse(format!(
                "{} already sets hosts {json_hosts}: install replaces only the default socket, and dockerd must not stay reachable any other way than through the shim",
                daemon_json.display()
            ));
        }
    }
    Ok(Layout::DaemonJson { path: daemon_json })
}

/// `-H`/`--host` values and `--config-file` among dockerd's arguments.
fn dockerd_flags(args: &[String]) -> (Vec<String>, Option<String>) {
    let mut hosts = Vec::new();
    let mut config = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "-H" || arg == "--host" {
            hosts.extend(it.next().cloned());
        } else if let Some(v) = arg.strip_prefix("--host=") {
            hosts.push(v.to_string());
        } else if let Some(v) = arg.strip_prefix("-H") {
            hosts.push(v.trim_start_matches('=').to_string());
        } else if arg == "--config-file" {
            config = it.next().cloned();
        } else if let Some(v) = arg.strip_prefix("--config-file=") {
            config = Some(v.to_string());
        }
    }
    (hosts, config)
}

/// daemon.json's `hosts`, if it sets any. A file that is not a JSON object
/// is refused: dockerd would not start with it either.
fn read_daemon_json_hosts(root: &Path, path: &Path) -> Result<Option<Value>, Refusal> {
    let on_disk = rooted(root, path);
    match fs::read(&on_disk) {
        Ok(bytes) => {
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|e| Refusal(format!("{} is not valid JSON ({e}); fix it first", on_disk.display())))?;
            let Value::Object(map) = value else {
                return refuse(format!("{} is not a JSON object", on_disk.display()));
            };
            Ok(map.get("hosts").cloned())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => refuse(format!("cannot read {}: {e}", on_disk.display())),
    }
}

fn daemon_json_with_hosts(original: &[u8], path: &Path) -> Result<String, Refusal> {
    let mut value: Value =
        serde_json::from_slice(original).map_err(|e| Refusal(format!("{} is not valid JSON ({e})", path.display())))?;
    let Value::Object(map) = &mut value else {
        return refuse(format!("{} is not a JSON object", path.display()));
    };
    map.insert("hosts".into(), Value::from(vec![format!("unix://{PRIVATE_SOCKET}")]));
    let mut text = serde_json::to_string_pretty(&value).map_err(|e| Refusal(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

fn header() -> String {
    format!(
        "# Written by `forge-shim install` (forge-shim {}); `forge-shim uninstall` removes it.\n",
        crate::VERSION
    )
}

/// The shim's service unit.
pub fn shim_unit(opts: &InstallOptions, layout: &Layout, listen: &Path) -> String {
    let mut exec = format!("{} serve --listen {}", quote(&opts.bin), quote(listen));
    if *layout != Layout::Plain {
        let _ = write!(exec, " --upstream unix://{PRIVATE_SOCKET}");
    }
    if let Some(config) = &opts.config {
        let _ = write!(exec, " --config {}", quote(config));
    }
    let (what, order) = match layout {
        Layout::Plain => (
            "on its own socket",
            "After=docker.service docker.socket\nWants=docker.socket",
        ),
        Layout::SocketActivation => (
            "as the host's Docker socket",
            "After=docker.socket docker.service\nWants=docker.socket",
        ),
        Layout::DaemonJson { .. } => (
            "as the host's Docker socket",
            "After=docker.service\nWants=docker.service",
        ),
    };
    format!(
        "{header}\
[Unit]\n\
Description=forge-shim, the Docker socket shim, {what} ({listen})\n\
{order}\n\
\n\
[Service]\n\
Type=simple\n\
ExecStart={exec}\n\
ExecReload=/bin/kill -HUP $MAINPID\n\
Restart=on-failure\n\
RestartSec=2s\n\
\n\
[Install]\n\
WantedBy=multi-user.target\n",
        header = header(),
        listen = listen.display(),
    )
}

fn socket_dropin() -> String {
    format!(
        "{header}\
# dockerd's socket moves to a folder only root may enter; the shim\n\
# (forge-shim.service) listens on /var/run/docker.sock in its place.\n\
[Socket]\n\
ListenStream=\n\
ListenStream={PRIVATE_SOCKET}\n\
SocketMode=0660\n\
SocketUser=root\n\
SocketGroup=root\n\
DirectoryMode=0700\n",
        header = header()
    )
}

fn tmpfiles() -> String {
    format!(
        "{header}# dockerd's private socket folder (forge-shim install --takeover).\nd {PRIVATE_DIR} 0700 root root -\n",
        header = header()
    )
}

/// A path for a unit's command line: quoted when it has a space.
fn quote(path: &Path) -> String {
    let s = path.to_string_lossy();
    if s.contains(char::is_whitespace) || s.contains('"') {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s.into_owned()
    }
}

impl Plan {
    /// What `--dry-run` prints: every file with its content.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let at = |p: &Path| rooted(&self.root, p).display().to_string();
        let layout = match &self.manifest.layout {
            Layout::Plain => "plain: the shim on its own socket, in front of dockerd's".to_string(),
            Layout::SocketActivation => format!(
                "takeover by socket activation: docker.socket moves to {PRIVATE_SOCKET}, the shim listens on {HOST_SOCKET}"
            ),
            Layout::DaemonJson { path } => format!(
                "takeover by daemon.json: {} gets hosts [unix://{PRIVATE_SOCKET}], the shim listens on {HOST_SOCKET}",
                path.display()
            ),
        };
        let _ = writeln!(out, "layout: {layout}");
        for dir in &self.manifest.state_dirs_created {
            let _ = writeln!(out, "create directory {} ({:04o})", at(dir), state_dir_mode(dir));
        }
        let _ = writeln!(out, "write manifest {}", at(Path::new(MANIFEST)));
        for step in &self.manifest.steps {
            match step {
                Step::Dir { path, mode } => {
                    let _ = writeln!(out, "create directory {} ({mode:04o})", at(path));
                }
                Step::File { path, mode, content } => {
                    let _ = writeln!(out, "write {} ({mode:04o}):", at(path));
                    indent(&mut out, content);
                }
                Step::Modify {
                    path, content, backup, ..
                } => {
                    let _ = writeln!(
                        out,
                        "change {} (original kept in {}), new content:",
                        at(path),
                        at(backup)
                    );
                    indent(&mut out, content);
                }
                Step::Symlink { path, target } => {
                    let _ = writeln!(out, "link {} -> {}", at(path), target.display());
                }
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        let _ = writeln!(out, "then, to switch over:");
        for command in &self.activate {
            let _ = writeln!(out, "    {command}");
        }
        out
    }

    /// Writes the manifest and backups, then every step. A step that fails
    /// undoes the ones before it.
    pub fn apply(&self) -> anyhow::Result<()> {
        use anyhow::Context;
        let at = |p: &Path| rooted(&self.root, p);
        for dir in &self.manifest.state_dirs_created {
            fs::create_dir(at(dir)).with_context(|| format!("create {}", at(dir).display()))?;
            fs::set_permissions(at(dir), fs::Permissions::from_mode(state_dir_mode(dir)))?;
        }
        let result = (|| -> anyhow::Result<()> {
            for (backup, bytes) in &self.originals {
                let path = at(backup);
                fs::create_dir_all(path.parent().expect("backup has a folder"))?;
                write_file(&path, bytes, 0o600).with_context(|| format!("write {}", path.display()))?;
            }
            let manifest = serde_json::to_vec_pretty(&self.manifest)?;
            write_file(&at(Path::new(MANIFEST)), &manifest, 0o600).context("write the manifest")?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = fs::remove_dir_all(at(Path::new(STATE_DIR)));
            remove_empty_dirs(&self.root, &self.manifest.state_dirs_created);
            return Err(e);
        }
        for (done, step) in self.manifest.steps.iter().enumerate() {
            if let Err(e) = do_step(&self.root, step) {
                for step in self.manifest.steps[..done].iter().rev() {
                    let _ = undo_step(&self.root, step);
                }
                let _ = fs::remove_dir_all(at(Path::new(STATE_DIR)));
                remove_empty_dirs(&self.root, &self.manifest.state_dirs_created);
                return Err(e.context("nothing was left changed"));
            }
        }
        Ok(())
    }
}

/// The manifest's folder is root's alone; the folders above it as usual.
fn state_dir_mode(dir: &Path) -> u32 {
    if dir == Path::new(STATE_DIR) {
        0o700
    } else {
        0o755
    }
}

fn indent(out: &mut String, content: &str) {
    for line in content.lines() {
        let _ = writeln!(out, "    | {line}");
    }
}

/// Writes `bytes` to a temporary file beside `path`, then renames it.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    let temp = path.with_extension(format!("forge-shim-tmp.{}", std::process::id()));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::set_permissions(&temp, fs::Permissions::from_mode(mode))?;
    fs::rename(&temp, path)
}

fn do_step(root: &Path, step: &Step) -> anyhow::Result<()> {
    use anyhow::Context;
    match step {
        Step::Dir { path, mode } => {
            let p = rooted(root, path);
            fs::create_dir(&p).with_context(|| format!("create {}", p.display()))?;
            fs::set_permissions(&p, fs::Permissions::from_mode(*mode))?;
        }
        Step::File { path, mode, content } => {
            let p = rooted(root, path);
            // create_new: a file that appeared since the plan is not ours.
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(*mode)
                .open(&p)
                .with_context(|| format!("write {}", p.display()))?;
            std::io::Write::write_all(&mut file, content.as_bytes())?;
            file.sync_all()?;
            fs::set_permissions(&p, fs::Permissions::from_mode(*mode))?;
        }
        Step::Modify {
            path, content, mode, ..
        } => {
            let p = rooted(root, path);
            write_file(&p, content.as_bytes(), *mode).with_context(|| format!("write {}", p.display()))?;
        }
        Step::Symlink { path, target } => {
            let p = rooted(root, path);
            std::os::unix::fs::symlink(target, &p).with_context(|| format!("link {}", p.display()))?;
        }
    }
    Ok(())
}

fn undo_step(root: &Path, step: &Step) -> io::Result<()> {
    match step {
        Step::Dir { path, .. } => match fs::remove_dir(rooted(root, path)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
        Step::File { path, .. } | Step::Symlink { path, .. } => match fs::remove_file(rooted(root, path)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
        Step::Modify {
            path,
            backup,
            mode,
            uid,
            gid,
            ..
        } => {
            let original = fs::read(rooted(root, backup))?;
            let p = rooted(root, path);
            write_file(&p, &original, *mode)?;
            // Owner as it was; only root can give a file away.
            let _ = std::os::unix::fs::chown(&p, Some(*uid), Some(*gid));
            Ok(())
        }
    }
}

fn remove_empty_dirs(root: &Path, dirs: &[PathBuf]) {
    for dir in dirs.iter().rev() {
        let _ = fs::remove_dir(rooted(root, dir));
    }
}

/// What uninstall found: the manifest, and the changes made since install.
#[derive(Debug)]
pub struct Undo {
    pub root: PathBuf,
    pub manifest: Manifest,
    /// Files changed since install (uninstall refuses unless forced).
    pub changed: Vec<String>,
}

/// Reads the manifest under `root` and checks each recorded change. Reads only.
pub fn plan_uninstall(root: Option<&Path>) -> Result<Undo, Refusal> {
    let root = root.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let path = rooted(&root, Path::new(MANIFEST));
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return refuse(format!("not installed: no manifest at {}", path.display()))
        }
        Err(e) => return refuse(format!("cannot read {}: {e}", path.display())),
    };
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| Refusal(format!("{} is not a manifest: {e}", path.display())))?;
    let mut changed = Vec::new();
    for step in &manifest.steps {
        match step {
            Step::File { path, content, .. } => match fs::read(rooted(&root, path)) {
                Ok(now) if now != content.as_bytes() => {
                    changed.push(format!("{} was changed since install", rooted(&root, path).display()))
                }
                _ => {}
            },
            Step::Modify {
                path, content, backup, ..
            } => {
                let original = fs::read(rooted(&root, backup))
                    .map_err(|e| Refusal(format!("the backup {} is gone: {e}", rooted(&root, backup).display())))?;
                match fs::read(rooted(&root, path)) {
                    Ok(now) if now != content.as_bytes() && now != original => {
                        changed.push(format!("{} was changed since install", rooted(&root, path).display()))
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        changed.push(format!("{} was removed since install", rooted(&root, path).display()))
                    }
                    _ => {}
                }
            }
            Step::Symlink { path, target } => match fs::read_link(rooted(&root, path)) {
                Ok(now) if now != *target => {
                    changed.push(format!("{} now points elsewhere", rooted(&root, path).display()))
                }
                _ => {}
            },
            Step::Dir { .. } => {}
        }
    }
    Ok(Undo {
        root,
        manifest,
        changed,
    })
}

impl Undo {
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let at = |p: &Path| rooted(&self.root, p).display().to_string();
        for step in self.manifest.steps.iter().rev() {
            let _ = match step {
                Step::Dir { path, .. } => writeln!(out, "remove directory {} (if empty)", at(path)),
                Step::File { path, .. } => writeln!(out, "remove {}", at(path)),
                Step::Symlink { path, .. } => writeln!(out, "remove link {}", at(path)),
                Step::Modify { path, backup, .. } => {
                    writeln!(out, "restore {} from {}", at(path), at(backup))
                }
            };
        }
        let _ = writeln!(out, "remove {}", at(Path::new(STATE_DIR)));
        let _ = writeln!(out, "then, to switch back:");
        let _ = writeln!(out, "    systemctl stop forge-shim.service");
        let _ = writeln!(out, "    systemctl daemon-reload");
        if self.manifest.layout != Layout::Plain {
            let _ = writeln!(
                out,
                "    systemctl restart {}   # dockerd back on /run/docker.sock",
                if self.manifest.layout == Layout::SocketActivation {
                    "docker.socket docker.service"
                } else {
                    "docker.service"
                }
            );
        }
        out
    }

    /// Undoes every step, newest first, then removes the manifest. Returns
    /// what it had to leave (a directory someone else put files in).
    pub fn apply(&self) -> anyhow::Result<Vec<String>> {
        use anyhow::Context;
        let mut left = Vec::new();
        for step in self.manifest.steps.iter().rev() {
            match (step, undo_step(&self.root, step)) {
                (_, Ok(())) => {}
                (Step::Dir { path, .. }, Err(_)) => {
                    left.push(format!("{} (not empty)", rooted(&self.root, path).display()))
                }
                (_, Err(e)) => return Err(e).context("uninstall stopped; the manifest is kept, run it again"),
            }
        }
        fs::remove_dir_all(rooted(&self.root, Path::new(STATE_DIR)))
            .with_context(|| format!("remove {}", rooted(&self.root, Path::new(STATE_DIR)).display()))?;
        remove_empty_dirs(&self.root, &self.manifest.state_dirs_created);
        Ok(left)
    }
}

#[cfg(test)]
mod tests;
