use std::os::unix::fs::PermissionsExt;

use super::*;

fn records() -> Vec<SleepRecord> {
    vec![
        SleepRecord {
            id: "b7f0f468feb61f36c3e40ac7b8dd69da797edacb089aa43162daabebc0532170".into(),
            name: "web".into(),
            state: SleptState::Paused,
            since_unix_ms: 1_732_680_000_000,
            saved_limits: Some(SavedLimits::V1 {
                memory_limit: 9_223_372_036_854_771_712,
                memsw_limit: Some(9_223_372_036_854_771_712),
            }),
            memory_before: Some(105_906_176),
            memory_after: Some(8_314_880),
            published: Vec::new(),
            health: Some(serde_json::json!({"Status": "healthy", "FailingStreak": 0})),
        },
        SleepRecord {
            id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
            name: "db".into(),
            state: SleptState::Stopped,
            since_unix_ms: 1_732_680_001_000,
            saved_limits: Some(SavedLimits::V2 { memory_high: None }),
            memory_before: None,
            memory_after: None,
            published: vec![crate::docker::PublishedPort {
                host_ip: "127.0.0.1".parse().unwrap(),
                host_port: 18080,
                container_port: 8080,
            }],
            health: None,
        },
    ]
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path());
    store.save(&records()).unwrap();
    assert_eq!(store.load().unwrap(), records());

    let json: serde_json::Value = serde_json::from_str(&fs::read_to_string(store.path()).unwrap()).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["records"][0]["state"], "paused");
    assert_eq!(json["records"][1]["state"], "stopped");
    assert_eq!(json["records"][0]["saved_limits"]["cgroup"], "v1");

    // A save replaces, it does not append.
    store.save(&records()[1..]).unwrap();
    assert_eq!(store.load().unwrap(), records()[1..].to_vec());
    store.save(&[]).unwrap();
    assert_eq!(store.load().unwrap(), Vec::new());
}

#[test]
fn missing_file_or_directory_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(Store::open(dir.path()).load().unwrap(), Vec::new());
    let store = Store::open(dir.path().join("not/yet"));
    assert_eq!(store.load().unwrap(), Vec::new());
    assert_eq!(store.load_or_quarantine(), Vec::new());
    // The first save creates the directory.
    store.save(&records()).unwrap();
    assert_eq!(store.load().unwrap(), records());
}

#[test]
fn older_records_without_optional_fields_load() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path());
    fs::write(
        store.path(),
        r#"{"version":1,"records":[{"id":"a","name":"b","state":"paused","since_unix_ms":5,"later":true}]}"#,
    )
    .unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].saved_limits, None);
    assert_eq!(loaded[0].memory_before, None);
}

#[test]
fn corrupt_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path());
    for (text, want_version_error) in [
        ("{\"version\": 1, \"records\": [", false),
        ("", false),
        ("[]", false),
        ("{\"records\": []}", false),
        ("{\"version\": 1, \"records\": [{\"id\": 5}]}", false),
        (
            "{\"version\": 1, \"records\": [{\"id\":\"a\",\"name\":\"b\",\"state\":\"dozing\",\"since_unix_ms\":1}]}",
            false,
        ),
        ("{\"version\": 2, \"records\": \"new shape\"}", true),
    ] {
        fs::write(store.path(), text).unwrap();
        let error = store.load().unwrap_err();
        assert!(error.is_bad_content(), "{text}: {error}");
        assert_eq!(
            matches!(error, StoreError::UnsupportedVersion { found: 2, .. }),
            want_version_error
        );
        assert!(
            error.to_string().contains(&store.path().display().to_string()),
            "{error}"
        );
    }
}

#[test]
fn corrupt_file_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path());
    fs::write(store.path(), "{not json").unwrap();
    assert_eq!(store.load_or_quarantine(), Vec::new());

    let names = names_in(dir.path());
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("sleeping.json.corrupt-"), "{names:?}");
    assert_eq!(fs::read_to_string(dir.path().join(&names[0])).unwrap(), "{not json");
    // The next start is clean.
    assert_eq!(store.load().unwrap(), Vec::new());
    store.save(&records()).unwrap();
    assert_eq!(store.load_or_quarantine(), records());
}

#[test]
fn unreadable_file_is_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path());
    fs::create_dir(store.path()).unwrap();
    let error = store.load().unwrap_err();
    assert!(matches!(error, StoreError::Read { .. }), "{error}");
    assert_eq!(store.load_or_quarantine(), Vec::new());
    assert_eq!(names_in(dir.path()), vec![FILE_NAME.to_string()]);
}

#[test]
fn save_leaves_only_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path());
    for _ in 0..3 {
        store.save(&records()).unwrap();
    }
    assert_eq!(names_in(dir.path()), vec![FILE_NAME.to_string()]);
    let mode = fs::metadata(store.path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn failed_save_cleans_up_and_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path());
    // A non-empty directory where the file should be: the rename fails.
    fs::create_dir(store.path()).unwrap();
    fs::write(store.path().join("keep"), "x").unwrap();
    let error = store.save(&records()).unwrap_err();
    assert!(matches!(error, StoreError::Write { .. }), "{error}");
    assert!(
        error.to_string().contains(&store.path().display().to_string()),
        "{error}"
    );
    assert_eq!(names_in(dir.path()), vec![FILE_NAME.to_string()], "no temp file left");
    assert!(store.path().join("keep").exists());
}

#[test]
fn stale_temp_files_are_removed_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path());
    store.save(&records()).unwrap();
    let stale = dir.path().join(format!("{TEMP_PREFIX}1-0"));
    fs::write(&stale, "{\"version\": 1, \"rec").unwrap();
    // A temp file left by a save cut short (pid 1, say) goes at startup.
    assert_eq!(store.load_or_quarantine(), records());
    assert!(!stale.exists());
    assert_eq!(names_in(dir.path()), vec![FILE_NAME.to_string()]);
}
