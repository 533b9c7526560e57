//! Issue 13, class 3: user spellings runc reads as root, and images whose
//! user is root under another name. Through the real binary in front of the
//! real dockerd, with the real docker CLI; each outcome is checked on
//! dockerd's own view (its inspect, the uid the process really runs as).
//!
//! The shim runs with the embedded `shim.yml` (enforce mode), sleeping off.

mod common;

use common::*;

const ENFORCE: &str = "auto_sleep: { enabled: false }\n";

fn shim_with(extra: &str) -> Shim {
    require_dockerd();
    Shim::start(&format!("{ENFORCE}{extra}"))
}

/// Builds, straight on dockerd, an image FROM busybox whose Dockerfile ends
/// with `tail` (after `passwd` lines are appended to /etc/passwd).
fn build(names: &Names, what: &str, passwd: &[&str], tail: &str) -> String {
    let image = names.image(what);
    let mut dockerfile = format!("FROM {BUSYBOX}\n");
    for line in passwd {
        dockerfile.push_str(&format!("RUN echo '{line}' >> /etc/passwd\n"));
    }
    dockerfile.push_str(tail);
    dockerfile.push('\n');
    let out = run_with_input(
        direct_docker_command(&["build", "-q", "-t", &image, "-"]),
        dockerfile.as_bytes(),
        DOCKER_TIMEOUT,
    );
    out.assert_success("docker build on dockerd");
    names.track_image(&image);
    image
}

fn direct_inspect(name: &str, format: &str) -> Option<String> {
    let out = direct_docker(&["inspect", "--format", format, name]);
    out.status.success().then(|| out.stdout_text().trim().to_string())
}

fn assert_denied(out: &std::process::Output, what: &str) {
    assert!(
        !out.status.success(),
        "{what}: expected a denial, got success: {}",
        out.stdout_text()
    );
    let stderr = out.stderr_text();
    assert!(
        stderr.contains("forge-shim") && stderr.contains("non_root"),
        "{what}: expected the shim's non_root denial, got: {stderr}"
    );
}

/// The uid the container's process ran as, from its output of `id -u`.
fn run_id(shim: &Shim, names: &Names, what: &str, args: &[&str]) -> String {
    let name = names.name(what);
    let mut run = vec!["run", "--name", &name];
    run.extend_from_slice(args);
    run.extend_from_slice(&["id", "-u"]);
    let out = shim.docker(&run);
    out.assert_success(&format!("docker run {what}"));
    out.stdout_text().trim().to_string()
}

fn no_probe_left() {
    let out = direct_docker(&["ps", "-aq", "--filter", "label=forge-shim.probe"]);
    out.assert_success("docker ps of probes");
    assert_eq!(out.stdout_text().trim(), "", "the shim left a probe container behind");
}

#[test]
fn spellings_with_an_empty_user_part_are_root_and_denied() {
    let shim = shim_with("");
    let names = Names::new("emptyuser");
    for (i, user) in [":", ":0", ":65534", "0:65534", "+0"].iter().enumerate() {
        let name = names.name(&format!("c{i}"));
        let out = shim.docker(&["create", "--name", &name, "--user", user, BUSYBOX, "id", "-u"]);
        assert_denied(&out, &format!("--user {user:?}"));
        assert_eq!(direct_inspect(&name, "{{.Id}}"), None, "--user {user:?} was created");
    }
    // What dockerd would do with it, checked straight on dockerd: root.
    let name = names.name("direct");
    let out = direct_docker(&["run", "--name", &name, "--user", ":65534", BUSYBOX, "id", "-u"]);
    out.assert_success("docker run --user :65534 on dockerd");
    assert_eq!(out.stdout_text().trim(), "0", "runc runs an empty user part as root");
}

#[test]
fn an_image_whose_user_is_root_by_another_name_gets_a_non_root_user() {
    let shim = shim_with("");
    let names = Names::new("rootalias");
    let toor = build(&names, "toor", &["toor:x:0:0::/root:/bin/sh"], "USER toor");
    // `USER :` made through the API itself, by a commit through the shim.
    let base = names.name("base");
    shim.docker(&["create", "--name", &base, "--user", "1000", BUSYBOX, "true"])
        .assert_success("create the commit's base");
    let colon = names.image("colon");
    shim.docker(&["commit", "--change", "USER :", &base, &colon])
        .assert_success("commit with USER :");
    names.track_image(&colon);
    assert_eq!(
        direct_inspect(&colon, "{{.Config.User}}").as_deref(),
        Some(":"),
        "the commit set USER :"
    );

    for (what, image) in [("toor", &toor), ("colon", &colon)] {
        // On dockerd itself the image runs as root.
        let direct = names.name(&format!("{what}-direct"));
        let out = direct_docker(&["run", "--name", &direct, image, "id", "-u"]);
        out.assert_success("docker run on dockerd");
        assert_eq!(out.stdout_text().trim(), "0", "{what} runs as root on plain dockerd");
        // Through the shim it gets the default user, and says so.
        let name = names.name(what);
        let out = shim.docker(&["run", "--name", &name, image, "id", "-u"]);
        out.assert_success(&format!("docker run {what} through the shim"));
        assert_eq!(out.stdout_text().trim(), "65534", "{what} through the shim");
        assert!(
            out.stderr_text().contains("WARNING: forge-shim:") && out.stderr_text().contains("non_root"),
            "{what}: the change is named in the warning: {}",
            out.stderr_text()
        );
        // An explicit name for root is denied.
    }
    let out = shim.docker(&[
        "create",
        "--name",
        &names.name("explicit"),
        "--user",
        "toor",
        &toor,
        "true",
    ]);
    assert_denied(&out, "--user toor");
    no_probe_left();
}

#[test]
fn a_named_user_is_pinned_so_a_later_passwd_cannot_make_it_root() {
    // A read-only root would stop the `docker cp` below; an image that is
    // not given one (an exemption, a fitted standard) must still hold.
    let shim = shim_with("standards: { defaults: { read_only_rootfs: false } }\n");
    let names = Names::new("pinuser");
    let image = build(&names, "app", &["app:x:1000:1000::/app:/bin/sh"], "USER app");

    // The image's user, resolved and pinned: it runs as 1000 and dockerd
    // records the uid.
    assert_eq!(run_id(&shim, &names, "plain", &[&image]), "1000");
    assert_eq!(
        direct_inspect(&names.name("plain"), "{{.Config.User}}").as_deref(),
        Some("1000:1000")
    );
    // An explicit name is pinned the same way.
    assert_eq!(run_id(&shim, &names, "explicit", &["--user", "app", &image]), "1000");

    // The attack: create, then make `app` uid 0 in the container's passwd
    // before it starts. The pinned uid does not follow.
    let name = names.name("swapped");
    shim.docker(&["create", "--name", &name, &image, "id", "-u"])
        .assert_success("create");
    let dir = tempfile::tempdir().unwrap();
    let evil = dir.path().join("passwd");
    std::fs::write(&evil, "root:x:0:0::/root:/bin/sh\napp:x:0:0::/:/bin/sh\n").unwrap();
    let target = format!("{name}:/etc/passwd");
    direct_docker(&["cp", evil.to_str().unwrap(), &target]).assert_success("docker cp passwd");
    let out = shim.docker(&["start", "-a", &name]);
    out.assert_success("start -a");
    assert_eq!(
        out.stdout_text().trim(),
        "1000",
        "a later passwd made the pinned user root"
    );

    // A name that is not in the image's passwd cannot be checked: denied
    // (dockerd would not start it either, until someone adds the name).
    let out = shim.docker(&[
        "create",
        "--name",
        &names.name("ghost"),
        "--user",
        "ghost",
        &image,
        "true",
    ]);
    assert_denied(&out, "--user ghost");
    no_probe_left();
}

#[test]
fn exec_as_root_by_another_name_is_denied() {
    let shim = shim_with("standards: { non_root: { deny_root_exec: true } }\n");
    let names = Names::new("execuser");
    let image = build(
        &names,
        "img",
        &["toor:x:0:0::/root:/bin/sh", "app:x:1000:1000::/app:/bin/sh"],
        "USER app",
    );
    let name = names.name("c");
    let mut args = vec!["run", "-d", "--name", &name];
    args.extend_from_slice(&NO_SLEEP);
    args.extend_from_slice(&[&image, "sleep", "3600"]);
    shim.docker(&args).assert_success("docker run");
    for user in ["toor", ":", ":1000", "0"] {
        let out = shim.docker(&["exec", "--user", user, &name, "id", "-u"]);
        assert_denied(&out, &format!("exec --user {user:?}"));
    }
    let out = shim.docker(&["exec", "--user", "app", &name, "id", "-u"]);
    out.assert_success("exec --user app");
    assert_eq!(out.stdout_text().trim(), "1000");
}

/// The embedded default: `docker exec -u 0` into a container the standards
/// made non-root is denied, and says how an operator allows it; a plain
/// `docker exec` runs as the container's user; into a container that runs
/// as root (the operator allowed it), root exec is no escalation.
#[test]
fn root_exec_into_a_non_root_container_is_denied_by_default() {
    let shim = shim_with("");
    let names = Names::new("rootexec");
    let name = names.name("c");
    let mut args = vec!["run", "-d", "--name", &name];
    args.extend_from_slice(&NO_SLEEP);
    args.extend_from_slice(&[BUSYBOX, "sleep", "3600"]);
    shim.docker(&args).assert_success("docker run");
    let since = direct_docker(&["system", "info", "--format", "{{.SystemTime}}"]);
    since.assert_success("dockerd's clock");
    let since = since.stdout_text().trim().to_string();
    for user in ["0", "root", "0:0"] {
        let out = shim.docker(&["exec", "--user", user, &name, "id", "-u"]);
        assert_denied(&out, &format!("exec --user {user:?}"));
        assert!(
            out.stderr_text().contains("deny_root_exec: false"),
            "the denial says how to allow it: {}",
            out.stderr_text()
        );
    }
    let out = shim.docker(&["exec", &name, "id", "-u"]);
    out.assert_success("plain docker exec");
    assert_eq!(out.stdout_text().trim(), "65534");
    // The denials created nothing: dockerd saw one exec, the plain one.
    // A bound a little ahead: dockerd's newest events are in the answer.
    let until = (unix_now() + 2).to_string();
    let events = direct_docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        &format!("container={name}"),
        "--filter",
        "event=exec_create",
        "--format",
        "{{.Action}}",
    ]);
    events.assert_success("docker events");
    assert_eq!(events.stdout_text().lines().count(), 1, "{}", events.stdout_text());
    drop(shim);

    // The operator lets this image run as root: exec as root goes through.
    let shim = shim_with("standards: { non_root: { when_image_runs_as_root: allow } }\n");
    let rooted = names.name("rooted");
    let mut args = vec!["run", "-d", "--name", &rooted];
    args.extend_from_slice(&NO_SLEEP);
    args.extend_from_slice(&[BUSYBOX, "sleep", "3600"]);
    shim.docker(&args).assert_success("docker run as root");
    let out = shim.docker(&["exec", "--user", "0", &rooted, "id", "-u"]);
    out.assert_success("exec -u 0 into a root container");
    assert_eq!(out.stdout_text().trim(), "0");
}
