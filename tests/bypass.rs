//! Bypass detection, for real: the built shim in front of the machine's
//! dockerd. A container created straight on dockerd's socket is reported
//! (`status`, `/_forge/v1/bypasses`, `forge_shim_unmanaged_creates_total`,
//! `audit`); one created through the shim never is, nor is the shim's own
//! probe; with `bypass.action: stop`, a container started straight on
//! dockerd that breaks the standards is stopped and still exists.
//!
//! dockerd is shared with other tests that create containers at the same
//! time, and to this shim those are bypasses too. So each shim here has a
//! `bypass.scope` of its test's names, and the counts are exact within it.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

/// Longer than any judgement takes; a hang detector, not a timing.
const PATIENCE: Duration = Duration::from_secs(120);

fn config(names: &Names, action: &str) -> String {
    format!(
        "bypass: {{ action: {action}, scope: [ {{ name: \"{}-*\" }} ] }}\n",
        names.prefix()
    )
}

fn bypasses(shim: &Shim) -> Value {
    let answer = shim.get("/_forge/v1/bypasses");
    assert_eq!(answer.status, 200, "{}", answer.body_text());
    serde_json::from_slice(&answer.body).expect("JSON")
}

fn bypass_record(shim: &Shim, id: &str) -> Option<Value> {
    bypasses(shim)["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["id"].as_str() == Some(id))
        .cloned()
}

fn unmanaged_creates(shim: &Shim) -> u64 {
    let metrics = shim.get("/_forge/v1/metrics").body_text();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("forge_shim_unmanaged_creates_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no forge_shim_unmanaged_creates_total in:\n{metrics}"))
}

/// `forge-shim status`: the table's rows and its text.
fn status(shim: &Shim) -> (Vec<Value>, String) {
    let json = forge_cli(shim, &["status", "--json"]);
    json.assert_success("forge-shim status --json");
    let rows: Value = serde_json::from_str(&json.stdout_text()).expect("status JSON");
    let text = forge_cli(shim, &["status"]);
    text.assert_success("forge-shim status");
    (rows.as_array().cloned().unwrap_or_default(), text.stdout_text())
}

/// The `origin` of `name`'s status row.
fn origin(rows: &[Value], name: &str) -> String {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in status: {rows:?}"))["origin"]
        .as_str()
        .unwrap_or("-")
        .to_string()
}

/// The table's lines (names are cut at 28 characters) whose ORIGIN is `marker`.
fn table_lines_marked(text: &str, marker: &str) -> usize {
    text.lines()
        .take_while(|line| !line.is_empty())
        .filter(|line| line.ends_with(&format!("  {marker}")))
        .count()
}

fn inspect(name: &str, format: &str) -> String {
    let out = direct_docker(&["inspect", "--format", format, name]);
    out.assert_success("docker inspect");
    out.stdout_text().trim().to_string()
}

#[test]
fn a_create_straight_on_dockerd_is_reported_and_one_through_the_shim_never_is() {
    require_dockerd();
    let names = Names::new("bypass-report");
    let mut shim = Shim::start(&config(&names, "report"));

    // Through the shim, both ways the CLI creates: never reported.
    let mine = names.name("mine");
    shim.docker(&["create", "--name", &mine, BUSYBOX, "sleep", "300"])
        .assert_success("create through the shim");
    let run = names.name("run");
    shim.docker(&["run", "-d", "--name", &run, BUSYBOX, "sleep", "300"])
        .assert_success("run through the shim");

    // Straight on dockerd: reported.
    let direct = names.name("direct");
    let out = direct_docker(&["create", "--name", &direct, BUSYBOX, "sleep", "300"]);
    out.assert_success("create on dockerd");
    let direct_id = out.stdout_text().trim().to_string();
    wait_until("the bypass is reported", PATIENCE, || {
        bypass_record(&shim, &direct_id).is_some()
    });
    let record = bypass_record(&shim, &direct_id).unwrap();
    assert_eq!(record["name"], direct.as_str());
    assert_eq!(record["image"], BUSYBOX);
    assert_eq!(unmanaged_creates(&shim), 1, "exactly the one created around the shim");
    let log = shim.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("around the shim") && l.contains(&direct_id)),
        "a warning with its id:\n{log}"
    );

    // status: the column and the list below the table.
    wait_until("status lists it", PATIENCE, || {
        shim.container(&direct).is_some() && shim.container(&mine).is_some()
    });
    let (rows, text) = status(&shim);
    assert_eq!(origin(&rows, &direct), "bypass");
    assert_eq!(origin(&rows, &mine), "shim");
    assert_eq!(origin(&rows, &run), "shim");
    // In the table, the one in scope created around the shim is marked.
    assert_eq!(table_lines_marked(&text, "BYPASS"), 1, "{text}");
    assert!(table_lines_marked(&text, "shim") >= 2, "{text}");
    assert!(text.contains(&format!("BYPASS {direct} (")), "{text}");
    for own in [&mine, &run] {
        assert!(!text.contains(&format!("BYPASS {own} (")), "{text}");
    }

    // audit: the same, from the shim's state_dir.
    let audit = forge_audit_json(&shim);
    let report = |name: &str| audit_report(&audit, name);
    assert_eq!(report(&direct)["origin"], "bypass");
    assert!(report(&direct)["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["rule"] == "bypass"));
    for own in [&mine, &run] {
        assert_eq!(report(own)["origin"], "shim");
        assert!(!report(own)["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["rule"] == "bypass"));
    }

    // A restarted shim still knows which is which, and counts nothing twice.
    shim.restart();
    assert_eq!(
        bypass_record(&shim, &direct_id).map(|r| r["name"].clone()),
        Some(direct.clone().into())
    );
    assert_eq!(
        unmanaged_creates(&shim),
        0,
        "known before the restart: not a new create"
    );
    wait_until("status lists them again", PATIENCE, || shim.container(&mine).is_some());
    let (rows, _) = status(&shim);
    assert_eq!(origin(&rows, &mine), "shim");
    assert_eq!(origin(&rows, &direct), "bypass");
    shim.assert_no_panic();
}

/// The shim's own never-started probe (it reads an image's `/etc/passwd`
/// for a named user) is created straight on dockerd by the shim itself; it
/// is never a bypass. No scope here: a probe has no name of the test's.
#[test]
fn the_shim_s_own_probe_is_never_reported() {
    require_dockerd();
    let names = Names::new("bypass-probe");
    let shim = Shim::start("bypass: { action: report }\n");
    let since = unix_now().to_string();
    // A named user makes the shim read the image's /etc/passwd by a probe.
    let mine = names.name("named-user");
    // Whether the rules then accept the user does not matter here.
    let _ = shim.docker(&["create", "--user", "nobody", "--name", &mine, BUSYBOX, "true"]);
    let until = (unix_now() + 1).to_string();
    let probes = direct_docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=container",
        "--filter",
        "event=create",
        "--filter",
        "label=forge-shim.probe",
        "--format",
        "{{.Actor.ID}}",
    ]);
    probes.assert_success("docker events");
    let probes: Vec<String> = probes.stdout_text().lines().map(str::to_string).collect();
    assert!(!probes.is_empty(), "the shim made a probe");
    // The create after them is judged: the probes' events came before.
    let marker = names.name("marker");
    let out = direct_docker(&["create", "--name", &marker, BUSYBOX, "true"]);
    out.assert_success("create on dockerd");
    let marker_id = out.stdout_text().trim().to_string();
    wait_until("the marker is reported", PATIENCE, || {
        bypass_record(&shim, &marker_id).is_some()
    });
    let log = shim.log();
    for probe in &probes {
        assert!(bypass_record(&shim, probe).is_none(), "probe {probe} reported");
        assert!(
            !log.lines()
                .any(|l| l.contains("around the shim") && l.contains(probe.as_str())),
            "probe {probe} logged as a bypass:\n{log}"
        );
    }
    let listed = direct_docker(&["ps", "-aq", "--no-trunc", "--filter", &format!("name={mine}")]);
    for id in listed.stdout_text().lines() {
        assert!(bypass_record(&shim, id).is_none(), "the shim's own create reported");
    }
    shim.assert_no_panic();
}

/// The breach is the host's pid namespace (`standards.deny.host_pid`): a
/// `--privileged` container cannot start on these machines at all (runc:
/// "unable to apply caps: operation not permitted", the shim's own
/// capability set lacks `CAP_SYS_RESOURCE`), and the backstop judges both
/// the same way (the in-process test judges a privileged one).
#[test]
fn with_action_stop_a_breaching_container_started_on_dockerd_is_stopped_not_removed() {
    require_dockerd();
    let names = Names::new("bypass-stop");
    let shim = Shim::start(&config(&names, "stop"));

    // One that meets the standards' backstop runs on.
    let plain = names.name("plain");
    let out = direct_docker(&["run", "-d", "--name", &plain, BUSYBOX, "sleep", "300"]);
    out.assert_success("run on dockerd");
    let plain_id = out.stdout_text().trim().to_string();
    wait_until("the plain one is judged at start", PATIENCE, || {
        shim.log()
            .lines()
            .any(|l| l.contains("meets the standards") && l.contains(&plain_id))
    });

    let breaching = names.name("host-pid");
    let out = direct_docker(&[
        "run", "-d", "--pid", "host", "--name", &breaching, BUSYBOX, "sleep", "300",
    ]);
    out.assert_success("run a container in the host's pid namespace on dockerd");
    let id = out.stdout_text().trim().to_string();
    wait_until("the breaching one is stopped", PATIENCE, || {
        inspect(&breaching, "{{.State.Running}}") == "false"
    });
    // Stopped, never removed: it is still there, and says why.
    assert_eq!(inspect(&breaching, "{{.Id}}"), id);
    wait_until("the reason is recorded", PATIENCE, || {
        bypass_record(&shim, &id).is_some_and(|r| r["note"].as_str().is_some_and(|n| n.starts_with("stopped")))
    });
    let note = bypass_record(&shim, &id).unwrap()["note"].as_str().unwrap().to_string();
    assert!(note.contains("PID namespace"), "{note}");
    let log = shim.log();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("stopping") && l.contains(&id)),
        "{log}"
    );
    assert_eq!(
        inspect(&plain, "{{.State.Running}}"),
        "true",
        "the plain one was never stopped"
    );
    assert_eq!(unmanaged_creates(&shim), 2);
    shim.assert_no_panic();
}

/// With the standards off a create is not judged, but it is still the
/// shim's: recorded from dockerd's answer, never reported.
#[test]
fn with_standards_off_a_create_through_the_shim_is_never_reported() {
    require_dockerd();
    let names = Names::new("bypass-off");
    let shim = Shim::start(&format!("standards: {{ mode: off }}\n{}", config(&names, "report")));
    let mine = names.name("mine");
    let out = shim.docker(&["create", "--name", &mine, BUSYBOX, "true"]);
    out.assert_success("create through the shim");
    let mine_id = out.stdout_text().trim().to_string();
    let direct = names.name("direct");
    let out = direct_docker(&["create", "--name", &direct, BUSYBOX, "true"]);
    out.assert_success("create on dockerd");
    let direct_id = out.stdout_text().trim().to_string();
    wait_until("the bypass is reported", PATIENCE, || {
        bypass_record(&shim, &direct_id).is_some()
    });
    assert!(
        bypass_record(&shim, &mine_id).is_none(),
        "the shim's own create reported"
    );
    assert_eq!(unmanaged_creates(&shim), 1);
    wait_until("status lists it", PATIENCE, || shim.container(&mine).is_some());
    assert_eq!(origin(&status(&shim).0, &mine), "shim");
    shim.assert_no_panic();
}
