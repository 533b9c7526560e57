//! dockerd and the `docker` CLI: the check that dockerd and the test images
//! are there, `docker` commands aimed at dockerd or at a [`Shim`], a bollard
//! client, and [`Names`], the per-test name prefix whose guard removes
//! everything carrying it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::process::{run_in_pty, run_with_input, run_with_timeout, shell_quote, try_run_with_timeout, OutputExt};
use super::shim::Shim;
use super::{BUSYBOX, BUSYBOX_NONROOT, DOCKERD_HOST, DOCKERD_SOCKET, DOCKER_TIMEOUT, HTTPD};

// ---------------------------------------------------------------------------
// dockerd

/// Panics with a clear message unless dockerd answers on
/// `/var/run/docker.sock` and the local test images exist. Real-dockerd
/// tests call it first: they fail, never silently skip, without dockerd.
/// Checked once per test binary.
pub fn require_dockerd() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = CHECKED.get_or_init(|| {
        let version = try_run_with_timeout(
            direct_docker_command(&["version", "--format", "{{.Server.Version}}"]),
            Duration::from_secs(60),
        );
        match version {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return Err(format!(
                    "dockerd does not answer at {DOCKERD_SOCKET} (`docker version` exited {:?}: {}).\n\
                     Start it with scripts/setup-docker.sh; the real-dockerd tests never skip.",
                    out.status.code(),
                    out.stderr_text().trim()
                ))
            }
            Err(e) => {
                return Err(format!(
                    "dockerd does not answer at {DOCKERD_SOCKET}: {e}.\n\
                     Start it with scripts/setup-docker.sh; the real-dockerd tests never skip."
                ))
            }
        }
        for image in [BUSYBOX, BUSYBOX_NONROOT, HTTPD] {
            let out = run_with_timeout(
                direct_docker_command(&["image", "inspect", "--format", "{{.Id}}", image]),
                Duration::from_secs(60),
            );
            if !out.status.success() {
                return Err(format!(
                    "test image {image} is missing; build it with scripts/test-images.sh"
                ));
            }
        }
        sweep_leftovers_of_dead_runs();
        Ok(())
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

/// A `docker` command aimed at dockerd directly (not through a shim).
pub fn direct_docker_command(args: &[&str]) -> Command {
    docker_command_for(DOCKERD_HOST, args)
}

/// Runs `docker ARGS` against dockerd directly, with [`DOCKER_TIMEOUT`].
pub fn direct_docker(args: &[&str]) -> Output {
    run_with_timeout(direct_docker_command(args), DOCKER_TIMEOUT)
}

/// A `docker` command for `host` (`unix://...`), stdin from `/dev/null`,
/// with the environment cleared of anything that could point it elsewhere.
pub fn docker_command_for(host: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(args)
        .env("DOCKER_HOST", host)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_API_VERSION")
        // No "What's next" hints on stdout.
        .env("DOCKER_CLI_HINTS", "false")
        .stdin(Stdio::null());
    cmd
}

impl Shim {
    /// A `docker` command aimed at this shim (stdin `/dev/null`).
    pub fn docker_command(&self, args: &[&str]) -> Command {
        docker_command_for(&self.docker_host(), args)
    }

    /// Runs `docker ARGS` through the shim, with [`DOCKER_TIMEOUT`].
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_timeout(args, DOCKER_TIMEOUT)
    }

    pub fn docker_timeout(&self, args: &[&str], timeout: Duration) -> Output {
        run_with_timeout(self.docker_command(args), timeout)
    }

    /// Runs `docker ARGS` through the shim with `input` on its stdin
    /// (closed after it, so the CLI sees EOF).
    pub fn docker_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_input(self.docker_command(args), input, DOCKER_TIMEOUT)
    }

    /// Runs `docker ARGS` through the shim under a pseudo-terminal.
    pub fn docker_in_pty(&self, args: &[&str], timeout: Duration) -> Output {
        let mut line = String::from("docker");
        for arg in args {
            line.push(' ');
            line.push_str(&shell_quote(arg));
        }
        run_in_pty(
            &line,
            &[
                ("DOCKER_HOST", self.docker_host().as_str()),
                ("DOCKER_CLI_HINTS", "false"),
            ],
            timeout,
        )
    }

    /// A bollard client on the shim's socket, API version negotiated.
    pub async fn bollard(&self) -> bollard::Docker {
        bollard::Docker::connect_with_unix(&self.socket_path().to_string_lossy(), 120, bollard::API_DEFAULT_VERSION)
            .expect("bollard client")
            .negotiate_version()
            .await
            .expect("bollard: negotiate the API version through the shim")
    }
}

/// A keep-alive `POST /containers/create?name=NAME` of a privileged
/// busybox, as bytes: what `standards.deny.privileged` refuses.
pub fn privileged_create(name: &str) -> String {
    let body = format!(r#"{{"Image":"{BUSYBOX}","Cmd":["true"],"HostConfig":{{"Privileged":true}}}}"#);
    format!(
        "POST /v1.41/containers/create?name={name} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

// ---------------------------------------------------------------------------
// names and cleanup

/// A unique name prefix for one test, `fs-test-<test>-<pid>-<n>`, and the
/// guard that removes what carries it.
///
/// Give every container, image, network, volume and compose project a name
/// from [`Names::name`] (or [`Names::image`], [`Names::project`]). On drop,
/// even when the test panicked, everything whose name starts with the
/// prefix is removed through dockerd directly (`/var/run/docker.sock`):
/// compose projects (by their label), containers (with anonymous volumes),
/// networks, volumes and images. Things whose names you cannot choose
/// (e.g. an image tag from `docker load`) can be added with
/// [`Names::track_image`] and friends.
pub struct Names {
    prefix: String,
    tracked: Mutex<Tracked>,
}

#[derive(Default)]
struct Tracked {
    containers: BTreeSet<String>,
    images: BTreeSet<String>,
    networks: BTreeSet<String>,
    volumes: BTreeSet<String>,
}

static NAMES_COUNTER: AtomicUsize = AtomicUsize::new(0);
const NAME_ROOT: &str = "fs-test-";

impl Names {
    /// `test` is the test's name; anything but `[a-z0-9]` becomes `-`.
    pub fn new(test: &str) -> Names {
        let mut slug: String = test
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        slug.truncate(40);
        let n = NAMES_COUNTER.fetch_add(1, Ordering::Relaxed);
        Names {
            prefix: format!("{NAME_ROOT}{slug}-{}-{n}", std::process::id()),
            tracked: Mutex::new(Tracked::default()),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>-<what>`: for containers, networks, volumes.
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.prefix)
    }

    /// `<prefix>-<what>:latest`: an image reference (lowercase, as Docker
    /// requires).
    pub fn image(&self, what: &str) -> String {
        format!("{}-{}:latest", self.prefix, what.to_ascii_lowercase())
    }

    /// A compose project name (`docker compose -p`).
    pub fn project(&self, what: &str) -> String {
        self.name(&what.to_ascii_lowercase())
    }

    pub fn track_container(&self, id: &str) {
        self.tracked.lock().unwrap().containers.insert(id.to_string());
    }

    pub fn track_image(&self, reference: &str) {
        self.tracked.lock().unwrap().images.insert(reference.to_string());
    }

    pub fn track_network(&self, name: &str) {
        self.tracked.lock().unwrap().networks.insert(name.to_string());
    }

    pub fn track_volume(&self, name: &str) {
        self.tracked.lock().unwrap().volumes.insert(name.to_string());
    }

    /// Removes everything now (also done on drop).
    pub fn cleanup(&self) {
        let tracked = std::mem::take(&mut *self.tracked.lock().unwrap());
        let prefix = format!("{}-", self.prefix);
        cleanup_matching(&|name: &str| name.starts_with(&prefix), &tracked);
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Lines of a direct `docker` listing, or nothing if it fails.
fn direct_lines(args: &[&str]) -> Vec<String> {
    match try_run_with_timeout(direct_docker_command(args), Duration::from_secs(120)) {
        Ok(out) if out.status.success() => out
            .stdout_text()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        Ok(out) => {
            eprintln!("cleanup: docker {args:?} failed: {}", out.stderr_text());
            Vec::new()
        }
        Err(e) => {
            eprintln!("cleanup: {e}");
            Vec::new()
        }
    }
}

/// Runs a direct removal; failures are reported, never fatal.
fn direct_remove(args: &[&str], items: &[String]) {
    if items.is_empty() {
        return;
    }
    let mut all: Vec<&str> = args.to_vec();
    all.extend(items.iter().map(String::as_str));
    match try_run_with_timeout(direct_docker_command(&all), Duration::from_secs(180)) {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            // "No such ..." is fine: compose or --rm removed it already.
            let stderr = out.stderr_text();
            if !stderr.lines().all(|l| l.contains("No such") || l.trim().is_empty()) {
                eprintln!("cleanup: docker {all:?}: {stderr}");
            }
        }
        Err(e) => eprintln!("cleanup: {e}"),
    }
}

fn cleanup_matching(matches: &dyn Fn(&str) -> bool, tracked: &Tracked) {
    // Containers first (by name or compose project), then what they used.
    let mut containers: Vec<String> = tracked.containers.iter().cloned().collect();
    for line in direct_lines(&[
        "ps",
        "-a",
        "--format",
        "{{.ID}}\t{{.Names}}\t{{.Label \"com.docker.compose.project\"}}",
    ]) {
        let mut fields = line.split('\t');
        let id = fields.next().unwrap_or_default();
        let names = fields.next().unwrap_or_default();
        let project = fields.next().unwrap_or_default();
        if names.split(',').any(matches) || (!project.is_empty() && matches(project)) {
            containers.push(id.to_string());
        }
    }
    direct_remove(&["rm", "-f", "-v"], &containers);

    let mut networks: Vec<String> = tracked.networks.iter().cloned().collect();
    networks.extend(
        direct_lines(&["network", "ls", "--format", "{{.Name}}"])
            .into_iter()
            .filter(|n| matches(n)),
    );
    direct_remove(&["network", "rm"], &networks);

    let mut volumes: Vec<String> = tracked.volumes.iter().cloned().collect();
    volumes.extend(
        direct_lines(&["volume", "ls", "--format", "{{.Name}}"])
            .into_iter()
            .filter(|n| matches(n)),
    );
    direct_remove(&["volume", "rm", "-f"], &volumes);

    let mut images: Vec<String> = tracked.images.iter().cloned().collect();
    images.extend(
        direct_lines(&["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"])
            .into_iter()
            .filter(|reference| {
                // `docker.io/library/x` and `x` name the same local image.
                let short = reference.strip_prefix("docker.io/library/").unwrap_or(reference);
                matches(short)
            }),
    );
    direct_remove(&["image", "rm", "-f"], &images);
}

/// Removes what earlier, killed test runs left behind: names under
/// `fs-test-` whose pid (`fs-test-<test>-<pid>-<n>-...`) is no longer a
/// live process. Runs once per test binary, from [`require_dockerd`].
fn sweep_leftovers_of_dead_runs() {
    let is_dead_run = |name: &str| -> bool {
        let name = name.strip_prefix("docker.io/library/").unwrap_or(name);
        let Some(rest) = name.strip_prefix(NAME_ROOT) else {
            return false;
        };
        // The pid is the first all-digit field followed by another all-digit
        // field (the counter); test slugs may contain digits too, so try
        // every such position and require all candidates to be dead.
        let fields: Vec<&str> = rest.split(['-', ':', '_']).collect();
        let mut candidates = fields
            .windows(2)
            .filter(|w| is_number(w[0]) && is_number(w[1]))
            .map(|w| w[0].parse::<i32>().unwrap_or(0))
            .peekable();
        if candidates.peek().is_none() {
            return false;
        }
        candidates.all(|pid| pid <= 0 || !Path::new(&format!("/proc/{pid}")).exists())
    };
    cleanup_matching(&is_dead_run, &Tracked::default());
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}
