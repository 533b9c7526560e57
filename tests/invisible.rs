//! Sleep that Docker clients cannot see, through the real binary in front of
//! the real dockerd with the real `docker` CLI and `docker compose`: a
//! container the shim put to sleep reads as running (inspect, `ps`, `ps`
//! status filters) with its health from before the sleep; reading it does
//! not wake it; `compose up -d` on a sleeping project restarts nothing and
//! waits on no false `unhealthy`; a pause the user made stays paused; and
//! dockerd's own socket and the shim's status still tell the truth.
//!
//! Containers are put to sleep on demand through the shim's API (the
//! class's idle timeout is an hour, so nothing sleeps by itself), and only
//! this test's names are given a class that may sleep (see tests/sleep.rs).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use forge_shim::State;

use common::*;

/// Deadline for a state change dockerd or the shim makes on its own.
const CHANGE_WITHIN: Duration = Duration::from_secs(60);

fn start_shim(names: &Names) -> Shim {
    require_dockerd();
    let prefix = names.prefix();
    Shim::start(&format!(
        "standards: {{ mode: off }}\n\
         default_class: high\n\
         auto_sleep:\n  enabled: true\n  check_interval: 500ms\n  min_uptime: 0\n\
         classes:\n  sleepy:\n    sleep_policy: {{ enabled: true, idle_timeout: 1h }}\n\
         classify:\n  - match: {{ name: \"{prefix}-*\" }}\n    class: sleepy\n"
    ))
}

/// `docker inspect -f FORMAT NAME` straight from dockerd.
fn direct_inspect(name: &str, format: &str) -> String {
    let out = direct_docker(&["inspect", "-f", format, name]);
    out.assert_success("docker inspect on dockerd");
    out.stdout_text().trim().to_string()
}

/// `docker inspect -f FORMAT NAME` through the shim.
fn shim_inspect(shim: &Shim, name: &str, format: &str) -> String {
    let out = shim.docker(&["inspect", "-f", format, name]);
    out.assert_success("docker inspect through the shim");
    out.stdout_text().trim().to_string()
}

/// `docker ps -a` through the shim, with `filters`, as `State|Status` lines
/// of the containers named `name`.
fn shim_ps(shim: &Shim, name: &str, filters: &[&str]) -> Vec<String> {
    let name_filter = format!("name=^{name}$");
    let mut args = vec!["ps", "-a", "--filter", name_filter.as_str()];
    for filter in filters {
        args.extend_from_slice(&["--filter", filter]);
    }
    args.extend_from_slice(&["--format", "{{.State}}|{{.Status}}"]);
    let out = shim.docker(&args);
    out.assert_success("docker ps through the shim");
    out.stdout_text().lines().map(str::to_string).collect()
}

fn state(shim: &Shim, name: &str) -> Option<State> {
    shim.container(name).map(|row| row.state)
}

fn wait_state(shim: &Shim, name: &str, expected: State) {
    let what = format!("the shim to say {name} is {expected:?}");
    wait_until(&what, CHANGE_WITHIN, || state(shim, name) == Some(expected));
}

fn wait_direct_health(name: &str, health: &str) {
    let what = format!("dockerd to call {name} {health}");
    wait_until(&what, CHANGE_WITHIN, || {
        direct_inspect(name, "{{if .State.Health}}{{.State.Health.Status}}{{end}}") == health
    });
}

fn docker_timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).expect("clock after 1970");
    format!("{}.{:09}", since.as_secs(), since.subsec_nanos())
}

/// The actions dockerd recorded for container `id` between `since` and now
/// (health checks left out).
fn events_since(id: &str, since: SystemTime) -> Vec<String> {
    let until = SystemTime::now();
    let out = direct_docker(&[
        "events",
        "--since",
        &docker_timestamp(since),
        "--until",
        &docker_timestamp(until),
        "--filter",
        &format!("container={id}"),
        "--format",
        "{{.Action}}",
    ]);
    out.assert_success("docker events --since --until");
    out.stdout_text()
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.starts_with("exec_") && !l.starts_with("health_status"))
        .collect()
}

/// How many of a raw `GET /containers/json` and `GET /containers/NAME/json`
/// (each on its own connection) the shim served on its fast path.
fn fast_path_count(shim: &Shim, name: &str) -> u64 {
    let before = shim.health().requests_fast_path;
    for path in ["/containers/json?all=1".to_string(), format!("/containers/{name}/json")] {
        let response = raw_request(shim.socket_path(), &bodyless_request("GET", &path));
        assert_eq!(response.status, 200, "{path}: {response:?}");
    }
    shim.health().requests_fast_path - before
}

#[test]
fn a_sleeper_reads_as_running_with_its_health_and_a_user_pause_stays_paused() {
    let names = Names::new("invisible");
    let shim = start_shim(&names);
    let sleeper = names.name("sleeper");
    let mine = names.name("mine");
    for name in [&sleeper, &mine] {
        shim.docker(&[
            "run",
            "-d",
            "--init",
            "--name",
            name,
            "--health-cmd",
            "true",
            "--health-interval",
            "1s",
            // No network: nothing but a client could wake it (issue 11
            // item 3 is the wake with no client, not this test's concern).
            "--network",
            "none",
            BUSYBOX,
            "sleep",
            "3600",
        ])
        .assert_success("docker run -d");
        wait_state(&shim, name, State::Running);
        wait_direct_health(name, "healthy");
    }
    // Nothing sleeps: ps goes as dockerd's bytes and says what dockerd says.
    let ps = shim_ps(&shim, &sleeper, &[]);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0].starts_with("running|Up ") && ps[0].ends_with("(healthy)"),
        "{ps:?}"
    );

    // With no sleeper, a listing and an inspect take the fast path (dockerd's
    // bytes, never rewritten).
    assert_eq!(
        fast_path_count(&shim, &sleeper),
        2,
        "ps and inspect left the fast path with no sleeper"
    );

    shim.sleep_container(&sleeper);
    assert_eq!(state(&shim, &sleeper), Some(State::Sleeping));
    // With one, they go to the rewriting path.
    assert_eq!(
        fast_path_count(&shim, &sleeper),
        0,
        "ps or inspect skipped the disguise"
    );
    shim.docker(&["pause", &mine]).assert_success("docker pause");
    wait_state(&shim, &mine, State::UserPaused);
    // dockerd makes the frozen container unhealthy (moby#46203).
    wait_direct_health(&sleeper, "unhealthy");

    // Through the shim: running, not paused, healthy as before the sleep.
    let format = "{{.State.Status}} {{.State.Running}} {{.State.Paused}} {{.State.Health.Status}}";
    assert_eq!(shim_inspect(&shim, &sleeper, format), "running true false healthy");
    let ps = shim_ps(&shim, &sleeper, &[]);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert!(
        ps[0].starts_with("running|Up ") && ps[0].ends_with("(healthy) (asleep)"),
        "docker ps through the shim: {ps:?}"
    );
    // A sleeper matches status=running, not status=paused.
    assert_eq!(shim_ps(&shim, &sleeper, &["status=running"]).len(), 1);
    assert!(shim_ps(&shim, &sleeper, &["status=paused"]).is_empty());
    // And a health filter, by the health shown: dockerd alone would list
    // it as unhealthy and not as healthy.
    let unhealthy = direct_docker(&[
        "ps",
        "--filter",
        &format!("name=^{sleeper}$"),
        "--filter",
        "health=unhealthy",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(unhealthy.stdout_text().trim(), sleeper, "dockerd's own view");
    let healthy = shim_ps(&shim, &sleeper, &["health=healthy"]);
    assert!(
        healthy.len() == 1 && healthy[0].ends_with("(healthy) (asleep)"),
        "docker ps --filter health=healthy through the shim: {healthy:?}"
    );
    assert!(shim_ps(&shim, &sleeper, &["health=unhealthy"]).is_empty());
    assert_eq!(shim_ps(&shim, &sleeper, &["health=healthy", "status=running"]).len(), 1);

    // The user's pause stays a pause, everywhere.
    let format = "{{.State.Status}} {{.State.Paused}}";
    assert_eq!(shim_inspect(&shim, &mine, format), "paused true");
    let ps = shim_ps(&shim, &mine, &[]);
    assert!(
        ps.len() == 1 && ps[0].starts_with("paused|") && ps[0].ends_with("(Paused)"),
        "{ps:?}"
    );
    assert_eq!(shim_ps(&shim, &mine, &["status=paused"]).len(), 1);
    assert!(shim_ps(&shim, &mine, &["status=running"]).is_empty());

    // None of this woke the sleeper; dockerd and the shim's status say so.
    assert_eq!(direct_inspect(&sleeper, format), "paused true");
    assert_eq!(state(&shim, &sleeper), Some(State::Sleeping));
    let row = shim.container(&sleeper).expect("tracked");
    assert_eq!(row.wakes, 0, "inspect or ps woke the sleeper");
    let status = direct_docker(&["ps", "--filter", &format!("name=^{sleeper}$"), "--format", "{{.State}}"]);
    assert_eq!(
        status.stdout_text().trim(),
        "paused",
        "dockerd's own socket must tell the truth"
    );

    // Awake again, it is dockerd's answer once more.
    shim.wake_container(&sleeper);
    wait_direct_health(&sleeper, "healthy");
    let ps = shim_ps(&shim, &sleeper, &[]);
    assert!(!ps[0].contains("asleep"), "{ps:?}");
    shim.docker(&["unpause", &mine]).assert_success("docker unpause");
}

#[test]
fn compose_up_twice_on_a_sleeping_project_restarts_nothing() {
    let names = Names::new("invisible-compose");
    let shim = start_shim(&names);
    let project = names.project("ic");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("compose.yaml");
    // app waits for a healthy db: the second `up` must not wait on the
    // `unhealthy` dockerd makes up for the frozen db.
    std::fs::write(
        &file,
        "services:\n\
         \x20 db:\n\
         \x20   image: forge-test/httpd:latest\n\
         \x20   pull_policy: never\n\
         \x20   init: true\n\
         \x20   healthcheck: { test: [\"CMD\", \"true\"], interval: 1s, retries: 1 }\n\
         \x20 app:\n\
         \x20   image: forge-test/busybox:latest\n\
         \x20   pull_policy: never\n\
         \x20   init: true\n\
         \x20   command: [\"sleep\", \"3600\"]\n\
         \x20   depends_on: { db: { condition: service_healthy } }\n",
    )
    .expect("write compose.yaml");
    let file = file.to_str().expect("utf-8 path").to_string();
    let compose = |args: &[&str]| {
        let mut all = vec!["compose", "-p", project.as_str(), "-f", file.as_str()];
        all.extend_from_slice(args);
        shim.docker_timeout(&all, Duration::from_secs(300))
    };
    let db = format!("{project}-db-1");
    let app = format!("{project}-app-1");

    compose(&["up", "-d"]).assert_success("compose up -d");
    wait_state(&shim, &db, State::Running);
    wait_state(&shim, &app, State::Running);
    wait_direct_health(&db, "healthy");
    shim.sleep_container(&db);
    shim.sleep_container(&app);
    wait_direct_health(&db, "unhealthy");

    let started = |name: &str| direct_inspect(name, "{{.State.StartedAt}}");
    let (db_started, app_started) = (started(&db), started(&app));
    let (db_id, app_id) = (direct_inspect(&db, "{{.Id}}"), direct_inspect(&app, "{{.Id}}"));
    let since = SystemTime::now();
    for round in ["second", "third"] {
        let out = compose(&["up", "-d"]);
        out.assert_success(&format!("compose up -d, {round} time, on the sleeping project"));
        let said = format!("{}{}", out.stdout_text(), out.stderr_text());
        assert!(!said.contains("Restart"), "compose up -d restarted a sleeper:\n{said}");
        assert!(
            said.contains("Running"),
            "compose did not see the sleepers running:\n{said}"
        );
    }
    assert_eq!(started(&db), db_started, "db was restarted");
    assert_eq!(started(&app), app_started, "app was restarted");
    for (name, id) in [(&db, &db_id), (&app, &app_id)] {
        let events = events_since(id, since);
        let restarts: Vec<_> = events
            .iter()
            .filter(|e| ["create", "start", "restart", "stop", "kill", "die", "destroy"].contains(&e.as_str()))
            .collect();
        assert!(restarts.is_empty(), "{name}: dockerd recorded {events:?}");
        // compose's reads woke nothing. (A freshly slept container may
        // still be woken by "network" with no client: issue 11 item 3, not
        // this feature; any other trigger would be compose's doing.)
        let row = shim.container(name).expect("tracked");
        if let Some(wake) = &row.last_wake {
            assert_eq!(wake.trigger, "network", "{name} was woken by compose: {events:?}");
        } else {
            assert_eq!(direct_inspect(name, "{{.State.Paused}}"), "true", "{name} was woken");
            assert_eq!(row.state, State::Sleeping);
        }
    }
    let ps = compose(&["ps", "--format", "{{.Service}} {{.State}}"]);
    ps.assert_success("compose ps");
    let mut lines: Vec<_> = ps.stdout_text().lines().map(str::to_string).collect();
    lines.sort();
    assert_eq!(lines, ["app running", "db running"], "compose ps through the shim");

    compose(&["down", "-t", "1"]).assert_success("compose down");
}
