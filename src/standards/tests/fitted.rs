//! Fitted hardening: the judgements of what an image's containers did, the
//! plan a profile gives, and what a create gets from it.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::config::{Hardening, HardeningMode};
use crate::standards::fitted::*;

fn changes(list: &[(&str, ChangeKind)]) -> Vec<FsChange> {
    list.iter()
        .map(|(path, kind)| FsChange {
            path: path.to_string(),
            kind: *kind,
        })
        .collect()
}

use ChangeKind::{Added as A, Deleted as D, Modified as C};

fn judged(obs: &Observation) -> Vec<(String, PathKind)> {
    judge_paths(obs).into_iter().map(|(p, l)| (p, l.kind)).collect()
}

fn with(list: &[(&str, ChangeKind)]) -> Observation {
    Observation {
        changes: changes(list),
        mounted: vec!["/tmp".into(), "/run".into()],
        ..Observation::default()
    }
}

#[test]
fn what_official_shaped_images_write_is_judged_as_they_need() {
    // nginx: empty temp directories under /var/lib/nginx, its pid in /run.
    let nginx = with(&[
        ("/run", C),
        ("/run/nginx.pid", A),
        ("/var", C),
        ("/var/lib", C),
        ("/var/lib/nginx", C),
        ("/var/lib/nginx/body", A),
        ("/var/lib/nginx/proxy", A),
    ]);
    assert_eq!(judged(&nginx), vec![("/var/lib/nginx".into(), PathKind::Ephemeral)]);

    // A Python API's own cache directory, made at start.
    let api = with(&[("/app", C), ("/app/cache", A), ("/app/cache/started", A)]);
    assert_eq!(judged(&api), vec![("/app/cache".into(), PathKind::Ephemeral)]);

    // postgres: its data is a volume (the mount point shows as added), its
    // socket is in /run.
    let mut postgres = with(&[
        ("/var/lib/postgresql", C),
        ("/var/lib/postgresql/data", A),
        ("/run/postgresql", C),
        ("/run/postgresql/.s.PGSQL.5432.lock", A),
    ]);
    postgres.mounted.push("/var/lib/postgresql/data".into());
    assert!(judged(&postgres).is_empty(), "{:?}", judged(&postgres));
}

#[test]
fn data_is_never_put_in_a_tmpfs() {
    // A directory it makes and fills, not named like a cache.
    let uploads = with(&[("/app", C), ("/app/uploads", A), ("/app/uploads/a.png", A)]);
    assert_eq!(judged(&uploads), vec![("/app/uploads".into(), PathKind::Data)]);
    // A file written into a directory of the image.
    let config = with(&[("/etc", C), ("/etc/app.conf", C)]);
    assert_eq!(judged(&config), vec![("/etc".into(), PathKind::Data)]);
    // A file at the top.
    let top = with(&[("/state.db", A)]);
    assert_eq!(judged(&top), vec![("/state.db".into(), PathKind::Data)]);
    // A file deleted from the image needs its directory writable.
    let deleted = with(&[("/opt/app", C), ("/opt/app/old.lock", D)]);
    assert_eq!(judged(&deleted), vec![("/opt/app".into(), PathKind::Data)]);
    // A file written into an image directory named like a cache: ephemeral.
    let cache = with(&[("/srv/cache", C), ("/srv/cache/x", A)]);
    assert_eq!(judged(&cache), vec![("/srv/cache".into(), PathKind::Ephemeral)]);
    // A new directory under one named like a log directory is ephemeral.
    let logs = with(&[
        ("/app", C),
        ("/app/logs", A),
        ("/app/logs/2026", A),
        ("/app/logs/2026/a.log", A),
    ]);
    assert_eq!(judged(&logs), vec![("/app/logs".into(), PathKind::Ephemeral)]);
}

#[test]
fn a_learned_data_path_stays_data_and_nested_tmpfs_fold() {
    let mut profile = Profile::new("sha256:x", "app");
    profile.learn(&with(&[("/app/uploads", A), ("/app/uploads/a", A)]), true, 1);
    profile.learn(
        &with(&[
            ("/app/uploads", C),
            ("/app/uploads/cache", A),
            ("/app/uploads/cache/b", A),
        ]),
        true,
        2,
    );
    assert_eq!(profile.data_paths(), vec!["/app/uploads"]);
    let mut profile = Profile::new("sha256:x", "app");
    profile.learn(&with(&[("/var/cache/app", A), ("/var/cache/app/x", A)]), true, 1);
    profile.learn(&with(&[("/var/cache", C), ("/var/cache/x", A)]), false, 2);
    assert_eq!(profile.ephemeral_paths(), vec!["/var/cache"]);
    assert_eq!(profile.runs, 1);
}

#[test]
fn cpu_is_the_highest_average_of_a_first_look() {
    let look = |nanos: u64, seconds: u64| Observation {
        cpu_nanos: Some(nanos),
        seconds,
        ..Observation::default()
    };
    let mut profile = Profile::new("sha256:x", "app");
    profile.learn(&look(2_000_000_000, 10), true, 1);
    assert_eq!(profile.cpu_millicores, Some(200));
    profile.learn(&look(1_000_000_000, 10), true, 2);
    assert_eq!(profile.cpu_millicores, Some(200));
    // A later look at the same container: its CPU time is since its start,
    // not since the last look, so it is not averaged again.
    profile.learn(&look(90_000_000_000, 10), false, 3);
    assert_eq!(profile.cpu_millicores, Some(200));
}

#[test]
fn users_are_judged_from_processes() {
    let obs = |processes: &[(u32, u32)], started_as_root: bool| Observation {
        processes: Some(processes.to_vec()),
        started_as_root,
        ..Observation::default()
    };
    assert_eq!(judge_user(&obs(&[(0, 0)], true)), Some(RunUser::Root));
    // nginx: a root master and its workers.
    assert_eq!(
        judge_user(&obs(&[(0, 0), (33, 33), (33, 33)], true)),
        Some(RunUser::DropsRoot { uid: 33, gid: 33 })
    );
    assert_eq!(
        judge_user(&obs(&[(101, 103)], true)),
        Some(RunUser::DropsRoot { uid: 101, gid: 103 })
    );
    assert_eq!(
        judge_user(&obs(&[(1000, 1000)], false)),
        Some(RunUser::NonRoot { uid: 1000, gid: 1000 })
    );
    assert_eq!(judge_user(&obs(&[], true)), None);
    assert_eq!(judge_user(&Observation::default()), None);
}

fn ready(user: RunUser, ports: &[u16]) -> Profile {
    let mut profile = Profile::new(&format!("sha256:{}", "a".repeat(64)), "app:1");
    profile.runs = 1;
    profile.observed_seconds = 600;
    profile.user = Some(user);
    profile.ports = ports.iter().copied().collect();
    profile
}

fn allowed() -> Vec<String> {
    [
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "NET_BIND_SERVICE",
    ]
    .map(String::from)
    .to_vec()
}

#[test]
fn plans_follow_the_profile() {
    let h = Hardening::default();
    // No profile, or one not watched long enough: learning.
    let learning = plan(None, &h, &allowed(), Some((65534, 65534)));
    assert_eq!(
        (learning.read_only, learning.user, learning.caps),
        (Fit::Learning, Fit::Learning, Fit::Learning)
    );
    let mut young = ready(RunUser::Root, &[]);
    young.observed_seconds = 5;
    assert_eq!(plan(Some(&young), &h, &allowed(), None).read_only, Fit::Learning);

    // Runs as root, writes a cache: the default user, tmpfs owned by it.
    let mut api = ready(RunUser::Root, &[8000]);
    api.learn(&with(&[("/app/cache", A), ("/app/cache/x", A)]), false, 1);
    let p = plan(Some(&api), &h, &allowed(), Some((65534, 65534)));
    assert_eq!(p.user, Fit::Apply(UserFit::SetDefault));
    assert_eq!(p.read_only, Fit::Apply(vec!["/app/cache".to_string()]));
    assert_eq!(p.tmpfs_owner, Some((65534, 65534)));
    assert_eq!(p.caps, Fit::Apply(vec![]));

    // Drops root itself, listens on 80: root at start, the caps it needs.
    let nginx = ready(RunUser::DropsRoot { uid: 33, gid: 33 }, &[80]);
    let p = plan(Some(&nginx), &h, &allowed(), Some((65534, 65534)));
    assert_eq!(p.user, Fit::Apply(UserFit::StartAsRoot { uid: 33, gid: 33 }));
    assert_eq!(p.tmpfs_owner, Some((33, 33)));
    assert_eq!(
        p.caps,
        Fit::Apply(
            [
                "CHOWN",
                "DAC_OVERRIDE",
                "FOWNER",
                "SETGID",
                "SETUID",
                "KILL",
                "NET_BIND_SERVICE"
            ]
            .map(String::from)
            .to_vec()
        )
    );
    // Only what cap_add_allowed allows.
    let p = plan(Some(&nginx), &h, &["CAP_CHOWN".to_string()], None);
    assert_eq!(p.caps, Fit::Apply(vec!["CHOWN".to_string()]));
    // A high port needs no NET_BIND_SERVICE.
    let redis = ready(RunUser::DropsRoot { uid: 100, gid: 102 }, &[6379]);
    let Fit::Apply(caps) = plan(Some(&redis), &h, &allowed(), None).caps else {
        panic!()
    };
    assert!(!caps.contains(&"NET_BIND_SERVICE".to_string()), "{caps:?}");

    // Data: no read-only root, and why.
    let mut uploads = ready(RunUser::Root, &[]);
    uploads.learn(&with(&[("/app/uploads", A), ("/app/uploads/a", A)]), false, 1);
    let Fit::Unfit(why) = plan(Some(&uploads), &h, &allowed(), None).read_only else {
        panic!()
    };
    assert!(why.contains("/app/uploads"), "{why}");

    // A failure turns its rule off, and only its rule.
    let mut failed = api.clone();
    failed.fail(Failure {
        rule: rule::DEFAULTS_READ_ONLY_ROOTFS.into(),
        container: "c1".into(),
        evidence: "EROFS".into(),
        at: 1,
    });
    let p = plan(Some(&failed), &h, &allowed(), Some((65534, 65534)));
    assert_eq!(p.read_only, Fit::Failed("EROFS".into()));
    assert_eq!(p.user, Fit::Apply(UserFit::SetDefault));
}

#[test]
fn failure_signs_point_at_an_applied_rule_only() {
    let ro = [rule::DEFAULTS_READ_ONLY_ROOTFS, rule::NON_ROOT, rule::DEFAULTS_CAP_DROP];
    let log = "starting\nOSError: [Errno 30] Read-only file system: '/app/data'\n";
    assert_eq!(
        failure_sign(log, &ro),
        Some((
            rule::DEFAULTS_READ_ONLY_ROOTFS,
            "OSError: [Errno 30] Read-only file system: '/app/data'"
        ))
    );
    let denied = "mkdir: can't create directory '/srv/x': Permission denied";
    assert_eq!(failure_sign(denied, &ro).map(|s| s.0), Some(rule::NON_ROOT));
    assert_eq!(
        failure_sign(denied, &[rule::DEFAULTS_READ_ONLY_ROOTFS]).map(|s| s.0),
        Some(rule::DEFAULTS_READ_ONLY_ROOTFS)
    );
    let eperm = "chown: /data: Operation not permitted";
    assert_eq!(failure_sign(eperm, &ro).map(|s| s.0), Some(rule::DEFAULTS_CAP_DROP));
    // Nothing applied, or no sign: nothing to blame.
    assert_eq!(failure_sign(log, &[]), None);
    assert_eq!(failure_sign("exit 3\nsegfault", &ro), None);
}

#[test]
fn tmpfs_options_and_users() {
    assert_eq!(
        tmpfs_options(Some((33, 33)), 64 << 20),
        "uid=33,gid=33,mode=0755,size=65536k"
    );
    assert_eq!(tmpfs_options(None, 1000), "mode=0755,size=1k");
    assert_eq!(numeric_user("65534:65534"), Some((65534, 65534)));
    assert_eq!(numeric_user("1000"), Some((1000, 1000)));
    assert_eq!(numeric_user("nobody"), None);
}

const FITTED: &str = r#"
standards:
  defaults:
    memory: 512M
    read_only_rootfs: true
    tmpfs: [/tmp, /run]
    cap_drop: [ALL]
    no_new_privileges: true
    user: "65534:65534"
  cap_add_allowed: [CHOWN, DAC_OVERRIDE, FOWNER, KILL, SETGID, SETUID, NET_BIND_SERVICE]
  hardening: { learn_for: 60s }
"#;

fn root_image(profile: Option<Profile>) -> CreateContext {
    CreateContext {
        profile: profile.map(Arc::new),
        ..ctx(Some(""))
    }
}

#[test]
fn a_create_without_a_profile_learns_and_says_so() {
    let cfg = load(FITTED);
    let body = json!({"Image": "shop/api", "Labels": {LABEL_HARDENING: "defaults.read_only_rootfs"}});
    let outcome = apply_create(&cfg, &root_image(None), body).unwrap();
    let host = &outcome.body["HostConfig"];
    assert_eq!(outcome.body.get("User"), None);
    assert_eq!(host.get("ReadonlyRootfs"), None);
    assert_eq!(host.get("CapDrop"), None);
    // The always-rules still apply.
    assert_eq!(host["Memory"], json!(512 << 20));
    assert_eq!(host["SecurityOpt"], json!(["no-new-privileges=true"]));
    // The client's label is replaced.
    assert_eq!(outcome.body["Labels"][LABEL_HARDENING], json!(LEARNING));
    let notes: Vec<&str> = outcome.notes.iter().map(|n| n.rule).collect();
    assert_eq!(
        notes,
        vec![rule::NON_ROOT, rule::DEFAULTS_READ_ONLY_ROOTFS, rule::DEFAULTS_CAP_DROP]
    );
    assert!(
        outcome.notes[1]
            .message
            .contains("read-only root not applied yet: learning what shop/api writes"),
        "{:?}",
        outcome.notes
    );
}

#[test]
fn a_create_with_a_profile_gets_what_it_survives() {
    let cfg = load(FITTED);
    let mut api = ready(RunUser::Root, &[8000]);
    api.learn(&with(&[("/app/cache", A), ("/app/cache/x", A)]), false, 1);
    let outcome = apply_create(&cfg, &root_image(Some(api)), json!({"Image": "shop/api"})).unwrap();
    let host = &outcome.body["HostConfig"];
    assert_eq!(outcome.body["User"], json!("65534:65534"));
    assert_eq!(host["ReadonlyRootfs"], json!(true));
    assert_eq!(
        host["Tmpfs"],
        json!({"/tmp": "", "/run": "", "/app/cache": "uid=65534,gid=65534,mode=0755,size=65536k"})
    );
    assert_eq!(host["CapDrop"], json!(["ALL"]));
    assert_eq!(host.get("CapAdd"), None);
    assert_eq!(
        outcome.body["Labels"][LABEL_HARDENING],
        json!("non_root,defaults.memory,defaults.read_only_rootfs,defaults.cap_drop")
    );
    assert!(outcome.notes.is_empty(), "{:?}", outcome.notes);

    // An image that drops root itself starts as root with a few caps.
    let mut nginx = ready(RunUser::DropsRoot { uid: 33, gid: 33 }, &[80]);
    nginx.learn(&with(&[("/var/lib/nginx", C), ("/var/lib/nginx/body", A)]), false, 1);
    let outcome = apply_create(&cfg, &root_image(Some(nginx)), json!({"Image": "nginx"})).unwrap();
    let host = &outcome.body["HostConfig"];
    assert_eq!(outcome.body.get("User"), None);
    assert_eq!(
        host["Tmpfs"]["/var/lib/nginx"],
        json!("uid=33,gid=33,mode=0755,size=65536k")
    );
    assert_eq!(
        host["CapAdd"],
        json!([
            "CHOWN",
            "DAC_OVERRIDE",
            "FOWNER",
            "SETGID",
            "SETUID",
            "KILL",
            "NET_BIND_SERVICE"
        ])
    );

    // A learned path the request mounts a volume at needs no tmpfs.
    let mut cached = ready(RunUser::Root, &[]);
    cached.learn(&with(&[("/app/cache", A), ("/app/cache/x", A)]), false, 1);
    let body = json!({"Image": "a", "HostConfig": {"Binds": ["cache:/app/cache"]}});
    let outcome = apply_create(&cfg, &root_image(Some(cached)), body).unwrap();
    assert_eq!(outcome.body["HostConfig"]["Tmpfs"], json!({"/tmp": "", "/run": ""}));
}

#[test]
fn modes_always_and_never_ignore_the_profile() {
    let always = load(
        &format!("{FITTED}    non_root: always\n    read_only_rootfs: always\n    cap_drop: always\n")
            .replace("hardening: { learn_for: 60s }\n", "hardening:\n"),
    );
    let outcome = apply_create(&always, &root_image(None), json!({"Image": "a"})).unwrap();
    assert_eq!(outcome.body["User"], json!("65534:65534"));
    assert_eq!(outcome.body["HostConfig"]["ReadonlyRootfs"], json!(true));
    assert!(outcome.notes.is_empty());
    assert_eq!(outcome.body["Labels"].get(LABEL_HARDENING), None);

    let mut never = load(FITTED);
    never.config.standards.hardening.non_root = HardeningMode::Never;
    never.config.standards.hardening.read_only_rootfs = HardeningMode::Never;
    never.config.standards.hardening.cap_drop = HardeningMode::Never;
    let body = json!({"Image": "a", "Labels": {LABEL_HARDENING: "learning"}});
    let outcome = apply_create(&never, &root_image(Some(ready(RunUser::Root, &[]))), body).unwrap();
    assert_eq!(outcome.body.get("User"), None);
    assert_eq!(outcome.body["HostConfig"].get("ReadonlyRootfs"), None);
    assert!(outcome.notes.is_empty());
    // A client cannot claim the label either.
    assert_eq!(outcome.body["Labels"].get(LABEL_HARDENING), None);
}

#[test]
fn an_image_oom_killed_under_the_default_gets_twice_that() {
    let cfg = load(FITTED);
    let mut profile = ready(RunUser::Root, &[]);
    profile.oom_limit = Some(512 << 20);
    let outcome = apply_create(&cfg, &root_image(Some(profile.clone())), json!({"Image": "app"})).unwrap();
    assert_eq!(outcome.body["HostConfig"]["Memory"], json!(1024i64 << 20));
    let memory = outcome
        .changes
        .iter()
        .find(|c| c.rule == rule::DEFAULTS_MEMORY)
        .unwrap();
    assert!(memory.message.contains("OOM-killed under"), "{memory:?}");
    // Within the maximum.
    let capped = load(&format!("{FITTED}  limits: {{ memory: 768M, on_exceed: clamp }}\n"));
    let outcome = apply_create(&capped, &root_image(Some(profile.clone())), json!({"Image": "app"})).unwrap();
    assert_eq!(outcome.body["HostConfig"]["Memory"], json!(768i64 << 20));
    // An explicit limit is the client's: kept.
    let body = json!({"Image": "app", "HostConfig": {"Memory": 64i64 << 20}});
    let outcome = apply_create(&cfg, &root_image(Some(profile)), body).unwrap();
    assert_eq!(outcome.body["HostConfig"]["Memory"], json!(64i64 << 20));
}
