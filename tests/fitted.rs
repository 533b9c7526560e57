//! Fitted hardening through the real binary, the real dockerd, the real
//! `docker` CLI and `docker compose`, on service images built from Debian's
//! packages (scripts/service-images.sh): an unchanged four-service app
//! works on its first `up`, which the shim learns from, and on its next
//! `up`, which is hardened; a hardened run that fails because of a rule is
//! remembered; `forge-shim profile` hardens an image from its first create.

mod common;

use std::time::Duration;

use serde_json::Value;

use common::*;

const NGINX: &str = "forge-test/nginx:latest";
const API: &str = "forge-test/python-api:latest";
const POSTGRES: &str = "forge-test/postgres:latest";
const REDIS: &str = "forge-test/redis:latest";

/// The embedded default (hardening `fitted`), with a short learning time.
fn shim(learn_for: &str) -> Shim {
    require_dockerd();
    for image in [NGINX, API, POSTGRES, REDIS] {
        let out = direct_docker(&["image", "inspect", "--format", "{{.Id}}", image]);
        assert!(
            out.status.success(),
            "image {image} is missing: run `make setup` (scripts/service-images.sh)"
        );
    }
    Shim::start(&format!(
        "auto_sleep: {{ enabled: false }}\nstandards:\n  hardening: {{ learn_for: {learn_for}, failure_window: 60s }}\n"
    ))
}

fn inspect(name: &str) -> Value {
    let out = direct_docker(&["inspect", "--type", "container", name]);
    out.assert_success(&format!("docker inspect {name}"));
    let list: Value = serde_json::from_str(&out.stdout_text()).expect("docker inspect prints JSON");
    list[0].clone()
}

fn api_get(shim: &Shim, path: &str) -> Value {
    let response = raw_request(shim.socket_path(), &bodyless_request("GET", path));
    assert_eq!(response.status, 200, "{path}: {}", response.body_text());
    response.json()
}

/// The container's address on its first network, as dockerd has it.
fn address(name: &str) -> String {
    let networks = inspect(name)["NetworkSettings"]["Networks"].clone();
    networks
        .as_object()
        .and_then(|n| n.values().next())
        .and_then(|n| n["IPAddress"].as_str())
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| panic!("{name} has no address: {networks}"))
        .to_string()
}

/// `GET http://ADDR:PORT/PATH` from the host, retried until it answers 200
/// with `expect` in its body.
fn wait_http(what: &str, url: &str, expect: &str) {
    wait_until(what, Duration::from_secs(60), || {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-s", "-m", "3", url]);
        match try_run_with_timeout(cmd, Duration::from_secs(10)) {
            Ok(out) => out.stdout_text().contains(expect),
            Err(_) => false,
        }
    });
}

fn running(name: &str) -> bool {
    let state = inspect(name)["State"].clone();
    state["Running"].as_bool() == Some(true) && state["Restarting"].as_bool() != Some(true)
}

/// Builds, straight on dockerd, an image FROM busybox whose command is
/// `sh -c SCRIPT`.
fn busybox_image(names: &Names, what: &str, script: &str) -> String {
    let image = names.image(what);
    let dir = tempfile::tempdir().expect("tempdir");
    let cmd = serde_json::json!(["sh", "-c", script]);
    std::fs::write(dir.path().join("Dockerfile"), format!("FROM {BUSYBOX}\nCMD {cmd}\n")).unwrap();
    let mut build = direct_docker_command(&["build", "-q", "-t", &image, dir.path().to_str().unwrap()]);
    build.env("DOCKER_BUILDKIT", "0");
    run_with_timeout(build, Duration::from_secs(120)).assert_success("docker build");
    names.track_image(&image);
    image
}

/// Runs a learning container of `image` through `shim` and waits until
/// the image's profile is ready; the container's name.
fn learn(shim: &Shim, names: &Names, image: &str) -> String {
    let learner = names.name("learner");
    shim.docker(&["run", "-d", "--name", &learner, image])
        .assert_success("learning run");
    wait_until("the profile is ready", Duration::from_secs(30), || {
        api_get(shim, "/_forge/v1/profiles")["profiles"]
            .as_array()
            .is_some_and(|list| list.iter().any(|p| p["image"] == image && p["ready"] == true))
    });
    learner
}

fn compose_file(dir: &std::path::Path) -> String {
    let text = std::fs::read_to_string(repo_path("examples/fitted-app/compose.yml")).expect("the example compose file");
    // No published port: tests run side by side; they reach the app by
    // its address.
    let text = text.replace("    ports: [\"8080:80\"]\n", "");
    let file = dir.join("compose.yml");
    std::fs::write(&file, text).expect("write compose.yml");
    file.to_str().expect("utf-8 path").to_string()
}

#[test]
fn an_unchanged_app_works_on_its_first_up_and_its_next_up_is_hardened() {
    let shim = shim("5s");
    let names = Names::new("fitted-app");
    let project = names.project("app");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = compose_file(dir.path());
    let compose = |args: &[&str]| {
        let mut all = vec!["compose", "-p", project.as_str(), "-f", file.as_str()];
        all.extend_from_slice(args);
        shim.docker_timeout(&all, Duration::from_secs(300))
    };
    let name = |service: &str| format!("{project}-{service}-1");
    let services = ["web", "api", "db", "cache"];

    // First `up`: nothing is known, so nothing is hardened, and it says so.
    let up = compose(&["up", "-d"]);
    up.assert_success("compose up -d, first time");
    let said = up.stderr_text();
    for service in services {
        assert!(
            said.contains(&format!(
                "{service} forge-shim: read-only root not applied yet: learning what forge-test/"
            )),
            "no learning warning for {service}:\n{said}"
        );
    }
    let db_ip = address(&name("db"));
    let web_ip = address(&name("web"));
    wait_http("nginx answers", &format!("http://{web_ip}/"), "forge-test-nginx-ok");
    wait_http(
        "nginx reaches the api",
        &format!("http://{web_ip}/api/x"),
        "forge-test-api-ok",
    );
    // Data written in the first life must survive the hardened second.
    wait_until("postgres accepts a write", Duration::from_secs(60), || {
        shim.docker(&[
            "exec",
            &name("db"),
            "psql",
            "-U",
            "postgres",
            "-c",
            "create table if not exists kept (v text); insert into kept values ('first-life');",
        ])
        .status
        .success()
    });
    for service in services {
        assert!(running(&name(service)), "{service} is not running on the first up");
        let label = inspect(&name(service))["Config"]["Labels"]["forge-shim.hardening"].clone();
        assert_eq!(label, "learning", "{service}");
    }
    let _ = db_ip;

    // Learned: a ready profile for each of the four images, by image ID.
    // The shim also profiles what other tests run beside this one, so a
    // count of ready profiles would not say these four are ready.
    let ids: Vec<String> = [NGINX, API, POSTGRES, REDIS]
        .iter()
        .map(|image| {
            direct_docker(&["image", "inspect", "--format", "{{.Id}}", image])
                .stdout_text()
                .trim()
                .to_string()
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let profiles = api_get(&shim, "/_forge/v1/profiles");
        let list = profiles["profiles"].as_array().cloned().unwrap_or_default();
        let ready = |id: &String| {
            list.iter()
                .any(|p| p["image_id"].as_str() == Some(id.as_str()) && p["ready"] == true)
        };
        if ids.iter().all(ready) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no ready profile for each of {ids:?} after 90 s; the profiles:\n{profiles:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let up = compose(&["up", "-d", "--force-recreate"]);
    up.assert_success("compose up -d --force-recreate");
    let said = up.stderr_text();
    assert!(
        !said.contains("not applied yet"),
        "still learning on the second up:\n{said}"
    );

    // Hardened, each as it survives.
    let api = inspect(&name("api"));
    assert_eq!(api["HostConfig"]["ReadonlyRootfs"], true);
    assert_eq!(api["Config"]["User"], "65534:65534");
    let api_tmpfs = api["HostConfig"]["Tmpfs"]["/app/cache"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(api_tmpfs.starts_with("uid=65534,gid=65534,"), "{api_tmpfs}");
    assert_eq!(api["HostConfig"]["CapDrop"], serde_json::json!(["ALL"]));

    let web = inspect(&name("web"));
    assert_eq!(
        web["HostConfig"]["ReadonlyRootfs"],
        true,
        "{}",
        api_get(&shim, "/_forge/v1/profiles")
    );
    assert_eq!(web["Config"]["User"], "", "nginx drops root itself: it starts as root");
    let web_tmpfs = web["HostConfig"]["Tmpfs"]["/var/lib/nginx"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(web_tmpfs.starts_with("uid=33,gid=33,"), "{web_tmpfs}");
    let caps: Vec<String> = serde_json::from_value(web["HostConfig"]["CapAdd"].clone()).unwrap_or_default();
    assert!(caps.contains(&"NET_BIND_SERVICE".to_string()), "{caps:?}");
    assert!(!caps.contains(&"SYS_ADMIN".to_string()), "{caps:?}");

    for service in ["db", "cache"] {
        let c = inspect(&name(service));
        assert_eq!(
            c["HostConfig"]["ReadonlyRootfs"],
            true,
            "{service}: {}",
            api_get(&shim, "/_forge/v1/profiles")
        );
        assert_eq!(c["HostConfig"]["CapDrop"], serde_json::json!(["ALL"]), "{service}");
        assert_eq!(c["Config"]["User"], "", "{service} drops root itself");
        let label = c["Config"]["Labels"]["forge-shim.hardening"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            label, "non_root,defaults.memory,defaults.read_only_rootfs,defaults.cap_drop",
            "{service}"
        );
    }

    // And it all still works.
    let web_ip = address(&name("web"));
    wait_http(
        "hardened nginx answers",
        &format!("http://{web_ip}/"),
        "forge-test-nginx-ok",
    );
    wait_http(
        "hardened nginx reaches the hardened api",
        &format!("http://{web_ip}/api/y"),
        "forge-test-api-ok",
    );
    let mut kept = String::new();
    wait_until("hardened postgres answers", Duration::from_secs(60), || {
        let out = shim.docker(&[
            "exec",
            &name("db"),
            "psql",
            "-U",
            "postgres",
            "-tAc",
            "select v from kept",
        ]);
        kept = out.stdout_text();
        out.status.success()
    });
    assert_eq!(
        kept.trim(),
        "first-life",
        "postgres lost its data across the hardened restart"
    );
    let mut pong = String::new();
    wait_until("hardened redis answers", Duration::from_secs(30), || {
        let out = shim.docker(&["exec", &name("cache"), "redis-cli", "ping"]);
        pong = out.stdout_text();
        out.status.success()
    });
    assert_eq!(pong.trim(), "PONG");
    for service in services {
        assert!(running(&name(service)), "{service} died hardened");
        assert_eq!(inspect(&name(service))["RestartCount"], 0, "{service}");
    }
    compose(&["down", "-v", "-t", "5"]).assert_success("compose down -v");
}

/// A rule that a hardened run fails with is remembered, and only that rule
/// is held back for the image's next create.
#[test]
fn a_hardened_run_that_fails_with_a_rule_is_remembered() {
    let shim = shim("2s");
    let names = Names::new("fitted-failure");
    let image = busybox_image(
        &names,
        "writer",
        "if [ -n \"$WRITE\" ]; then echo x > /etc/fitted-data || exit 3; fi; exec sleep 300",
    );

    let learner = learn(&shim, &names, &image);

    // Hardened, it fails at once with EROFS.
    let failing = names.name("failing");
    shim.docker(&["run", "-d", "--name", &failing, "-e", "WRITE=1", &image])
        .assert_success("hardened run");
    assert_eq!(inspect(&failing)["HostConfig"]["ReadonlyRootfs"], true);
    wait_until("the failure is noticed", Duration::from_secs(30), || {
        api_get(&shim, "/_forge/v1/hardening")["failures"]
            .as_array()
            .is_some_and(|list| list.iter().any(|f| f["name"] == failing.as_str()))
    });
    let failures = api_get(&shim, "/_forge/v1/hardening");
    let failure = failures["failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == failing.as_str())
        .unwrap()
        .clone();
    assert_eq!(failure["rule"], "defaults.read_only_rootfs", "{failure}");
    assert!(
        failure["evidence"]
            .as_str()
            .unwrap_or("")
            .contains("Read-only file system"),
        "{failure}"
    );
    assert!(shim.log().contains("failed because of a fitted rule"));
    let status = forge_cli(&shim, &["status"]);
    status.assert_success("forge-shim status");
    assert!(
        status
            .stdout_text()
            .contains(&format!("  {failing} ({image}): defaults.read_only_rootfs: ")),
        "{}",
        status.stdout_text()
    );

    // The next create goes without the read-only root, and says why; the
    // other rules still apply.
    let next = names.name("next");
    let out = shim.docker(&["create", "--name", &next, "-e", "WRITE=1", &image]);
    out.assert_success("next create");
    assert!(
        out.stderr_text()
            .contains("read-only root not applied: a hardened run of"),
        "{}",
        out.stderr_text()
    );
    let c = inspect(&next);
    assert_ne!(c["HostConfig"]["ReadonlyRootfs"], true);
    assert_eq!(c["Config"]["User"], "65534:65534");
    assert_eq!(c["HostConfig"]["CapDrop"], serde_json::json!(["ALL"]));
    // The never-case: the failed container was neither removed nor restarted.
    assert_eq!(inspect(&failing)["State"]["Status"], "exited");
    assert_eq!(inspect(&learner)["State"]["Running"], true);

    // audit, from the shim's state_dir: the failure, the learning, and what
    // the profile recommends.
    let audit = forge_audit_json(&shim);
    let report = |name: &str| audit_report(&audit, name);
    let failed = report(&failing)["hardening"].clone();
    assert!(
        failed["rules"]["defaults.read_only_rootfs"]
            .as_str()
            .unwrap_or("")
            .starts_with("failed: "),
        "{failed}"
    );
    assert_eq!(failed["rules"]["defaults.cap_drop"], "applied", "{failed}");
    assert_eq!(
        inspect(&failing)["Config"]["Labels"]["forge-shim.hardening"],
        "non_root,defaults.memory,defaults.read_only_rootfs,defaults.cap_drop"
    );
    assert_eq!(report(&learner)["hardening"]["rules"]["non_root"], "learning");
    let recommends = failed["recommends"].to_string();
    assert!(recommends.contains("user 65534:65534"), "{recommends}");
    assert!(recommends.contains("memory limit"), "{recommends}");

    // A client cannot claim the shim's label.
    let claimed = names.name("claimed");
    shim.docker(&[
        "create",
        "--name",
        &claimed,
        "--label",
        "forge-shim.hardening=learning",
        BUSYBOX,
        "true",
    ])
    .assert_success("create with the label");
    let label = inspect(&claimed)["Config"]["Labels"]["forge-shim.hardening"].clone();
    assert_eq!(label, "learning", "busybox has no profile here: it is learning");
}

#[test]
fn forge_shim_profile_hardens_an_image_from_its_first_create() {
    let shim = shim("60s");
    let names = Names::new("fitted-profile");
    let out = forge_cli(&shim, &["profile", API, "--seconds", "3"]);
    out.assert_success("forge-shim profile");
    let said = out.stdout_text();
    assert!(said.contains("writes /app/cache: ephemeral"), "{said}");
    assert!(said.contains("read_only_rootfs: apply"), "{said}");
    // The probe is gone.
    let left = direct_docker(&["ps", "-aq", "--filter", "label=forge-shim.probe=profile"]);
    assert_eq!(left.stdout_text().trim(), "", "a profile probe was left behind");

    let api = names.name("api");
    let out = shim.docker(&["run", "-d", "--name", &api, API]);
    out.assert_success("docker run of the profiled image");
    assert!(!out.stderr_text().contains("not applied yet"), "{}", out.stderr_text());
    let c = inspect(&api);
    assert_eq!(c["HostConfig"]["ReadonlyRootfs"], true);
    assert_eq!(c["Config"]["User"], "65534:65534");
    let ip = address(&api);
    wait_http(
        "the hardened api answers",
        &format!("http://{ip}:8000/"),
        "forge-test-api-ok",
    );
    assert!(running(&api));

    // `docker tag` cannot claim the profile: a name moved to another image
    // is that image, with no profile of its own.
    let alias = names.image("alias");
    direct_docker(&["tag", API, &alias]).assert_success("docker tag");
    names.track_image(&alias);
    let first = names.name("first");
    let out = shim.docker(&["create", "--name", &first, &alias]);
    out.assert_success("create by an alias of the profiled image");
    assert_eq!(
        inspect(&first)["HostConfig"]["ReadonlyRootfs"],
        true,
        "same content, same profile"
    );
    direct_docker(&["tag", BUSYBOX, &alias]).assert_success("docker tag the alias to busybox");
    let claimed = names.name("claimed");
    let out = shim.docker(&["create", "--name", &claimed, &alias]);
    out.assert_success("create by the moved alias");
    assert!(
        out.stderr_text().contains("not applied yet: learning"),
        "{}",
        out.stderr_text()
    );
    let c = inspect(&claimed);
    assert_ne!(
        c["HostConfig"]["ReadonlyRootfs"], true,
        "busybox claimed the api's profile by its name"
    );
    assert_eq!(c["Config"]["Labels"]["forge-shim.hardening"], "learning");

    // Bad input: a clear error, nothing created.
    let out = forge_cli(&shim, &["profile", "forge-test/no-such-image:latest", "--seconds", "1"]);
    assert!(!out.status.success());
    assert!(out.stderr_text().contains("no such image"), "{}", out.stderr_text());
}

/// An image OOM-killed under the memory default the shim set gets twice
/// that default on its next create.
#[test]
fn an_oom_kill_under_the_shims_memory_default_is_remembered() {
    require_dockerd();
    let shim = Shim::start(
        "auto_sleep: { enabled: false }\nclasses: { normal: { resources: { memory: 16M } } }\n\
         standards:\n  defaults: { memory: 16M, memory_reservation: 8M }\n  hardening: { learn_for: 1s }\n",
    );
    let names = Names::new("fitted-oom");
    let image = busybox_image(
        &names,
        "eater",
        "if [ -n \"$EAT\" ]; then head -c 200m /dev/zero | tail; exit 1; fi; exec sleep 300",
    );

    learn(&shim, &names, &image);
    let eater = names.name("eater");
    shim.docker(&["run", "-d", "--name", &eater, "-e", "EAT=1", &image])
        .assert_success("hardened run");
    assert_eq!(inspect(&eater)["HostConfig"]["Memory"], 16 << 20);
    wait_until("the OOM kill is noticed", Duration::from_secs(60), || {
        api_get(&shim, "/_forge/v1/hardening")["failures"]
            .as_array()
            .is_some_and(|list| {
                list.iter()
                    .any(|f| f["name"] == eater.as_str() && f["rule"] == "defaults.memory")
            })
    });
    assert_eq!(inspect(&eater)["State"]["OOMKilled"], true);

    let next = names.name("next");
    let out = shim.docker(&["create", "--name", &next, &image]);
    out.assert_success("next create");
    assert_eq!(
        inspect(&next)["HostConfig"]["Memory"],
        32 << 20,
        "{}",
        out.stderr_text()
    );
    // The never-case: an explicit limit is the client's, kept as asked.
    let explicit = names.name("explicit");
    shim.docker(&["create", "--name", &explicit, "--memory", "24m", &image])
        .assert_success("explicit create");
    assert_eq!(inspect(&explicit)["HostConfig"]["Memory"], 24 << 20);
}
