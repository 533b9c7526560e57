//! Classifies a request once: normalise the path as dockerd would see it,
//! strip the `/vX.Y` prefix, then one `match` yields an [`Endpoint`].
//!
//! dockerd percent-decodes the path before routing and redirects `//x` and
//! `/a/../x`. A rule keyed on the path must therefore look at the decoded,
//! cleaned path, and the request must be forwarded with exactly that path:
//! **what we classify is what dockerd routes**. [`Route::forward_path`] is
//! `Some` whenever the path had to change.

use http::Method;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// The prefix of the shim's own API. No Docker path starts with it.
pub const FORGE_PREFIX: &str = "/_forge/v1/";

/// What a request is, as far as the shim cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/_forge/v1/<rest>`: the shim's own API.
    Forge(String),
    ContainerCreate,
    ContainerUpdate {
        id: String,
    },
    /// `POST /containers/{id}/exec`.
    ExecCreate {
        id: String,
    },
    /// `POST /exec/{exec_id}/start`.
    ExecStart {
        exec_id: String,
    },
    /// `POST /containers/{id}/attach` and `GET /containers/{id}/attach/ws`.
    Attach {
        id: String,
    },
    /// An endpoint on one container that needs it running (or at least not
    /// paused): archive, top, stop, kill, restart, resize, commit, …
    ContainerUse {
        id: String,
        action: ContainerAction,
    },
    /// `POST /networks/{id}/connect|disconnect`; the container is in the body.
    NetworkAttach,
    ServiceCreate,
    /// `POST /volumes/create`: a local volume can bind the Docker socket.
    VolumeCreate,
    /// `POST /build`: the classic builder's containers take their network
    /// mode and limits from the query.
    Build,
    /// `POST /plugins/pull|create`, `/plugins/{name:.*}/enable|upgrade|set`:
    /// a plugin runs with the privileges it asks for.
    PluginInstall,
    ServiceUpdate {
        id: String,
    },
    /// `GET /containers/json`: its answer may be disguised (the shim's
    /// sleepers read as running).
    ContainerList,
    /// Anything else: forwarded untouched.
    Passthrough,
}

/// The container endpoints lifecycle cares about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerAction {
    Start,
    Stop,
    Restart,
    Kill,
    Pause,
    Unpause,
    Remove,
    Archive,
    Top,
    Resize,
    Commit,
    Logs,
    Stats,
    Export,
    Changes,
    Rename,
    Inspect,
    Wait,
}

impl ContainerAction {
    /// Whether dockerd refuses or mishandles this call on a paused container,
    /// so that a sleeping container must be woken first. Checked against
    /// dockerd 20.10; see ARCHITECTURE.md ("Wake on API calls").
    pub fn needs_running(self) -> bool {
        use ContainerAction::*;
        matches!(
            self,
            Start | Stop | Restart | Kill | Remove | Archive | Top | Resize | Commit | Export | Rename
        )
    }
}

/// Which phases an endpoint gets. This is the one place that decides it:
/// the fast path ([`Phases::fast_path`]), the standards phase and the wake
/// phase all read it, so an endpoint given a phase here can never slip past
/// that phase on another path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phases {
    /// Judged by the standards (unless `standards.mode` is `off`).
    pub standards: Judge,
    /// What the wake phase does with the container the request names.
    pub wake: WakePhase,
    /// May switch protocols into a hijacked stream (attach, exec start).
    pub upgrade: bool,
    /// Served by the shim itself (`/_forge/v1/`), never forwarded.
    pub shim_api: bool,
    /// The answer tells a container's state (`ps`, inspect): while the
    /// lifecycle holds a sleeper, it is rewritten so that the shim's
    /// sleepers read as running (`proxy::disguise`).
    pub disguise: bool,
    /// Could run a container or reach its mounts (start, restart, archive,
    /// export, commit, exec, attach, and any route the shim does not know):
    /// waits for the create checks begun before it (`proxy::checks`).
    pub after_checks: bool,
}

/// What the standards judge of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judge {
    /// Nothing: no rule applies.
    None,
    /// The body, read whole, judged and re-sent with an exact length.
    Body,
    /// The route and query alone (`build`, plugins); the body is streamed.
    Head,
}

/// The wake phase of an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakePhase {
    /// The request names no container.
    None,
    /// Reads a container without using it (inspect, stats, changes, wait):
    /// monitoring never wakes a sleeper and marks nothing in use.
    Watch,
    /// Uses the container named in the route or query: marks it in use for
    /// the length of the response, and wakes it first where it must run.
    Use,
    /// The container is named in the body (`network connect|disconnect`),
    /// which is read whole to find it.
    FromBody,
    /// The wake phase may answer in dockerd's place (`pause`/`unpause` of
    /// a container the shim holds asleep).
    MayAnswer,
}

/// Whether a request may be forwarded as read, without hyper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastPath {
    /// No: it goes to hyper (and every request after it on its connection).
    No,
    /// Yes, with no phase at all.
    Plain,
    /// Yes, after the wake phase has run from the route and query alone.
    Claim,
}

impl Phases {
    const PLAIN: Phases = Phases {
        standards: Judge::None,
        wake: WakePhase::None,
        upgrade: false,
        shim_api: false,
        disguise: false,
        after_checks: false,
    };

    /// Whether a phase reads the request body whole before forwarding.
    pub fn reads_body(&self) -> bool {
        self.standards == Judge::Body || self.wake == WakePhase::FromBody
    }

    /// Whether the standards judge the request at all.
    pub fn judged(&self) -> bool {
        self.standards != Judge::None
    }

    /// Whether the fast path may take the request. Only a request with no
    /// phase, or with the wake phase alone working from route and query,
    /// qualifies: a body that is judged or read, a hijack, the shim's API
    /// and the wake phase's own answers always go to hyper. The standards'
    /// mode does not enter into it: a judged endpoint never takes the fast
    /// path, even with standards off. `sleeping` tells whether the
    /// lifecycle runs (without it the wake phase has nothing to do);
    /// `sleepers`, whether it holds a container asleep now (a disguised
    /// answer is rewritten, so it cannot go as dockerd's bytes).
    pub fn fast_path(&self, sleeping: bool, sleepers: bool) -> FastPath {
        if self.judged() || self.reads_body() || self.upgrade || self.shim_api || (self.disguise && sleepers) {
            return FastPath::No;
        }
        match self.wake {
            WakePhase::None | WakePhase::Watch => FastPath::Plain,
            WakePhase::Use if sleeping => FastPath::Claim,
            WakePhase::Use => FastPath::Plain,
            WakePhase::FromBody | WakePhase::MayAnswer => FastPath::No,
        }
    }
}

impl Endpoint {
    /// The phases this endpoint gets; see [`Phases`].
    pub fn phases(&self) -> Phases {
        use ContainerAction as A;
        let plain = Phases::PLAIN;
        let wake = |wake| Phases { wake, ..plain };
        let judged = |wake| Phases {
            standards: Judge::Body,
            wake,
            ..plain
        };
        match self {
            Endpoint::Forge(_) => Phases {
                shim_api: true,
                ..plain
            },
            Endpoint::ContainerCreate | Endpoint::ServiceCreate | Endpoint::ServiceUpdate { .. } => {
                judged(WakePhase::None)
            }
            Endpoint::VolumeCreate => judged(WakePhase::None),
            Endpoint::Build | Endpoint::PluginInstall => Phases {
                standards: Judge::Head,
                ..plain
            },
            Endpoint::ContainerUpdate { .. } => judged(WakePhase::Use),
            Endpoint::ExecCreate { .. } => Phases {
                after_checks: true,
                ..judged(WakePhase::Use)
            },
            Endpoint::ExecStart { .. } | Endpoint::Attach { .. } => Phases {
                upgrade: true,
                after_checks: true,
                ..wake(WakePhase::Use)
            },
            Endpoint::NetworkAttach => wake(WakePhase::FromBody),
            Endpoint::ContainerUse { action, .. } => match action {
                // A start may carry a HostConfig body (API < 1.24).
                A::Start => Phases {
                    after_checks: true,
                    ..judged(WakePhase::Use)
                },
                A::Restart | A::Archive | A::Export | A::Commit => Phases {
                    after_checks: true,
                    ..wake(WakePhase::Use)
                },
                A::Pause | A::Unpause => wake(WakePhase::MayAnswer),
                A::Inspect => Phases {
                    disguise: true,
                    ..wake(WakePhase::Watch)
                },
                A::Stats | A::Changes | A::Wait => wake(WakePhase::Watch),
                A::Stop | A::Kill | A::Remove | A::Top | A::Resize | A::Logs | A::Rename => wake(WakePhase::Use),
            },
            Endpoint::ContainerList => Phases {
                disguise: true,
                ..plain
            },
            // Unknown routes include container ones the shim has no name
            // for (`/containers/{id}/checkpoints`, future API): held back.
            Endpoint::Passthrough => Phases {
                after_checks: true,
                ..plain
            },
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    /// The API version prefix, e.g. `1.41`, when the request had one.
    pub version: Option<String>,
    /// The decoded, cleaned path to forward, when it differs from the one
    /// the client sent (query excluded).
    pub forward_path: Option<String>,
}

/// Why a path cannot be routed at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("path {0:?} is not valid UTF-8 after percent-decoding")]
    NotUtf8(String),
    #[error("path {0:?} contains a control character")]
    ControlCharacter(String),
}

/// Characters a forwarded path may not carry raw; everything else is as
/// dockerd's router would read it after one decode.
const PATH_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

impl Route {
    pub fn classify(method: &Method, raw_path: &str) -> Result<Route, RouteError> {
        let decoded = percent_decode_str(raw_path)
            .decode_utf8()
            .map_err(|_| RouteError::NotUtf8(raw_path.to_string()))?;
        if decoded.chars().any(char::is_control) {
            return Err(RouteError::ControlCharacter(raw_path.to_string()));
        }
        let clean = clean_path(&decoded);
        // Forward the cleaned path re-encoded, unless that is what was sent.
        let encoded = utf8_percent_encode(&clean, PATH_ENCODE).to_string();
        let forward_path = (encoded != raw_path).then_some(encoded);
        let (version, rest) = split_version(&clean);
        let endpoint = if version.is_none() && clean.starts_with(FORGE_PREFIX) {
            Endpoint::Forge(clean[FORGE_PREFIX.len()..].to_string())
        } else {
            classify_docker(method, rest)
        };
        Ok(Route {
            endpoint,
            version: version.map(str::to_string),
            forward_path,
        })
    }
}

/// Removes empty and `.` segments and resolves `..`, as Go's `path.Clean`
/// does for dockerd's redirect; the result always starts with `/` and keeps a
/// trailing slash only for the root.
fn clean_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    let mut clean = String::with_capacity(path.len());
    for segment in &segments {
        clean.push('/');
        clean.push_str(segment);
    }
    if clean.is_empty() {
        clean.push('/');
    }
    clean
}

/// Splits `/v1.41/containers/json` into `Some("1.41")` and `/containers/json`.
/// dockerd's pattern is `/v{version:[0-9.]+}`.
fn split_version(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        let end = rest.find('/').unwrap_or(rest.len());
        let version = &rest[..end];
        if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            let tail = &rest[end..];
            return (Some(version), if tail.is_empty() { "/" } else { tail });
        }
    }
    (None, path)
}

/// The container routes dockerd registers as `/containers/{name:.*}/<suffix>`:
/// the name is greedy, so it may hold `/` (a legacy link alias is
/// `<linker>/<alias>`), and the route is found by its suffix alone.
const CONTAINER_ROUTES: &[(&str, &str, GreedyRoute)] = &[
    ("POST", "/update", GreedyRoute::Update),
    ("POST", "/exec", GreedyRoute::ExecCreate),
    ("POST", "/attach", GreedyRoute::Attach),
    ("GET", "/attach/ws", GreedyRoute::Attach),
    ("POST", "/start", GreedyRoute::Use(ContainerAction::Start)),
    ("POST", "/stop", GreedyRoute::Use(ContainerAction::Stop)),
    ("POST", "/restart", GreedyRoute::Use(ContainerAction::Restart)),
    ("POST", "/kill", GreedyRoute::Use(ContainerAction::Kill)),
    ("POST", "/pause", GreedyRoute::Use(ContainerAction::Pause)),
    ("POST", "/unpause", GreedyRoute::Use(ContainerAction::Unpause)),
    ("GET", "/archive", GreedyRoute::Use(ContainerAction::Archive)),
    ("HEAD", "/archive", GreedyRoute::Use(ContainerAction::Archive)),
    ("PUT", "/archive", GreedyRoute::Use(ContainerAction::Archive)),
    ("GET", "/top", GreedyRoute::Use(ContainerAction::Top)),
    ("POST", "/resize", GreedyRoute::Use(ContainerAction::Resize)),
    ("GET", "/logs", GreedyRoute::Use(ContainerAction::Logs)),
    ("GET", "/stats", GreedyRoute::Use(ContainerAction::Stats)),
    ("GET", "/export", GreedyRoute::Use(ContainerAction::Export)),
    ("GET", "/changes", GreedyRoute::Use(ContainerAction::Changes)),
    ("POST", "/rename", GreedyRoute::Use(ContainerAction::Rename)),
    ("GET", "/json", GreedyRoute::Use(ContainerAction::Inspect)),
    ("POST", "/wait", GreedyRoute::Use(ContainerAction::Wait)),
];

/// What a greedy container route becomes, given its name.
#[derive(Clone, Copy)]
enum GreedyRoute {
    Update,
    ExecCreate,
    Attach,
    Use(ContainerAction),
}

/// Classifies a cleaned, unversioned path as dockerd's router would: its
/// fixed routes first (`/containers/json`, `/containers/create`, …), then
/// the greedy ones, matched by suffix.
fn classify_docker(method: &Method, path: &str) -> Endpoint {
    let method = method.as_str();
    match (method, path) {
        ("POST", "/containers/create") => return Endpoint::ContainerCreate,
        // dockerd's other fixed container routes, which the greedy ones below
        // would otherwise take (`GET /containers/json` is the listing).
        ("GET", "/containers/json") => return Endpoint::ContainerList,
        ("POST", "/containers/prune") => return Endpoint::Passthrough,
        // The container of a commit is in the query (`?container=`).
        ("POST", "/commit") => {
            return Endpoint::ContainerUse {
                id: String::new(),
                action: ContainerAction::Commit,
            }
        }
        ("POST", "/services/create") => return Endpoint::ServiceCreate,
        ("POST", "/volumes/create") => return Endpoint::VolumeCreate,
        ("POST", "/build") => return Endpoint::Build,
        ("POST", "/plugins/pull" | "/plugins/create") => return Endpoint::PluginInstall,
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("/containers/") {
        for (route_method, suffix, route) in CONTAINER_ROUTES {
            if method != *route_method {
                continue;
            }
            if let Some(name) = rest.strip_suffix(suffix) {
                let id = name.to_string();
                return match route {
                    GreedyRoute::Update => Endpoint::ContainerUpdate { id },
                    GreedyRoute::ExecCreate => Endpoint::ExecCreate { id },
                    GreedyRoute::Attach => Endpoint::Attach { id },
                    GreedyRoute::Use(action) => Endpoint::ContainerUse { id, action: *action },
                };
            }
        }
        if method == "DELETE" {
            return Endpoint::ContainerUse {
                id: rest.to_string(),
                action: ContainerAction::Remove,
            };
        }
        return Endpoint::Passthrough;
    }
    // `/exec/{name:.*}/start` and `/networks/{id:.*}/connect|disconnect`
    // are greedy too.
    if let Some(exec_id) = path.strip_prefix("/exec/").and_then(|rest| rest.strip_suffix("/start")) {
        if method == "POST" {
            return Endpoint::ExecStart {
                exec_id: exec_id.to_string(),
            };
        }
    }
    if method == "POST" {
        if let Some(rest) = path.strip_prefix("/networks/") {
            if rest.ends_with("/connect") || rest.ends_with("/disconnect") {
                return Endpoint::NetworkAttach;
            }
        }
        // `/plugins/{name:.*}/enable|upgrade|set` are greedy too.
        if let Some(rest) = path.strip_prefix("/plugins/") {
            if ["/enable", "/upgrade", "/set"]
                .iter()
                .any(|suffix| rest.ends_with(suffix))
            {
                return Endpoint::PluginInstall;
            }
        }
        // Swarm routes take one segment: `/services/{id}/update`.
        if let Some(id) = path
            .strip_prefix("/services/")
            .and_then(|rest| rest.strip_suffix("/update"))
        {
            if !id.contains('/') {
                return Endpoint::ServiceUpdate { id: id.to_string() };
            }
        }
    }
    Endpoint::Passthrough
}

/// The first value of `key` in a query string, decoded as Go's
/// `url.ParseQuery` + `Form.Get` would: first occurrence wins, `+` is a
/// space, and pairs holding a `;` are skipped (Go rejects them).
pub fn query_value(query: Option<&str>, key: &str) -> Option<String> {
    for pair in query?.split('&') {
        if pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        };
        if decode(k).as_deref() == Some(key) {
            return decode(v);
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn endpoint(method: &str, path: &str) -> Endpoint {
        Route::classify(&method.parse().unwrap(), path).unwrap().endpoint
    }

    #[test]
    fn create_is_found_however_spelled() {
        for path in [
            "/containers/create",
            "/v1.41/containers/create",
            "/v1.47/containers/create",
            "//containers//create",
            "/v1.41/containers/./create",
            "/v1.41/images/../containers/create",
            "/containers%2Fcreate",
            "/%63ontainers/create",
            "/v1.41/containers/create/",
        ] {
            assert_eq!(endpoint("POST", path), Endpoint::ContainerCreate, "{path}");
        }
        assert_eq!(endpoint("GET", "/containers/create"), Endpoint::Passthrough);
        assert_eq!(endpoint("POST", "/Containers/create"), Endpoint::Passthrough);
    }

    #[test]
    fn forward_path_is_set_only_when_changed() {
        let route = Route::classify(&Method::POST, "/v1.41/containers/create").unwrap();
        assert_eq!(route.forward_path, None);
        assert_eq!(route.version.as_deref(), Some("1.41"));
        let route = Route::classify(&Method::POST, "/v1.41//containers/%63reate").unwrap();
        assert_eq!(route.forward_path.as_deref(), Some("/v1.41/containers/create"));
        // A literal percent stays encoded, so dockerd's one decode sees
        // what we saw.
        let route = Route::classify(&Method::GET, "/containers/a%2525b//json").unwrap();
        assert_eq!(route.forward_path.as_deref(), Some("/containers/a%2525b/json"));
        let route = Route::classify(&Method::GET, "/containers/a%2525b/json").unwrap();
        assert_eq!(route.forward_path, None);
    }

    #[test]
    fn container_endpoints() {
        assert_eq!(
            endpoint("POST", "/v1.41/containers/abc/exec"),
            Endpoint::ExecCreate { id: "abc".into() }
        );
        assert_eq!(
            endpoint("POST", "/exec/e1/start"),
            Endpoint::ExecStart { exec_id: "e1".into() }
        );
        assert_eq!(
            endpoint("GET", "/containers/web/attach/ws"),
            Endpoint::Attach { id: "web".into() }
        );
        assert_eq!(
            endpoint("PUT", "/v1.41/containers/web/archive"),
            Endpoint::ContainerUse {
                id: "web".into(),
                action: ContainerAction::Archive
            }
        );
        assert_eq!(
            endpoint("POST", "/containers/web/update"),
            Endpoint::ContainerUpdate { id: "web".into() }
        );
        assert_eq!(endpoint("POST", "/networks/n1/connect"), Endpoint::NetworkAttach);
        assert_eq!(
            endpoint("POST", "/services/s1/update"),
            Endpoint::ServiceUpdate { id: "s1".into() }
        );
        assert_eq!(endpoint("HEAD", "/_ping"), Endpoint::Passthrough);
        assert_eq!(endpoint("POST", "/session"), Endpoint::Passthrough);
    }

    #[test]
    fn container_names_are_greedy_as_dockerd_routes_them() {
        // A legacy link alias is `<linker>/<alias>`: dockerd routes
        // `/containers/{name:.*}/start` with the whole of it as the name.
        assert_eq!(
            endpoint("POST", "/v1.23/containers/linker/alias/start"),
            Endpoint::ContainerUse {
                id: "linker/alias".into(),
                action: ContainerAction::Start
            }
        );
        assert_eq!(
            endpoint("POST", "/containers/linker/alias/update"),
            Endpoint::ContainerUpdate {
                id: "linker/alias".into()
            }
        );
        assert_eq!(
            endpoint("POST", "/containers/a/b/c/exec"),
            Endpoint::ExecCreate { id: "a/b/c".into() }
        );
        assert_eq!(
            endpoint("GET", "/containers/a/b/attach/ws"),
            Endpoint::Attach { id: "a/b".into() }
        );
        assert_eq!(
            endpoint("DELETE", "/containers/a/b"),
            Endpoint::ContainerUse {
                id: "a/b".into(),
                action: ContainerAction::Remove
            }
        );
        // The last segment decides, whatever the name holds.
        assert_eq!(
            endpoint("GET", "/containers/x/json/top"),
            Endpoint::ContainerUse {
                id: "x/json".into(),
                action: ContainerAction::Top
            }
        );
        assert_eq!(
            endpoint("POST", "/containers/create/start"),
            Endpoint::ContainerUse {
                id: "create".into(),
                action: ContainerAction::Start
            }
        );
        assert_eq!(
            endpoint("POST", "/exec/a/b/start"),
            Endpoint::ExecStart { exec_id: "a/b".into() }
        );
        assert_eq!(endpoint("POST", "/networks/a/b/connect"), Endpoint::NetworkAttach);
        // dockerd's fixed routes stay what they are.
        assert_eq!(endpoint("GET", "/containers/json"), Endpoint::ContainerList);
        assert_eq!(endpoint("POST", "/containers/prune"), Endpoint::Passthrough);
        assert_eq!(endpoint("POST", "/containers/create"), Endpoint::ContainerCreate);
        assert_eq!(endpoint("POST", "/services/a/b/update"), Endpoint::Passthrough);
    }

    #[test]
    fn forge_api_only_unversioned() {
        assert_eq!(endpoint("GET", "/_forge/v1/health"), Endpoint::Forge("health".into()));
        assert_eq!(endpoint("GET", "/%5Fforge/v1/health"), Endpoint::Forge("health".into()));
        assert_eq!(endpoint("GET", "/v1.41/_forge/v1/health"), Endpoint::Passthrough);
    }

    /// One request per endpoint and container action. The exhaustive
    /// matches in `every_endpoint_and_action_has_a_sample` make a new
    /// variant fail to compile here until it gets an index, and the test
    /// fails until it gets a sample: so the phase test below covers it.
    pub(crate) const SAMPLES: &[(&str, &str)] = &[
        ("GET", "/_forge/v1/health"),
        ("POST", "/containers/create"),
        ("POST", "/v1.41/containers/web/update"),
        ("POST", "/containers/web/exec"),
        ("POST", "/exec/e1/start"),
        ("POST", "/containers/web/attach"),
        ("GET", "/containers/web/attach/ws"),
        ("POST", "/networks/n1/connect"),
        ("POST", "/networks/n1/disconnect"),
        ("POST", "/services/create"),
        ("POST", "/services/s1/update"),
        ("POST", "/volumes/create"),
        ("GET", "/_ping"),
        ("HEAD", "/_ping"),
        ("POST", "/session"),
        ("GET", "/containers/json"),
        ("POST", "/containers/web/start"),
        ("POST", "/containers/web/stop"),
        ("POST", "/containers/web/restart"),
        ("POST", "/containers/web/kill"),
        ("POST", "/containers/web/pause"),
        ("POST", "/containers/web/unpause"),
        ("DELETE", "/containers/web"),
        ("PUT", "/containers/web/archive"),
        ("HEAD", "/containers/web/archive"),
        ("GET", "/containers/web/archive"),
        ("GET", "/containers/web/top"),
        ("POST", "/containers/web/resize"),
        ("POST", "/commit"),
        ("GET", "/containers/web/logs"),
        ("GET", "/containers/web/stats"),
        ("GET", "/containers/web/export"),
        ("GET", "/containers/web/changes"),
        ("POST", "/containers/web/rename"),
        ("GET", "/containers/web/json"),
        ("POST", "/containers/web/wait"),
        // Greedy names, as a legacy link alias spells them.
        ("POST", "/v1.23/containers/linker/alias/start"),
        ("POST", "/containers/linker/alias/update"),
        ("POST", "/containers/linker/alias/exec"),
        ("POST", "/containers/linker/alias/attach"),
        ("POST", "/exec/a/b/start"),
        ("POST", "/networks/a/b/connect"),
        ("POST", "/build"),
        ("POST", "/plugins/pull"),
        ("POST", "/plugins/create"),
        ("POST", "/plugins/vieux/sshfs:latest/enable"),
        ("POST", "/plugins/p/upgrade"),
        ("POST", "/plugins/p/set"),
    ];

    #[test]
    fn every_endpoint_and_action_has_a_sample() {
        let mut endpoints = [false; 15];
        let mut actions = [false; 18];
        for (method, path) in SAMPLES {
            let index = match endpoint(method, path) {
                Endpoint::Forge(_) => 0,
                Endpoint::ContainerCreate => 1,
                Endpoint::ContainerUpdate { .. } => 2,
                Endpoint::ExecCreate { .. } => 3,
                Endpoint::ExecStart { .. } => 4,
                Endpoint::Attach { .. } => 5,
                Endpoint::ContainerUse { action, .. } => {
                    use ContainerAction as A;
                    let action_index = match action {
                        A::Start => 0,
                        A::Stop => 1,
                        A::Restart => 2,
                        A::Kill => 3,
                        A::Pause => 4,
                        A::Unpause => 5,
                        A::Remove => 6,
                        A::Archive => 7,
                        A::Top => 8,
                        A::Resize => 9,
                        A::Commit => 10,
                        A::Logs => 11,
                        A::Stats => 12,
                        A::Export => 13,
                        A::Changes => 14,
                        A::Rename => 15,
                        A::Inspect => 16,
                        A::Wait => 17,
                    };
                    actions[action_index] = true;
                    6
                }
                Endpoint::NetworkAttach => 7,
                Endpoint::ServiceCreate => 8,
                Endpoint::VolumeCreate => 9,
                Endpoint::ServiceUpdate { .. } => 10,
                Endpoint::Passthrough => 11,
                Endpoint::Build => 12,
                Endpoint::PluginInstall => 13,
                Endpoint::ContainerList => 14,
            };
            endpoints[index] = true;
        }
        assert!(
            endpoints.iter().all(|hit| *hit),
            "an endpoint has no sample: {endpoints:?}"
        );
        assert!(actions.iter().all(|hit| *hit), "an action has no sample: {actions:?}");
    }

    #[test]
    fn no_endpoint_with_a_body_or_standards_phase_takes_the_fast_path() {
        for (method, path) in SAMPLES {
            let phases = endpoint(method, path).phases();
            for (sleeping, sleepers) in [(false, false), (true, false), (true, true)] {
                let fast = phases.fast_path(sleeping, sleepers);
                if phases.disguise && sleepers {
                    assert_eq!(fast, FastPath::No, "{method} {path}: a disguised answer is rewritten");
                }
                if phases.judged() || phases.reads_body() || phases.upgrade || phases.shim_api {
                    assert_eq!(fast, FastPath::No, "{method} {path}: {phases:?}");
                }
                if phases.wake == WakePhase::MayAnswer || phases.wake == WakePhase::FromBody {
                    assert_eq!(fast, FastPath::No, "{method} {path}: {phases:?}");
                }
                if phases.wake == WakePhase::Use && sleeping && fast != FastPath::No {
                    assert_eq!(fast, FastPath::Claim, "{method} {path}: the wake phase must run");
                }
            }
        }
    }

    /// What waits for the create checks before it: everything that could
    /// run a container or reach its mounts, and every unknown route; reads
    /// and the container's own create do not.
    #[test]
    fn the_routes_held_for_create_checks() {
        let held: Vec<_> = SAMPLES
            .iter()
            .filter(|(method, path)| endpoint(method, path).phases().after_checks)
            .map(|(method, path)| format!("{method} {path}"))
            .collect();
        assert_eq!(
            held,
            [
                "POST /containers/web/exec",
                "POST /exec/e1/start",
                "POST /containers/web/attach",
                "GET /containers/web/attach/ws",
                "GET /_ping",
                "HEAD /_ping",
                "POST /session",
                "POST /containers/web/start",
                "POST /containers/web/restart",
                "PUT /containers/web/archive",
                "HEAD /containers/web/archive",
                "GET /containers/web/archive",
                "POST /commit",
                "GET /containers/web/export",
                "POST /v1.23/containers/linker/alias/start",
                "POST /containers/linker/alias/exec",
                "POST /containers/linker/alias/attach",
                "POST /exec/a/b/start",
            ]
        );
    }

    #[test]
    fn the_judged_endpoints_are_the_standards_phase() {
        let judged: Vec<_> = SAMPLES
            .iter()
            .filter(|(method, path)| endpoint(method, path).phases().judged())
            .map(|(method, path)| format!("{method} {path}"))
            .collect();
        assert_eq!(
            judged,
            [
                "POST /containers/create",
                "POST /v1.41/containers/web/update",
                "POST /containers/web/exec",
                "POST /services/create",
                "POST /services/s1/update",
                "POST /volumes/create",
                "POST /containers/web/start",
                "POST /v1.23/containers/linker/alias/start",
                "POST /containers/linker/alias/update",
                "POST /containers/linker/alias/exec",
                "POST /build",
                "POST /plugins/pull",
                "POST /plugins/create",
                "POST /plugins/vieux/sshfs:latest/enable",
                "POST /plugins/p/upgrade",
                "POST /plugins/p/set",
            ]
        );
    }

    #[test]
    fn bad_paths() {
        assert!(Route::classify(&Method::GET, "/containers/%ff/json").is_err());
        assert!(Route::classify(&Method::GET, "/containers/a%00b/json").is_err());
    }

    #[test]
    fn query_values_like_go() {
        assert_eq!(query_value(Some("name=web&name=other"), "name").as_deref(), Some("web"));
        assert_eq!(query_value(Some("name=a%2Fb+c"), "name").as_deref(), Some("a/b c"));
        assert_eq!(
            query_value(Some("x=1;name=evil&name=ok"), "name").as_deref(),
            Some("ok")
        );
        assert_eq!(query_value(Some("other=1"), "name"), None);
        assert_eq!(query_value(None, "name"), None);
    }
}
