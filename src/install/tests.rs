//! Plans against made-up roots: which layout each docker.service gets, and
//! every refusal. `tests/takeover.rs` runs the binary on the same roots.

use super::*;

const SERVICE_FD: &str = "[Unit]\nRequires=docker.socket\n[Service]\nEnvironmentFile=-/etc/default/docker\nExecStart=/usr/sbin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock $DOCKER_OPTS\n";
const SOCKET: &str = "[Socket]\nListenStream=/run/docker.sock\nSocketMode=0660\n";
const SERVICE_PLAIN: &str = "[Service]\nExecStart=/usr/bin/dockerd --containerd=/run/containerd/containerd.sock\n";

fn root_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let p = dir.path().join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }
    dir
}

fn opts(root: &Path, takeover: bool) -> InstallOptions {
    InstallOptions {
        root: Some(root.to_path_buf()),
        takeover,
        bin: std::env::current_exe().unwrap(),
        config: None,
        listen: PathBuf::from("/run/forge-shim/docker.sock"),
    }
}

fn refusal(root: &Path) -> String {
    match plan(&opts(root, true)) {
        Ok(plan) => panic!("planned {:?}", plan.manifest.layout),
        Err(Refusal(message)) => message,
    }
}

#[test]
fn socket_activation_when_dockerd_runs_fd() {
    let root = root_with(&[
        ("lib/systemd/system/docker.service", SERVICE_FD),
        ("lib/systemd/system/docker.socket", SOCKET),
    ]);
    let plan = plan(&opts(root.path(), true)).unwrap();
    assert_eq!(plan.manifest.layout, Layout::SocketActivation);
    assert!(plan.originals.is_empty(), "daemon.json is not touched");
    let unit = plan.manifest.steps.iter().find_map(|s| match s {
        Step::File { path, content, .. } if path == Path::new(SHIM_UNIT) => Some(content.clone()),
        _ => None,
    });
    let unit = unit.unwrap();
    assert!(
        unit.contains(&format!("--listen {HOST_SOCKET} --upstream unix://{PRIVATE_SOCKET}")),
        "{unit}"
    );
}

#[test]
fn daemon_json_when_dockerd_has_no_host_flags() {
    let root = root_with(&[
        ("lib/systemd/system/docker.service", SERVICE_PLAIN),
        (
            "etc/docker/daemon.json",
            "{\"log-level\": \"warn\", \"hosts\": [\"unix:///var/run/docker.sock\"]}",
        ),
    ]);
    let plan = plan(&opts(root.path(), true)).unwrap();
    assert_eq!(
        plan.manifest.layout,
        Layout::DaemonJson {
            path: PathBuf::from(DAEMON_JSON)
        }
    );
    let changed = plan.manifest.steps.iter().find_map(|s| match s {
        Step::Modify { content, .. } => Some(content.clone()),
        _ => None,
    });
    let changed: Value = serde_json::from_str(&changed.unwrap()).unwrap();
    assert_eq!(changed["log-level"], "warn", "other keys kept");
    assert_eq!(
        changed["hosts"],
        serde_json::json!([format!("unix://{PRIVATE_SOCKET}")])
    );
}

#[test]
fn config_file_flag_names_the_daemon_json() {
    let root = root_with(&[(
        "lib/systemd/system/docker.service",
        "[Service]\nExecStart=/usr/bin/dockerd --config-file=/srv/docker.json\n",
    )]);
    let plan = plan(&opts(root.path(), true)).unwrap();
    assert_eq!(
        plan.manifest.layout,
        Layout::DaemonJson {
            path: PathBuf::from("/srv/docker.json")
        }
    );
}

#[test]
fn refusals() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "no docker.service"),
        (
            &[(
                "lib/systemd/system/docker.service",
                "[Service]\nExecStart=/usr/bin/dockerd -H unix:///var/run/docker.sock\n",
            )],
            "-H flags",
        ),
        (
            &[
                ("lib/systemd/system/docker.service", SERVICE_FD),
                ("lib/systemd/system/docker.socket", SOCKET),
                ("etc/default/docker", "DOCKER_OPTS=\"-H tcp://127.0.0.1:2375\"\n"),
            ],
            "-H flags",
        ),
        (
            &[
                ("lib/systemd/system/docker.service", SERVICE_PLAIN),
                (
                    "etc/docker/daemon.json",
                    "{\"hosts\": [\"unix:///var/run/docker.sock\", \"tcp://127.0.0.1:2375\"]}",
                ),
            ],
            "already sets hosts",
        ),
        (
            &[
                ("lib/systemd/system/docker.service", SERVICE_PLAIN),
                ("etc/docker/daemon.json", "{\"hosts\": "),
            ],
            "not valid JSON",
        ),
        (
            &[
                ("lib/systemd/system/docker.service", SERVICE_FD),
                ("lib/systemd/system/docker.socket", SOCKET),
                ("etc/docker/daemon.json", "{\"hosts\": [\"tcp://127.0.0.1:2375\"]}"),
            ],
            "refuses that pair",
        ),
        (
            &[
                ("lib/systemd/system/docker.service", SERVICE_FD),
                ("lib/systemd/system/docker.socket", SOCKET),
                (
                    "etc/systemd/system/docker.socket.d/tcp.conf",
                    "[Socket]\nListenStream=127.0.0.1:2375\n",
                ),
            ],
            "docker.socket listens on",
        ),
        (&[("lib/systemd/system/docker.service", SERVICE_FD)], "no docker.socket"),
        (
            &[
                ("lib/systemd/system/docker.service", SERVICE_PLAIN),
                ("lib/systemd/system/docker.socket", SOCKET),
            ],
            "keep holding /run/docker.sock",
        ),
        (
            &[(
                "lib/systemd/system/docker.service",
                "[Service]\nExecStart=/usr/local/bin/start-docker.sh\n",
            )],
            "does not start dockerd directly",
        ),
        (
            &[
                ("lib/systemd/system/docker.service", SERVICE_PLAIN),
                ("run/forge-shim", "a file where the private folder's parent must be"),
            ],
            "is not a directory",
        ),
        (
            &[
                ("lib/systemd/system/docker.service", SERVICE_PLAIN),
                (
                    "run/forge-shim/dockerd/stray",
                    "a folder install did not make, mode 0755",
                ),
            ],
            "must be a folder of root's with mode 0700",
        ),
        (
            &[
                ("lib/systemd/system/docker.service", SERVICE_PLAIN),
                (
                    "etc/systemd/system/forge-shim.service",
                    "[Service]\nExecStart=/bin/true\n",
                ),
            ],
            "was not written by forge-shim install",
        ),
    ];
    for (files, want) in cases {
        let root = root_with(files);
        let message = refusal(root.path());
        assert!(message.contains(want), "{files:?}: wanted {want:?}, got {message:?}");
    }
}

#[test]
fn a_drop_in_that_overrides_exec_start_is_read() {
    let root = root_with(&[
        ("lib/systemd/system/docker.service", SERVICE_FD),
        ("lib/systemd/system/docker.socket", SOCKET),
        (
            "etc/systemd/system/docker.service.d/override.conf",
            "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd\n",
        ),
    ]);
    // No -H any more, but docker.socket is still there to hold the socket.
    assert!(refusal(root.path()).contains("keep holding"));
    fs::create_dir_all(root.path().join("etc/systemd/system")).unwrap();
    std::os::unix::fs::symlink("/dev/null", root.path().join("etc/systemd/system/docker.socket")).unwrap();
    assert_eq!(
        plan(&opts(root.path(), true)).unwrap().manifest.layout.clone(),
        Layout::DaemonJson {
            path: PathBuf::from(DAEMON_JSON)
        }
    );
}

#[test]
fn apply_then_undo_leaves_the_root_as_it_was() {
    let original = b"{\n  \"log-level\":   \"warn\"\n}\n\n";
    let root = root_with(&[("lib/systemd/system/docker.service", SERVICE_PLAIN)]);
    let daemon = root.path().join("etc/docker/daemon.json");
    fs::create_dir_all(daemon.parent().unwrap()).unwrap();
    fs::write(&daemon, original).unwrap();
    fs::set_permissions(&daemon, fs::Permissions::from_mode(0o640)).unwrap();
    let before = listing(root.path());
    let plan = plan(&opts(root.path(), true)).unwrap();
    plan.apply().unwrap();
    assert_ne!(fs::read(&daemon).unwrap(), original);
    assert!(root.path().join("run/forge-shim/dockerd").is_dir());
    // A second install is refused while the first stands.
    assert!(super::plan(&opts(root.path(), true))
        .unwrap_err()
        .0
        .contains("already installed"));
    let undo = plan_uninstall(Some(root.path())).unwrap();
    assert!(undo.changed.is_empty(), "{:?}", undo.changed);
    undo.apply().unwrap();
    assert_eq!(fs::read(&daemon).unwrap(), original);
    assert_eq!(fs::metadata(&daemon).unwrap().permissions().mode() & 0o777, 0o640);
    assert_eq!(listing(root.path()), before);
}

#[test]
fn uninstall_sees_a_file_changed_since() {
    let root = root_with(&[
        ("lib/systemd/system/docker.service", SERVICE_FD),
        ("lib/systemd/system/docker.socket", SOCKET),
    ]);
    plan(&opts(root.path(), true)).unwrap().apply().unwrap();
    fs::write(root.path().join("etc/systemd/system/forge-shim.service"), "[Service]\n").unwrap();
    let undo = plan_uninstall(Some(root.path())).unwrap();
    assert_eq!(undo.changed.len(), 1, "{:?}", undo.changed);
}

/// Every path under `root` with its kind, sorted.
pub(super) fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            let rel = entry.path().strip_prefix(root).unwrap().display().to_string();
            if kind.is_dir() {
                stack.push(entry.path());
                out.push(format!("{rel}/"));
            } else {
                out.push(rel);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_spelling_of_host_and_config_file() {
    let words: Vec<String> = [
        "-H",
        "fd://",
        "--host=tcp://a",
        "-Hunix:///x",
        "-H=unix:///y",
        "--config-file",
        "/c.json",
        "--debug",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (hosts, config) = dockerd_flags(&words);
    assert_eq!(hosts, ["fd://", "tcp://a", "unix:///x", "unix:///y"]);
    assert_eq!(config.as_deref(), Some("/c.json"));
}

#[test]
fn a_plain_install_on_dockerds_socket_is_refused() {
    let root = root_with(&[("lib/systemd/system/docker.service", SERVICE_FD)]);
    let mut o = opts(root.path(), false);
    o.listen = PathBuf::from("/var/run/docker.sock");
    assert!(plan(&o).unwrap_err().0.contains("what --takeover is for"));
    o.listen = PathBuf::from("/run/forge-shim/docker.sock");
    assert_eq!(plan(&o).unwrap().manifest.layout, Layout::Plain);
}
