//! Sleep and wake, through the real binary in front of the real dockerd:
//! idle containers are paused, and `docker exec`, `docker unpause`, `docker
//! start`, compose and network traffic (published ports and
//! container-to-container) wake them transparently; open sessions, `high`
//! containers and containers the user paused are left alone; the sleep
//! survives `kill -9` of the shim; memory is squeezed to swap and comes back
//! intact; deep sleepers are started on demand; the shim's API, event stream
//! and CLI tell the truth.
//!
//! **Every shim here sleeps only its own test's containers.** The shim tracks
//! every container on the host, and other test binaries run at the same
//! time, so each config makes `high` (never sleeps) the default class and
//! opts in, with a `classify:` rule, only the names under its test's unique
//! prefix. Labels are never used to opt in: every shim on the host reads
//! them. Timeouts are short (`idle_timeout: 2s`, `check_interval: 500ms`);
//! waits poll with generous deadlines, and nothing asserts on a duration.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use forge_shim::{State, StatusRow};

use common::*;

/// The test classes' idle timeout.
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Deadline for an idle container to be paused (idle timeout, one sample,
/// a pause), generous for a loaded 2-core machine.
const ASLEEP_WITHIN: Duration = Duration::from_secs(45);
/// Deadline for a state change the shim makes on its own (a wake, a
/// reconcile, a stop).
const CHANGE_WITHIN: Duration = Duration::from_secs(45);

// ---------------------------------------------------------------------------
// the shim's config

/// The config every test uses: standards off (containers run as the image
/// says), `high` by default, and class `sleepy` (2 s idle timeout, squeezed
/// to 16M) for this test's names only. `extra_classes` and `extra_rules`
/// (YAML, already indented) come before the generic ones, so a more specific
/// rule wins; `auto_sleep_extra` is appended to the `auto_sleep` block.
fn config_with(names: &Names, extra_classes: &str, extra_rules: &str, auto_sleep_extra: &str) -> String {
    let prefix = names.prefix();
    format!(
        "standards: {{ mode: off }}\n\
         default_class: high\n\
         auto_sleep:\n  enabled: true\n  check_interval: 500ms\n  min_uptime: 0\n  idle_threshold: 0.1\n  network_idle_rate: 1K\n{auto_sleep_extra}\
         classes:\n  sleepy:\n    sleep_policy: {{ enabled: true, idle_timeout: 2s, memory_reservation: 16M }}\n{extra_classes}\
         classify:\n{extra_rules}  - match: {{ name: \"{prefix}-*\" }}\n    class: sleepy\n"
    )
}

fn start_shim(names: &Names) -> Shim {
    require_dockerd();
    Shim::start(&config_with(names, "", "", ""))
}

// ---------------------------------------------------------------------------
// containers and dockerd

/// `docker run -d --init` busybox `sleep 3600` through the shim (the init
/// makes `docker stop` quick). Returns its name.
fn run_sleeper(shim: &Shim, names: &Names, what: &str, extra: &[&str]) -> String {
    let name = names.name(what);
    let mut args = vec!["run", "-d", "--init", "--name", name.as_str()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[BUSYBOX, "sleep", "3600"]);
    shim.docker(&args).assert_success("docker run -d");
    wait_tracked(shim, &name);
    name
}

/// `docker run -d --init` busybox running `command` through the shim.
fn run_container_cmd(shim: &Shim, names: &Names, what: &str, command: &[&str]) -> String {
    let name = names.name(what);
    let mut args = vec!["run", "-d", "--init", "--name", name.as_str(), BUSYBOX];
    args.extend_from_slice(command);
    shim.docker(&args).assert_success("docker run -d");
    wait_tracked(shim, &name);
    name
}

/// `docker run -d` of the test httpd (port 8080) through the shim.
fn run_httpd(shim: &Shim, names: &Names, what: &str, extra: &[&str]) -> String {
    let name = names.name(what);
    let mut args = vec!["run", "-d", "--init", "--name", name.as_str()];
    args.extend_from_slice(extra);
    args.push(HTTPD);
    shim.docker(&args).assert_success("docker run -d httpd");
    wait_tracked(shim, &name);
    name
}

/// Waits until the shim has seen the container start (it learns of
/// containers from dockerd's events, a moment after `docker run` returns).
fn wait_tracked(shim: &Shim, name: &str) {
    let what = format!("the shim to track {name} as started");
    wait_until(&what, CHANGE_WITHIN, || {
        state(shim, name).is_some_and(|state| state != State::Stopped)
    });
}

/// `docker inspect -f FORMAT` straight from dockerd.
fn inspect(name: &str, format: &str) -> String {
    let out = direct_docker(&["inspect", "-f", format, name]);
    out.assert_success("docker inspect");
    out.stdout_text().trim().to_string()
}

fn is_paused(name: &str) -> bool {
    inspect(name, "{{.State.Paused}}") == "true"
}

fn is_running_unpaused(name: &str) -> bool {
    inspect(name, "{{.State.Running}} {{.State.Paused}}") == "true false"
}

fn container_id(name: &str) -> String {
    inspect(name, "{{.Id}}")
}

/// Seconds since the epoch with nanoseconds, as `docker events` takes them.
fn docker_timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).expect("clock after 1970");
    format!("{}.{:09}", since.as_secs(), since.subsec_nanos())
}

/// How many `event` events dockerd recorded for container `id` between
/// `since` and `until` (asked of dockerd directly; `until` is in the past,
/// so the query ends by itself).
fn count_events(id: &str, event: &str, since: SystemTime, until: SystemTime) -> usize {
    let out = direct_docker(&[
        "events",
        "--since",
        &docker_timestamp(since),
        "--until",
        &docker_timestamp(until),
        "--filter",
        &format!("container={id}"),
        "--filter",
        &format!("event={event}"),
        "--format",
        "{{.Action}}",
    ]);
    out.assert_success("docker events --since --until");
    out.stdout_text().lines().filter(|l| l.trim() == event).count()
}

/// `docker port NAME 8080` through the shim: `127.0.0.1:PORT`.
fn published_address(shim: &Shim, name: &str) -> String {
    let out = shim.docker(&["port", name, "8080"]);
    out.assert_success("docker port");
    let address = out.stdout_text().lines().next().unwrap_or_default().trim().to_string();
    assert!(address.starts_with("127.0.0.1:"), "docker port: {address:?}");
    address
}

/// A plain HTTP/1.0 GET of `/` at `address`; the whole response. The read
/// deadline is a hang detector.
fn http_get(address: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

// ---------------------------------------------------------------------------
// the shim's view

/// The shim's row for the container `name`; panics when it has none.
fn row(shim: &Shim, name: &str) -> StatusRow {
    shim.container(name)
        .unwrap_or_else(|| panic!("the shim does not track {name}"))
}

/// The shim's state of `name`; `None` while it does not track it.
fn state(shim: &Shim, name: &str) -> Option<State> {
    shim.container(name).map(|row| row.state)
}

fn wakes(shim: &Shim, name: &str) -> u64 {
    row(shim, name).wakes
}

fn last_wake_trigger(shim: &Shim, name: &str) -> String {
    row(shim, name).last_wake.map(|wake| wake.trigger).unwrap_or_default()
}

fn wait_state(shim: &Shim, name: &str, expected: State, timeout: Duration) {
    let what = format!("the shim to say {name} is {expected:?}");
    wait_until(&what, timeout, || state(shim, name) == Some(expected));
}

/// Waits until the shim has put `name` to sleep: dockerd says paused and the
/// shim says sleeping.
fn wait_asleep(shim: &Shim, name: &str) {
    let what = format!("{name} to be put to sleep (paused, state sleeping)");
    wait_until(&what, ASLEEP_WITHIN, || {
        is_paused(name) && state(shim, name) == Some(State::Sleeping)
    });
}

/// Checks `check` every 100 ms for `window`; panics the first time it fails.
/// This is a "stays so" check, never a timing assertion.
fn assert_stays(what: &str, window: Duration, mut check: impl FnMut() -> bool) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        assert!(check(), "{what}: no longer true");
        thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// swap

/// A swap file of this test process, switched off and removed when dropped,
/// even when the test fails. Its own file, so that no other user of
/// `scripts/with-swap.sh` is affected.
struct Swap {
    file: String,
}

impl Swap {
    fn on(size: &str) -> Swap {
        let swap = Swap {
            file: format!("/var/tmp/forge-shim-sleep-test-{}.swap", std::process::id()),
        };
        swap.script(&["on", size]).assert_success("with-swap.sh on");
        swap
    }

    fn script(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("bash");
        cmd.arg(repo_path("scripts/with-swap.sh"))
            .args(args)
            .env("FORGE_SWAPFILE", &self.file)
            .stdin(Stdio::null());
        run_with_timeout(cmd, Duration::from_secs(300))
    }
}

impl Drop for Swap {
    fn drop(&mut self) {
        let out = self.script(&["off"]);
        if !out.status.success() {
            eprintln!("with-swap.sh off failed: {}", out.stderr_text());
        }
    }
}

// ---------------------------------------------------------------------------
// the basic cycle

#[test]
fn idle_container_sleeps_and_exec_wakes_it() {
    let names = Names::new("idle-exec");
    let shim = start_shim(&names);
    let c = run_sleeper(&shim, &names, "c", &[]);

    wait_asleep(&shim, &c);
    assert_eq!(inspect(&c, "{{.State.Paused}}"), "true");
    let out = forge_cli(&shim, &["status", "--json"]);
    out.assert_success("forge-shim status --json");
    let status: Vec<StatusRow> = serde_json::from_str(&out.stdout_text())
        .unwrap_or_else(|e| panic!("status --json is not a list of rows ({e}): {}", out.stdout_text()));
    let mine = status
        .iter()
        .find(|r| r.name == c)
        .unwrap_or_else(|| panic!("{c} not in status --json: {status:#?}"));
    assert_eq!(mine.state, State::Sleeping, "{mine:?}");
    assert_eq!(mine.class, "sleepy", "{mine:?}");
    assert!(mine.sleeps, "{mine:?}");
    assert_eq!(mine.wakes, 0, "{mine:?}");
    assert_eq!(mine.id, container_id(&c));

    let out = shim.docker(&["exec", &c, "echo", "awake"]);
    out.assert_success("docker exec on a sleeping container");
    assert_eq!(out.stdout_text().trim(), "awake");
    assert!(is_running_unpaused(&c), "exec left {c} paused");
    let mine = row(&shim, &c);
    assert_eq!(mine.wakes, 1, "{mine:?}");
    assert_eq!(
        mine.last_wake.as_ref().map(|w| w.trigger.as_str()),
        Some("exec"),
        "{mine:?}"
    );

    // And it falls asleep again when idle.
    wait_asleep(&shim, &c);
    shim.assert_no_panic();
}

#[test]
fn twenty_concurrent_execs_cause_one_unpause() {
    let names = Names::new("concurrent-exec");
    let shim = start_shim(&names);
    let c = run_sleeper(&shim, &names, "c", &[]);
    let id = container_id(&c);
    wait_asleep(&shim, &c);

    let since = SystemTime::now();
    let workers: Vec<_> = (0..20)
        .map(|i| {
            let cmd = shim.docker_command(&["exec", &c, "echo", &format!("exec-{i}")]);
            thread::spawn(move || (i, run_with_timeout(cmd, DOCKER_TIMEOUT)))
        })
        .collect();
    for worker in workers {
        let (i, out) = worker.join().expect("exec thread");
        out.assert_success(&format!("concurrent docker exec #{i}"));
        assert_eq!(out.stdout_text().trim(), format!("exec-{i}"));
    }
    let until = SystemTime::now();
    assert!(is_running_unpaused(&c));

    // dockerd's own record: exactly one unpause for the 20 callers.
    let unpauses = count_events(&id, "unpause", since, until);
    assert_eq!(unpauses, 1, "unpause events for 20 concurrent execs");
    assert_eq!(wakes(&shim, &c), 1);
}

// ---------------------------------------------------------------------------
// network traffic

#[test]
fn http_to_a_published_port_wakes_a_sleeper() {
    let names = Names::new("http-published");
    let shim = start_shim(&names);
    let web = run_httpd(&shim, &names, "web", &["-p", "127.0.0.1::8080"]);
    let address = published_address(&shim, &web);
    wait_until("httpd answers on its published port", Duration::from_secs(60), || {
        http_get(&address).is_ok_and(|r| r.contains("forge-test-ok"))
    });
    wait_asleep(&shim, &web);

    // The connection is queued by the kernel while the container is frozen
    // and served once the shim wakes it.
    let response = http_get(&address).expect("GET to a sleeping container");
    assert!(response.starts_with("HTTP/1."), "{response:?}");
    assert!(response.contains("forge-test-ok"), "{response:?}");
    wait_until("the container to be running", CHANGE_WITHIN, || {
        is_running_unpaused(&web)
    });
    assert_eq!(state(&shim, &web), Some(State::Running));
    assert!(wakes(&shim, &web) >= 1);
    let trigger = last_wake_trigger(&shim, &web);
    assert!(trigger == "connection" || trigger == "network", "woken by {trigger:?}");
}

#[test]
fn http_from_another_container_on_the_network_wakes_a_sleeper() {
    let names = Names::new("http-network");
    let shim = start_shim(&names);
    let network = names.name("net");
    shim.docker(&["network", "create", &network])
        .assert_success("docker network create");
    let server = run_httpd(&shim, &names, "srv", &["--network", &network]);
    wait_asleep(&shim, &server);

    // The client must not fall asleep itself while it waits.
    let client = names.name("client");
    let url = format!("http://{server}:8080/");
    let out = shim.docker(&[
        "run",
        "--rm",
        "--name",
        &client,
        "--label",
        "forge.sleep=false",
        "--network",
        &network,
        BUSYBOX,
        "wget",
        "-qO-",
        &url,
    ]);
    out.assert_success("wget from another container");
    assert!(out.stdout_text().contains("forge-test-ok"), "{}", out.stdout_text());
    wait_until("the server to be running", CHANGE_WITHIN, || {
        is_running_unpaused(&server)
    });
    let trigger = last_wake_trigger(&shim, &server);
    assert!(trigger == "connection" || trigger == "network", "woken by {trigger:?}");
}

/// What must never wake a sleeper: its own kernel's chatter after its
/// interface came up (IPv6 duplicate address detection, router
/// solicitations, MLD reports, sent for seconds after the start), and other
/// containers coming and going on the same bridge. Sleepers put to sleep
/// about two seconds after they started stay asleep with no client. A new
/// neighbour's multicast (router solicitation, MLD, DAD), which the bridge
/// floods to every port, adds bytes to each sleeper's veth but no unicast
/// IP bytes in its namespace, and only those wake it (#11).
#[test]
fn no_wake_without_a_client() {
    let names = Names::new("no-client");
    let shim = start_shim(&names);
    let sleepers: Vec<String> = (0..3)
        .map(|i| run_sleeper(&shim, &names, &format!("s{i}"), &[]))
        .collect();
    for name in &sleepers {
        wait_asleep(&shim, name);
    }
    // Neighbours start and stop on the default bridge meanwhile.
    for i in 0..3 {
        let neighbour = names.name(&format!("neighbour{i}"));
        direct_docker(&[
            "run",
            "--rm",
            "--name",
            &neighbour,
            BUSYBOX,
            "ping",
            "-c",
            "2",
            "-W",
            "1",
            "172.17.0.1",
        ]);
    }
    // A minute with no client; `scripts/bench-wake.sh --only many
    // --cpu-window 3600` holds 200 sleepers for an hour and names any woken.
    assert_stays("every sleeper asleep, no wake", Duration::from_secs(60), || {
        sleepers
            .iter()
            .all(|name| state(&shim, name) == Some(State::Sleeping) && wakes(&shim, name) == 0)
    });
    for name in &sleepers {
        assert!(is_paused(name), "{name} is not paused on dockerd");
    }
}

#[test]
fn traffic_on_an_open_connection_wakes_a_sleeper() {
    let names = Names::new("open-conn");
    let shim = start_shim(&names);
    // An echo server: one connection, kept open across the sleep.
    let echo = run_container_cmd(&shim, &names, "echo", &["nc", "-l", "-p", "9000", "-e", "cat"]);
    let ip = inspect(&echo, "{{.NetworkSettings.IPAddress}}");
    let mut stream = TcpStream::connect((ip.as_str(), 9000)).expect("connect to the echo server");
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut reply = [0u8; 5];
    stream.write_all(b"ping\n").unwrap();
    stream.read_exact(&mut reply).expect("echo before the sleep");
    assert_eq!(&reply, b"ping\n");
    wait_asleep(&shim, &echo);

    // No new connection for conntrack to see: only the bytes on the
    // established one can wake it, and they must all come back.
    let payload: Vec<u8> = (0..2048u32).map(|i| b'a' + (i % 26) as u8).collect();
    stream.write_all(&payload).unwrap();
    let mut back = vec![0u8; payload.len()];
    stream.read_exact(&mut back).expect("echo from the woken container");
    assert_eq!(back, payload);
    assert!(is_running_unpaused(&echo));
    assert_eq!(last_wake_trigger(&shim, &echo), "network");
}

// ---------------------------------------------------------------------------
// what must not sleep, or not be woken

#[test]
fn open_exec_session_keeps_the_container_awake() {
    let names = Names::new("exec-session");
    let shim = start_shim(&names);
    // The session opens right after `docker run` returns, maybe before
    // dockerd's events have told the shim about the container: it must
    // count all the same.
    let c = names.name("c");
    shim.docker(&["run", "-d", "--init", "--name", &c, BUSYBOX, "sleep", "3600"])
        .assert_success("docker run -d");

    let mut cmd = shim.docker_command(&["exec", "-i", &c, "cat"]);
    cmd.stdin(Stdio::piped());
    let mut session = spawn_streaming(cmd);
    let mut stdin = session.child.stdin.take().expect("stdin is piped");
    // The session is live once cat echoes a line back.
    writeln!(stdin, "hello").expect("write to docker exec -i");
    stdin.flush().expect("flush");
    session.wait_for_line("the echo of hello", DOCKER_TIMEOUT, |l| l == "hello");
    assert!(row(&shim, &c).in_use >= 1, "the session is not counted in use");

    // Idle for three idle timeouts, but never paused under the session.
    assert_stays(
        &format!("{c} awake under an open exec -i session"),
        IDLE_TIMEOUT * 3,
        || {
            let seen = inspect(&c, "{{.State.Running}} {{.State.Paused}}");
            if seen != "true false" {
                eprintln!("{c}: running paused = {seen}; shim: {:?}", row(&shim, &c));
            }
            seen == "true false"
        },
    );
    assert_eq!(state(&shim, &c), Some(State::Running));
    writeln!(stdin, "still there").expect("write to docker exec -i");
    stdin.flush().expect("flush");
    session.wait_for_line("the echo of the second line", DOCKER_TIMEOUT, |l| l == "still there");

    // Closing stdin ends cat, the exec, and the session.
    drop(stdin);
    let status = session
        .wait_exit(DOCKER_TIMEOUT)
        .expect("docker exec -i exits after stdin closes");
    assert!(
        status.success(),
        "docker exec -i: {status:?}: {}",
        session.stderr_text()
    );
    wait_asleep(&shim, &c);
}

#[test]
fn high_and_opted_out_containers_never_sleep() {
    let names = Names::new("high");
    let shim = start_shim(&names);
    let control = run_sleeper(&shim, &names, "control", &[]);
    let high = run_sleeper(&shim, &names, "high", &["--label", "forge.class=high"]);
    let opted_out = run_sleeper(&shim, &names, "optout", &["--label", "forge.sleep=false"]);

    // The control shows the shim does put this test's containers to sleep.
    wait_asleep(&shim, &control);
    assert_stays("high and opted-out containers awake", IDLE_TIMEOUT * 3, || {
        is_running_unpaused(&high) && is_running_unpaused(&opted_out)
    });
    let high_row = row(&shim, &high);
    assert_eq!(high_row.class, "high", "{high_row:?}");
    assert!(!high_row.sleeps, "{high_row:?}");
    assert_eq!(high_row.state, State::Running, "{high_row:?}");
    let opted_out_row = row(&shim, &opted_out);
    assert_eq!(opted_out_row.class, "sleepy", "{opted_out_row:?}");
    assert!(!opted_out_row.sleeps, "{opted_out_row:?}");
    assert_eq!(opted_out_row.state, State::Running, "{opted_out_row:?}");
}

#[test]
fn user_paused_container_is_never_woken_and_unpause_hands_it_back() {
    let names = Names::new("user-pause");
    let shim = start_shim(&names);
    // A longer idle timeout (a label: it opts nothing in anywhere) leaves
    // time to pause it before the shim would.
    let c = run_sleeper(&shim, &names, "c", &["--label", "forge.sleep.idle-timeout=6s"]);
    direct_docker(&["pause", &c]).assert_success("docker pause, directly against dockerd");
    wait_state(&shim, &c, State::UserPaused, CHANGE_WITHIN);

    // Several check intervals pass; it stays paused and the user's.
    assert_stays(&format!("{c} paused by its user"), Duration::from_secs(3), || {
        is_paused(&c) && state(&shim, &c) == Some(State::UserPaused)
    });
    // An exec through the shim gets dockerd's own refusal, not a wake.
    let out = shim.docker(&["exec", &c, "true"]);
    assert!(!out.status.success(), "exec on a user-paused container succeeded");
    assert!(out.stderr_text().contains("is paused"), "stderr: {}", out.stderr_text());
    assert_stays(
        &format!("{c} still paused after the exec"),
        Duration::from_secs(2),
        || is_paused(&c) && state(&shim, &c) == Some(State::UserPaused),
    );
    assert_eq!(wakes(&shim, &c), 0);

    // `docker unpause` hands it back: running, then asleep as usual.
    direct_docker(&["unpause", &c]).assert_success("docker unpause, directly");
    wait_until("the shim to see it running", CHANGE_WITHIN, || {
        matches!(state(&shim, &c), Some(State::Running | State::Sleeping))
    });
    wait_asleep(&shim, &c);

    // A `docker pause` of a container the shim holds asleep (through the
    // shim) makes it the user's: it stays paused, exec is refused.
    shim.docker(&["pause", &c])
        .assert_success("docker pause of a sleeping container");
    wait_state(&shim, &c, State::UserPaused, CHANGE_WITHIN);
    assert!(is_paused(&c));
    let out = shim.docker(&["exec", &c, "true"]);
    assert!(!out.status.success(), "exec on a user-paused container succeeded");
    assert!(out.stderr_text().contains("is paused"), "stderr: {}", out.stderr_text());
    shim.docker(&["unpause", &c])
        .assert_success("docker unpause through the shim");
    wait_until("it runs again", CHANGE_WITHIN, || {
        is_running_unpaused(&c) || state(&shim, &c) == Some(State::Sleeping)
    });
    assert_eq!(wakes(&shim, &c), 0, "the user's pause and unpause are no wakes");
}

// ---------------------------------------------------------------------------
// restarts

#[test]
fn sleeping_container_wakes_on_exec_after_kill_9_of_the_shim() {
    let names = Names::new("kill9");
    let mut shim = start_shim(&names);
    let c = run_sleeper(&shim, &names, "c", &[]);
    wait_asleep(&shim, &c);

    shim.kill9();
    assert!(is_paused(&c), "nobody wakes it while the shim is down");
    shim.respawn();
    // Rebuilt from the state file and dockerd: still the shim's sleeper.
    wait_state(&shim, &c, State::Sleeping, CHANGE_WITHIN);

    let out = shim.docker(&["exec", &c, "echo", "awake"]);
    out.assert_success("docker exec after kill -9 and restart");
    assert_eq!(out.stdout_text().trim(), "awake");
    assert!(is_running_unpaused(&c));
    assert_eq!(state(&shim, &c), Some(State::Running));
    assert_eq!(wakes(&shim, &c), 1);
    assert_eq!(last_wake_trigger(&shim, &c), "exec");
}

// ---------------------------------------------------------------------------
// memory

#[test]
fn memory_squeeze_to_swap_keeps_the_data() {
    let swap = Swap::on("1G");
    let names = Names::new("squeeze");
    let shim = start_shim(&names);
    // 150 MiB of incompressible shmem, its checksum, then nothing to do.
    let name = names.name("m");
    shim.docker(&[
        "run",
        "-d",
        "--init",
        "--name",
        &name,
        "--shm-size",
        "256m",
        BUSYBOX,
        "sh",
        "-c",
        "dd if=/dev/urandom of=/dev/shm/blob bs=1M count=150 2>/dev/null && sha256sum /dev/shm/blob > /sum && exec sleep 3600",
    ])
    .assert_success("docker run the memory holder");
    let id = container_id(&name);
    // Busy (CPU) until the checksum is written, so asleep means written.
    wait_asleep(&shim, &name);

    let mut memory_running = 0;
    let mut memory_asleep = u64::MAX;
    wait_until("the squeeze to bring memory below 30%", CHANGE_WITHIN, || {
        let mine = row(&shim, &name);
        memory_running = mine.memory_running.unwrap_or(0);
        memory_asleep = mine.memory_asleep.unwrap_or(u64::MAX);
        memory_running > 0 && (memory_asleep as f64) < 0.3 * memory_running as f64
    });
    assert!(
        memory_running >= 150 << 20,
        "memory before sleep: {memory_running} bytes"
    );
    // The kernel's own figure agrees (cgroup v1 here).
    let usage_file = format!("/sys/fs/cgroup/memory/docker/{id}/memory.usage_in_bytes");
    if let Ok(text) = std::fs::read_to_string(&usage_file) {
        let usage: u64 = text.trim().parse().expect("memory.usage_in_bytes");
        assert!(
            (usage as f64) < 0.3 * memory_running as f64,
            "cgroup usage asleep {usage} vs {memory_running} before"
        );
    }
    eprintln!("squeeze: {memory_running} bytes running, {memory_asleep} asleep");

    let out = shim.docker(&["exec", &name, "sh", "-c", "sha256sum /dev/shm/blob; cat /sum"]);
    out.assert_success("checksum after wake");
    let text = out.stdout_text();
    let sums: Vec<String> = text.lines().map(first_word).collect();
    assert_eq!(sums.len(), 2, "{text}");
    assert_eq!(sums[0], sums[1], "the data changed while asleep");
    assert!(is_running_unpaused(&name));

    drop(shim);
    names.cleanup();
    drop(swap);
}

#[test]
fn a_short_nap_doubles_the_next_idle_timeout() {
    require_dockerd();
    let names = Names::new("nap");
    let prefix = names.prefix().to_string();
    let shim = Shim::start(&config_with(
        &names,
        "  nappy:\n    sleep_policy: { enabled: true, idle_timeout: 2s, min_sleep_time: 1h }\n",
        &format!("  - match: {{ name: \"{prefix}-nap*\" }}\n    class: nappy\n"),
        "",
    ));
    let c = run_sleeper(&shim, &names, "nap", &[]);
    assert_eq!(row(&shim, &c).idle_timeout_s, Some(2.0));
    wait_asleep(&shim, &c);

    // Woken long before min_sleep_time: the sleep did not pay off, so the
    // container must stay idle twice as long before the next one.
    shim.docker(&["exec", &c, "true"])
        .assert_success("docker exec on a sleeper");
    assert_eq!(row(&shim, &c).idle_timeout_s, Some(4.0));
    wait_asleep(&shim, &c);
    shim.docker(&["exec", &c, "true"])
        .assert_success("docker exec on a sleeper");
    assert_eq!(row(&shim, &c).idle_timeout_s, Some(8.0));
}

// ---------------------------------------------------------------------------
// deep sleep

#[test]
fn deep_sleeper_is_started_by_exec() {
    require_dockerd();
    let names = Names::new("deep");
    let prefix = names.prefix().to_string();
    let shim = Shim::start(&config_with(
        &names,
        "  deep:\n    sleep_policy: { enabled: true, idle_timeout: 2s, deep_sleep: true }\n",
        &format!("  - match: {{ name: \"{prefix}-deep*\" }}\n    class: deep\n"),
        "  max_sleep_time: 2s\n",
    ));
    let c = run_sleeper(&shim, &names, "deep", &[]);
    assert_eq!(row(&shim, &c).class, "deep");

    wait_until("the shim to stop the long sleeper", Duration::from_secs(90), || {
        inspect(&c, "{{.State.Status}}") == "exited"
    });
    wait_state(&shim, &c, State::DeepSleep, CHANGE_WITHIN);

    // Through the shim it reads as running: plain `docker ps` lists it,
    // inspect says running, `status=exited` does not list it, and reading
    // it does not start it. dockerd's own socket tells the truth.
    let ps = |args: &[&str]| {
        let filter = format!("name=^{c}$");
        let mut all = vec!["ps", "--filter", filter.as_str()];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--format", "{{.State}}|{{.Status}}"]);
        let out = shim.docker(&all);
        out.assert_success("docker ps through the shim");
        out.stdout_text().trim().to_string()
    };
    let listed = ps(&[]);
    assert!(
        listed.starts_with("running|Up ") && listed.ends_with(" (asleep)"),
        "plain docker ps through the shim: {listed:?}"
    );
    assert_eq!(ps(&["--filter", "status=running"]).lines().count(), 1);
    assert_eq!(ps(&["-a", "--filter", "status=exited"]), "");
    let out = shim.docker(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.Running}} {{.State.ExitCode}}",
        &c,
    ]);
    out.assert_success("docker inspect through the shim");
    assert_eq!(out.stdout_text().trim(), "running true 0");
    assert_eq!(inspect(&c, "{{.State.Status}}"), "exited", "dockerd's own view");
    assert_eq!(state(&shim, &c), Some(State::DeepSleep), "ps or inspect started it");
    assert_eq!(wakes(&shim, &c), 0);

    let out = shim.docker(&["exec", &c, "echo", "awake"]);
    out.assert_success("docker exec on a deep sleeper");
    assert_eq!(out.stdout_text().trim(), "awake");
    assert!(is_running_unpaused(&c));
    assert_eq!(state(&shim, &c), Some(State::Running));
    assert_eq!(wakes(&shim, &c), 1);
}

/// What a deep sleep must never do: delete a `--rm` container, or lose the
/// files in its tmpfs. Both stay paused, past `max_sleep_time`, with their
/// status saying why; the tmpfs file is there after the wake.
#[test]
fn deep_sleep_never_deletes_a_container_or_loses_its_tmpfs_files() {
    require_dockerd();
    let names = Names::new("deep-safe");
    let prefix = names.prefix().to_string();
    let shim = Shim::start(&config_with(
        &names,
        "  deep:\n    sleep_policy: { enabled: true, idle_timeout: 2s, deep_sleep: true }\n",
        &format!("  - match: {{ name: \"{prefix}-*\" }}\n    class: deep\n"),
        "  max_sleep_time: 2s\n",
    ));
    let removed = run_sleeper(&shim, &names, "rm", &["--rm"]);
    // A tmpfs at /tmp (as the standards mount one), with a file in it.
    let tmpfs = names.name("tmpfs");
    shim.docker(&[
        "run",
        "-d",
        "--init",
        "--name",
        &tmpfs,
        "--tmpfs",
        "/tmp",
        BUSYBOX,
        "sh",
        "-c",
        "echo kept > /tmp/state && exec sleep 3600",
    ])
    .assert_success("docker run -d --tmpfs /tmp");
    wait_tracked(&shim, &tmpfs);
    // The must-do side: an empty tmpfs does not hold a deep sleep back.
    let empty = names.name("empty");
    shim.docker(&[
        "run", "-d", "--init", "--name", &empty, "--tmpfs", "/tmp", BUSYBOX, "sleep", "3600",
    ])
    .assert_success("docker run -d --tmpfs /tmp (empty)");
    wait_tracked(&shim, &empty);
    for (name, why) in [(&removed, "AutoRemove"), (&tmpfs, "/tmp holds files")] {
        wait_until(
            &format!("{name}'s deep sleep to be refused"),
            Duration::from_secs(90),
            || {
                shim.container(name)
                    .and_then(|row| row.deep_sleep_blocked)
                    .is_some_and(|blocked| blocked.contains(why))
            },
        );
        assert!(is_paused(name), "{name} is not paused");
        assert_eq!(state(&shim, name), Some(State::Sleeping));
    }
    wait_until("the empty-tmpfs sleeper's deep sleep", Duration::from_secs(90), || {
        inspect(&empty, "{{.State.Status}}") == "exited"
    });
    let out = shim.docker(&["exec", &tmpfs, "cat", "/tmp/state"]);
    out.assert_success("docker exec on the tmpfs sleeper");
    assert_eq!(out.stdout_text().trim(), "kept");
    assert_eq!(inspect(&removed, "{{.State.Status}}"), "paused");
}

// ---------------------------------------------------------------------------
// compose

#[test]
fn compose_depends_on_wakes_the_sleeping_dependency() {
    let names = Names::new("compose-sleep");
    let shim = start_shim(&names);
    let project = names.project("cs");
    let file = repo_path("examples/compose-sleep/compose.yaml");
    let file = file.to_str().expect("utf-8 path");
    let compose = |args: &[&str]| {
        let mut all = vec!["compose", "-p", project.as_str(), "-f", file];
        all.extend_from_slice(args);
        shim.docker_timeout(&all, Duration::from_secs(300))
    };
    let db = format!("{project}-db-1");
    let app = format!("{project}-app-1");

    compose(&["up", "-d"]).assert_success("compose up -d");
    wait_asleep(&shim, &db);
    wait_asleep(&shim, &app);
    assert_eq!(row(&shim, &app).service.as_deref(), Some("app"));

    // `up -d` of a sleeping stack sees it running (the disguise) and
    // restarts nothing; tests/invisible.rs checks that in detail.
    let out = compose(&["up", "-d"]);
    out.assert_success("compose up -d of the sleeping stack");
    assert!(!out.stderr_text().contains("Restart"), "{}", out.stderr_text());
    wait_asleep(&shim, &db);
    wait_asleep(&shim, &app);

    // `exec` wakes app; app's request to db wakes db (a new connection).
    let out = compose(&["exec", "-T", "app", "wget", "-qO-", "http://db:8080/"]);
    out.assert_success("compose exec app wget db");
    assert!(out.stdout_text().contains("forge-test-ok"), "{}", out.stdout_text());
    wait_asleep(&shim, &db);
    wait_asleep(&shim, &app);

    // The realistic restart of a dependent: stop, then start. compose starts
    // db itself; either way it runs when app does.
    compose(&["stop", "app"]).assert_success("compose stop app");
    assert_eq!(inspect(&app, "{{.State.Status}}"), "exited");
    assert!(is_paused(&db), "stopping app woke db");
    compose(&["start", "app"]).assert_success("compose start app");
    assert!(is_running_unpaused(&app), "app is not running after compose start");
    assert!(is_running_unpaused(&db), "db is still asleep after compose start app");
    wait_asleep(&shim, &db);
    wait_asleep(&shim, &app);

    // `compose restart app` restarts only app: the shim wakes its
    // dependency before it.
    compose(&["restart", "app"]).assert_success("compose restart app");
    assert!(is_running_unpaused(&app));
    assert!(is_running_unpaused(&db), "db is still asleep after compose restart app");
    assert_eq!(last_wake_trigger(&shim, &db), "depends_on");
    wait_asleep(&shim, &db);
    wait_asleep(&shim, &app);

    // A plain `docker start` of the dependent (no compose to start db):
    // the shim wakes db from the compose depends_on label.
    shim.docker(&["stop", &app]).assert_success("docker stop app");
    assert!(is_paused(&db));
    shim.docker(&["start", &app]).assert_success("docker start app");
    assert!(is_running_unpaused(&db), "db is still asleep after docker start app");
    assert_eq!(last_wake_trigger(&shim, &db), "depends_on");

    compose(&["down", "-t", "1"]).assert_success("compose down");
}

// ---------------------------------------------------------------------------
// the shim's API, event stream and CLI

#[test]
fn events_stream_shows_sleep_and_wake() {
    let names = Names::new("forge-events");
    let shim = start_shim(&names);
    let mut events = shim.events();
    assert_eq!(events.head().header("content-type"), Some("application/x-ndjson"));

    let c = run_sleeper(&shim, &names, "c", &[]);
    let sleep = events.wait_for("its sleep", |t| t.name == c && t.transition == "sleep");
    assert_eq!(sleep.from, State::Running, "{sleep:?}");
    assert_eq!(sleep.to, State::Sleeping, "{sleep:?}");
    assert_eq!(sleep.trigger, "idle", "{sleep:?}");
    assert_eq!(sleep.id, container_id(&c));
    assert!(sleep.error.is_none(), "{sleep:?}");

    shim.docker(&["exec", &c, "true"]).assert_success("docker exec");
    let wake = events.wait_for("its wake", |t| t.name == c && t.transition == "wake");
    assert_eq!(wake.from, State::Sleeping, "{wake:?}");
    assert_eq!(wake.to, State::Running, "{wake:?}");
    assert_eq!(wake.trigger, "exec", "{wake:?}");
    assert!(wake.duration_ms >= 0.0, "{wake:?}");
}

#[test]
fn cli_sleep_and_wake_by_name() {
    let names = Names::new("cli");
    let shim = start_shim(&names);
    // Never idle long enough to sleep by itself: only the CLI moves it.
    let c = run_sleeper(&shim, &names, "c", &["--label", "forge.sleep.idle-timeout=1h"]);
    wait_state(&shim, &c, State::Running, CHANGE_WITHIN);

    let out = forge_cli(&shim, &["sleep", &c]);
    out.assert_success("forge-shim sleep");
    assert_eq!(out.stdout_text().trim(), format!("{c}: sleeping"));
    assert!(is_paused(&c));
    assert_eq!(state(&shim, &c), Some(State::Sleeping));
    let out = forge_cli(&shim, &["status"]);
    out.assert_success("forge-shim status");
    let line = out
        .stdout_text()
        .lines()
        .find(|l| l.starts_with(c.as_str()))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{c} not in the status table:\n{}", out.stdout_text()));
    assert!(line.contains("sleeping"), "{line}");

    // Asleep already: unchanged.
    let out = forge_cli(&shim, &["sleep", &c]);
    out.assert_success("forge-shim sleep again");
    assert!(out.stdout_text().contains("(unchanged)"), "{}", out.stdout_text());

    let out = forge_cli(&shim, &["wake", &c]);
    out.assert_success("forge-shim wake");
    assert_eq!(out.stdout_text().trim(), format!("{c}: running"));
    assert!(is_running_unpaused(&c));
    assert_eq!(wakes(&shim, &c), 1);
    assert_eq!(last_wake_trigger(&shim, &c), "api");

    // An unknown name fails with the shim's message.
    let missing = names.name("missing");
    let out = forge_cli(&shim, &["wake", &missing]);
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr_text());
    assert!(out.stderr_text().contains("no such container"), "{}", out.stderr_text());
}

#[test]
fn unpause_through_the_shim_of_a_sleeper_is_a_wake() {
    let names = Names::new("unpause-wake");
    let shim = start_shim(&names);
    let c = run_sleeper(&shim, &names, "c", &["--label", "forge.sleep.idle-timeout=1h"]);
    wait_state(&shim, &c, State::Running, CHANGE_WITHIN);
    let answer = shim.sleep_container(&c);
    assert!(answer.changed, "{answer:?}");
    assert!(is_paused(&c));

    shim.docker(&["unpause", &c])
        .assert_success("docker unpause through the shim");
    assert!(is_running_unpaused(&c));
    assert_eq!(state(&shim, &c), Some(State::Running));
    assert_eq!(wakes(&shim, &c), 1);
    assert_eq!(last_wake_trigger(&shim, &c), "unpause");
}

/// `docker cp` in and `docker top` take the fast path (forwarded as read,
/// chunked upload included) after the wake phase: each wakes the sleeper
/// first, and the file arrives whole.
#[test]
fn cp_and_top_wake_a_sleeper_on_the_fast_path() {
    let names = Names::new("fast-wake");
    let shim = start_shim(&names);
    let c = run_sleeper(&shim, &names, "c", &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload.txt");
    let payload: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&file, &payload).unwrap();

    let fast_before = shim.health().requests_fast_path;
    wait_asleep(&shim, &c);
    shim.docker(&["cp", file.to_str().unwrap(), &format!("{c}:/tmp/payload.txt")])
        .assert_success("docker cp into a sleeping container");
    assert_eq!(last_wake_trigger(&shim, &c), "archive");
    let out = direct_docker(&["exec", &c, "cat", "/tmp/payload.txt"]);
    out.assert_success("cat the copied file");
    assert!(out.stdout_text() == payload, "the copied file differs");

    wait_asleep(&shim, &c);
    let out = shim.docker(&["top", &c]);
    out.assert_success("docker top on a sleeping container");
    assert!(out.stdout_text().contains("sleep 3600"), "{}", out.stdout_text());
    assert_eq!(last_wake_trigger(&shim, &c), "top");
    assert_eq!(wakes(&shim, &c), 2);
    // Each CLI call pings, cp stats the path and uploads, top lists.
    let fast = shim.health().requests_fast_path - fast_before;
    assert!(fast >= 5, "{fast} requests took the fast path");
    shim.assert_no_panic();
}

/// dockerd 20.10 can call a container paused for a few milliseconds after
/// the shim's own unpause (a late event of containerd's pause), and refuse
/// an exec then 409 "is paused": the shim sends the request again once
/// dockerd calls it running, so the client never sees it. What it must
/// never do: hide a real pause. A container paused on dockerd right after
/// a wake gets its 409, and stays paused.
#[test]
fn an_exec_dockerd_calls_paused_right_after_a_wake_is_sent_again_and_a_real_pause_stands() {
    require_dockerd();
    let names = Names::new("stale-pause");
    let faulty = FaultyDockerd::refusing(
        "POST",
        "/exec".into(),
        1,
        409,
        r#"{"message":"Container web is paused, unpause the container before exec"}"#,
    );
    let shim = Shim::builder(&config_with(&names, "", "", ""))
        .upstream(format!("unix://{}", faulty.path.display()))
        .start();
    let c = run_sleeper(&shim, &names, "web", &[]);
    wait_tracked(&shim, &c);
    shim.sleep_container(&c);
    assert!(is_paused(&c));

    // On a connection of its own, so the stand-in sees the exec create
    // first: the wake, dockerd's (stand-in's) 409, and the request again.
    let exec = |shim: &Shim| {
        raw_request(
            shim.socket_path(),
            &json_request(
                "POST",
                &format!("/v1.41/containers/{c}/exec"),
                &serde_json::json!({ "Cmd": ["true"] }),
            ),
        )
    };
    let answer = exec(&shim);
    assert_eq!(answer.status, 201, "exec create after the wake: {}", answer.body_text());
    assert_eq!(faulty.refusals_left(), 0, "the stand-in's 409 was never asked for");
    assert!(is_running_unpaused(&c));

    // A real pause, straight on dockerd, right after a wake: the 409 stands.
    shim.sleep_container(&c);
    shim.wake_container(&c);
    direct_docker(&["pause", &c]).assert_success("docker pause on dockerd");
    let answer = exec(&shim);
    assert_eq!(
        answer.status,
        409,
        "an exec into a really paused container: {}",
        answer.body_text()
    );
    assert!(answer.body_text().contains("is paused"), "{}", answer.body_text());
    assert!(is_paused(&c), "the shim unpaused a container someone paused");
    direct_docker(&["unpause", &c]).assert_success("docker unpause on dockerd");
}
