//! Property tests ("fuzz targets") for the three readers of hostile input:
//! the create-body reader, the route classifier and the config parser.
//! cargo-fuzz needs a nightly toolchain, which these machines do not have;
//! proptest runs the same kind of search on stable. `make test` runs each
//! with proptest's default case count; `make fuzz` (PROPTEST_CASES=100000)
//! runs them longer.

use proptest::prelude::*;
use serde_json::Value;

use crate::config::Config;
use crate::route::{ContainerAction, Endpoint, Route};
use crate::standards::{apply_create, parse_body, CreateContext};

/// One spelling of `key` that Go's `encoding/json` matches to it: ASCII
/// case, and the two non-ASCII letters `strings.EqualFold` folds onto ASCII
/// (`ſ` onto `s`, the Kelvin sign onto `k`).
fn spelling(key: &'static str) -> impl Strategy<Value = String> {
    let choices: Vec<BoxedStrategy<String>> = key
        .chars()
        .map(|c| {
            let mut forms = vec![c.to_ascii_lowercase().to_string(), c.to_ascii_uppercase().to_string()];
            match c.to_ascii_lowercase() {
                's' => forms.push("ſ".into()),
                'k' => forms.push("\u{212A}".into()),
                _ => {}
            }
            proptest::sample::select(forms).boxed()
        })
        .collect();
    choices.prop_map(|parts| parts.concat())
}

/// Go's view of a key: the fold `encoding/json` matches with.
fn go_fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            'ſ' => 's',
            '\u{212A}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// What dockerd reads for `key` in `object`: the last key that folds to it.
/// (`Value` keeps only one of each exact key; the forwarded body is written
/// by the shim, which never repeats one.)
fn go_get<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    object
        .as_object()?
        .iter()
        .rev()
        .find(|(k, _)| go_fold(k) == key)
        .map(|(_, v)| v)
}

/// A create body, as raw JSON text (so it may repeat keys), that asks for
/// privileged mode in one or more spellings, in one or more HostConfigs.
fn privileged_create() -> impl Strategy<Value = String> {
    let inner = proptest::collection::vec((spelling("Privileged"), any::<bool>()), 1..4);
    let host_configs = proptest::collection::vec((spelling("HostConfig"), inner), 1..3);
    (host_configs, any::<bool>()).prop_map(|(host_configs, top_level)| {
        let mut body = String::from(r#"{"Image":"busybox""#);
        if top_level {
            body.push_str(r#","Privileged":true"#);
        }
        for (key, fields) in host_configs {
            body.push_str(&format!(",{}:{{", serde_json::to_string(&key).unwrap()));
            let fields: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
                .collect();
            body.push_str(&fields.join(","));
            body.push('}');
        }
        body.push('}');
        body
    })
}

fn deny_only() -> crate::config::LoadedConfig {
    Config::from_yaml("", "fuzz.yml").unwrap()
}

proptest! {
    #[test]
    fn the_body_reader_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let cfg = deny_only();
        if let Ok(value) = parse_body(&bytes) {
            let _ = apply_create(&cfg, &CreateContext::default(), value);
        }
    }

    #[test]
    fn no_spelling_of_privileged_gets_through(body in privileged_create()) {
        let cfg = deny_only();
        let Ok(value) = parse_body(body.as_bytes()) else { return Ok(()) };
        let Ok(outcome) = apply_create(&cfg, &CreateContext::default(), value) else { return Ok(()) };
        let forwarded = outcome.body;
        let host_config = go_get(&forwarded, "hostconfig");
        let privileged = host_config.and_then(|h| go_get(h, "privileged"));
        prop_assert_ne!(privileged, Some(&Value::Bool(true)), "forwarded {} from {}", forwarded, body);
    }

    #[test]
    fn the_classifier_takes_any_path(method in "[A-Z]{1,7}", path in ".{0,64}") {
        if let Ok(method) = http::Method::from_bytes(method.as_bytes()) {
            let _ = Route::classify(&method, &path);
        }
    }

    #[test]
    fn container_names_are_greedy(
        segments in proptest::collection::vec("[a-z0-9_-]{1,8}", 1..4),
        version in proptest::option::of("1\\.[0-9]{2}"),
        action in proptest::sample::select(vec![
            ("POST", "update"), ("POST", "exec"), ("POST", "start"), ("POST", "stop"),
            ("GET", "json"), ("GET", "top"), ("PUT", "archive"), ("POST", "attach"),
        ]),
    ) {
        let name = segments.join("/");
        let prefix = version.map(|v| format!("/v{v}")).unwrap_or_default();
        let path = format!("{prefix}/containers/{name}/{}", action.1);
        let endpoint = Route::classify(&action.0.parse().unwrap(), &path).unwrap().endpoint;
        let id = name.clone();
        let expected = match action {
            ("POST", "update") => Endpoint::ContainerUpdate { id },
            ("POST", "exec") => Endpoint::ExecCreate { id },
            ("POST", "attach") => Endpoint::Attach { id },
            ("POST", "start") => Endpoint::ContainerUse { id, action: ContainerAction::Start },
            ("POST", "stop") => Endpoint::ContainerUse { id, action: ContainerAction::Stop },
            ("GET", "json") => Endpoint::ContainerUse { id, action: ContainerAction::Inspect },
            ("GET", "top") => Endpoint::ContainerUse { id, action: ContainerAction::Top },
            _ => Endpoint::ContainerUse { id, action: ContainerAction::Archive },
        };
        prop_assert_eq!(endpoint, expected, "{}", path);
    }

    #[test]
    fn the_config_parser_takes_any_text(text in ".{0,256}") {
        let _ = Config::from_yaml(&text, "fuzz.yml");
    }

    #[test]
    fn the_config_parser_takes_any_shape(
        keys in proptest::collection::vec(proptest::sample::select(vec![
            "listen", "upstream", "socket_mode", "max_connections", "timeouts", "standards",
            "auto_sleep", "classes", "services", "classify", "default_class", "worker_threads",
        ]), 1..5),
        values in proptest::collection::vec(proptest::sample::select(vec![
            "0", "-1", "1e99", "\"\"", "[]", "{}", "null", "true", "\"30s\"", "\"4G\"",
            "{ mode: off }", "{ memory: -5 }", "[{ match: {} }]", "\"\\u0000\"",
        ]), 5),
    ) {
        let text: String = keys.iter().zip(values.iter().cycle()).map(|(k, v)| format!("{k}: {v}\n")).collect();
        let _ = Config::from_yaml(&text, "fuzz.yml");
    }
}
