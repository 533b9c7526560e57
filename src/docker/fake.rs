//! An in-memory dockerd behind [`DockerApi`], for in-process tests: it holds
//! containers, answers as dockerd would (409 to a pause of a paused
//! container, 304 to a start of a running one, events for what it does),
//! records every call, and can be scripted to fail, to take its time, or
//! to hold a call until the test lets it go.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{broadcast, Notify, Semaphore};

use super::{DockerApi, DockerError, Event, EventKind, ImageInfo};

/// A call the fake received, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    Ping,
    List,
    Inspect(String),
    Changes(String),
    ImageInfo(String),
    File(String, String),
    Remove(String),
    Volume(String),
    Exec(String),
    Pause(String),
    Unpause(String),
    Start(String),
    Stop(String),
    Events(EventKind),
    Info,
}

/// The calls that can be scripted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Op {
    List,
    Inspect,
    Pause,
    Unpause,
    Start,
    Stop,
}

/// One container as the fake dockerd holds it.
#[derive(Clone, Debug)]
pub(crate) struct FakeContainer {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub running: bool,
    pub paused: bool,
    /// The init process while it runs; each start gets a new one.
    pub pid: u32,
    pub network_mode: String,
    pub addresses: Vec<IpAddr>,
    /// Merged over the inspect JSON (`HostConfig`, `Mounts`, …).
    pub extra: Value,
    /// What `/changes` answers.
    pub changes: Value,
}

impl FakeContainer {
    /// A running container on the default bridge; `n` makes its 64-hex id,
    /// its pid and its address.
    pub fn running(n: u8, name: &str) -> FakeContainer {
        FakeContainer {
            id: format!("{n:02x}").repeat(32),
            name: name.to_string(),
            image: "forge-test/busybox".to_string(),
            labels: BTreeMap::new(),
            running: true,
            paused: false,
            pid: 1000 + u32::from(n),
            network_mode: "bridge".to_string(),
            addresses: vec![IpAddr::from([172, 17, 0, n])],
            extra: json!({}),
            changes: json!([]),
        }
    }

    pub fn label(mut self, key: &str, value: &str) -> FakeContainer {
        self.labels.insert(key.to_string(), value.to_string());
        self
    }

    fn inspect(&self) -> Value {
        let mut inspect = json!({
            "Id": self.id,
            "Name": format!("/{}", self.name),
            "Config": { "Image": self.image, "Labels": self.labels, "User": "" },
            "State": {
                "Status": if self.paused { "paused" } else if self.running { "running" } else { "exited" },
                "Running": self.running,
                "Paused": self.paused,
                "Pid": if self.running { self.pid } else { 0 },
                "StartedAt": "2024-01-01T00:00:00Z",
            },
            "HostConfig": { "NetworkMode": self.network_mode, "NanoCpus": 0, "Memory": 0 },
            "NetworkSettings": {
                "Networks": {
                    "bridge": {
                        "IPAddress": self.addresses.first().map(ToString::to_string).unwrap_or_default(),
                        "GlobalIPv6Address": "",
                    }
                },
                "Ports": {},
            },
            "Mounts": [],
        });
        merge(&mut inspect, &self.extra);
        inspect
    }
}

fn merge(into: &mut Value, over: &Value) {
    match (into, over) {
        (Value::Object(into), Value::Object(over)) => {
            for (key, value) in over {
                merge(into.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (into, over) => *into = over.clone(),
    }
}

/// A call held at its gate until the test releases it.
struct Gate {
    arrived: Notify,
    waiting: Mutex<usize>,
    release: Semaphore,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            arrived: Notify::new(),
            waiting: Mutex::new(0),
            release: Semaphore::new(0),
        }
    }
}

/// What a test holds to let held calls go.
pub(crate) struct Hold {
    gate: Arc<Gate>,
}

impl Hold {
    /// Waits until a call has reached the gate (and is held there).
    pub async fn arrived(&self) {
        loop {
            let notified = self.gate.arrived.notified();
            if *self.gate.waiting.lock() > 0 {
                return;
            }
            notified.await;
        }
    }

    /// Lets one held call (or the next one) go on.
    pub fn release_one(&self) {
        self.gate.release.add_permits(1);
    }
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, FakeContainer>,
    calls: Vec<Call>,
    failures: HashMap<Op, VecDeque<DockerError>>,
    delays: HashMap<Op, Duration>,
    gates: HashMap<Op, Arc<Gate>>,
    /// Actions whose events the API calls do not emit (late events).
    withheld: std::collections::HashSet<String>,
    next_pid: u32,
}

/// The fake dockerd.
pub(crate) struct FakeDocker {
    state: Mutex<State>,
    events: broadcast::Sender<(EventKind, Event)>,
}

impl FakeDocker {
    pub fn new(containers: impl IntoIterator<Item = FakeContainer>) -> Arc<FakeDocker> {
        let state = State {
            containers: containers.into_iter().map(|c| (c.id.clone(), c)).collect(),
            next_pid: 5000,
            ..State::default()
        };
        Arc::new(FakeDocker {
            state: Mutex::new(state),
            events: broadcast::channel(1024).0,
        })
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().calls.clone()
    }

    /// How many calls so far were `call`.
    pub fn count(&self, call: &Call) -> usize {
        self.state.lock().calls.iter().filter(|c| *c == call).count()
    }

    pub fn container(&self, id: &str) -> FakeContainer {
        self.state.lock().containers[id].clone()
    }

    /// Adds a container (or changes one) without an event, as if it had
    /// been there all along.
    pub fn put(&self, container: FakeContainer) {
        self.state.lock().containers.insert(container.id.clone(), container);
    }

    /// The next call of `op` fails with `error`.
    pub fn fail_next(&self, op: Op, error: DockerError) {
        self.state.lock().failures.entry(op).or_default().push_back(error);
    }

    /// Every call of `op` takes `delay` (of tokio's clock) before it acts.
    pub fn delay(&self, op: Op, delay: Duration) {
        self.state.lock().delays.insert(op, delay);
    }

    /// From now on, calls of `op` wait at a gate until released.
    pub fn hold(&self, op: Op) -> Hold {
        let gate = self.state.lock().gates.entry(op).or_default().clone();
        Hold { gate }
    }

    /// What someone else does through dockerd: pause, unpause, start, stop
    /// behind the shim's back, with the events dockerd sends.
    pub fn outside(&self, id: &str, action: &str) {
        let mut state = self.state.lock();
        let next_pid = state.next_pid;
        let container = state.containers.get_mut(id).expect("known container");
        match action {
            "pause" => container.paused = true,
            "unpause" => container.paused = false,
            "start" => {
                container.running = true;
                container.pid = next_pid;
            }
            "die" => {
                container.running = false;
                container.paused = false;
            }
            _ => {}
        }
        if action == "start" {
            state.next_pid += 1;
        }
        drop(state);
        self.emit(EventKind::Container, id, action);
    }

    pub fn emit(&self, kind: EventKind, id: &str, action: &str) {
        // dockerd's container events carry the name, the image and the labels.
        let attributes = match self.state.lock().containers.get(id) {
            Some(c) if kind == EventKind::Container => {
                let mut attributes = c.labels.clone();
                attributes.insert("name".into(), c.name.clone());
                attributes.insert("image".into(), c.image.clone());
                attributes
            }
            _ => BTreeMap::new(),
        };
        let event = Event {
            action: action.to_string(),
            id: id.to_string(),
            attributes,
        };
        let _ = self.events.send((kind, event));
    }

    /// Records the call, then applies what was scripted for `op`: a gate,
    /// a delay, a failure.
    async fn enter(&self, call: Call, op: Option<Op>) -> Result<(), DockerError> {
        let (gate, delay) = {
            let mut state = self.state.lock();
            state.calls.push(call);
            match op {
                Some(op) => (state.gates.get(&op).cloned(), state.delays.get(&op).copied()),
                None => (None, None),
            }
        };
        if let Some(gate) = gate {
            *gate.waiting.lock() += 1;
            gate.arrived.notify_waiters();
            gate.release.acquire().await.expect("never closed").forget();
            *gate.waiting.lock() -= 1;
        }
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        match op.and_then(|op| self.state.lock().failures.get_mut(&op)?.pop_front()) {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Changes container `id` as `change` says; emits `action` when it did.
    fn act(
        &self,
        id: &str,
        action: &str,
        change: impl FnOnce(&mut FakeContainer, u32) -> Result<(), DockerError>,
    ) -> Result<(), DockerError> {
        let mut state = self.state.lock();
        let pid = state.next_pid;
        let Some(container) = state.containers.get_mut(id) else {
            return Err(DockerError::NotFound(format!("No such container: {id}")));
        };
        change(container, pid)?;
        if action == "start" {
            state.next_pid += 1;
        }
        let withheld = state.withheld.contains(action);
        drop(state);
        if !withheld {
            self.emit(EventKind::Container, id, action);
        }
        Ok(())
    }

    /// From now on, the calls that do `action` do not emit its event, as a
    /// dockerd whose event comes late; the test [`FakeDocker::emit`]s it.
    pub fn withhold_events(&self, action: &str) {
        self.state.lock().withheld.insert(action.to_string());
    }

    fn find(&self, reference: &str) -> Result<FakeContainer, DockerError> {
        let state = self.state.lock();
        let reference = reference.trim_start_matches('/');
        let found = state.containers.get(reference).or_else(|| {
            state.containers.values().find(|c| c.name == reference).or_else(|| {
                let mut prefixed = state.containers.values().filter(|c| c.id.starts_with(reference));
                match (prefixed.next(), prefixed.next()) {
                    (Some(c), None) if !reference.is_empty() => Some(c),
                    _ => None,
                }
            })
        });
        found
            .cloned()
            .ok_or_else(|| DockerError::NotFound(format!("No such container: {reference}")))
    }
}

impl DockerApi for FakeDocker {
    fn ping(&self) -> BoxFuture<'_, Result<(), DockerError>> {
        Box::pin(async move { self.enter(Call::Ping, None).await })
    }

    fn list_containers(&self) -> BoxFuture<'_, Result<Vec<String>, DockerError>> {
        Box::pin(async move {
            self.enter(Call::List, Some(Op::List)).await?;
            Ok(self.state.lock().containers.keys().cloned().collect())
        })
    }

    fn inspect_container_json<'a>(&'a self, reference: &'a str) -> BoxFuture<'a, Result<Value, DockerError>> {
        Box::pin(async move {
            self.enter(Call::Inspect(reference.to_string()), Some(Op::Inspect))
                .await?;
            Ok(self.find(reference)?.inspect())
        })
    }

    fn container_changes<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Value, DockerError>> {
        Box::pin(async move {
            self.enter(Call::Changes(id.to_string()), None).await?;
            Ok(self.find(id)?.changes)
        })
    }

    fn image_info<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<Option<ImageInfo>, DockerError>> {
        Box::pin(async move {
            self.enter(Call::ImageInfo(image.to_string()), None).await?;
            Ok(Some(ImageInfo {
                id: format!("sha256:{:0>64}", image.len()),
                ..ImageInfo::default()
            }))
        })
    }

    fn container_file<'a>(&'a self, id: &'a str, path: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, DockerError>> {
        Box::pin(async move {
            self.enter(Call::File(id.to_string(), path.to_string()), None).await?;
            self.find(id)?;
            Ok(None)
        })
    }

    fn image_file<'a>(&'a self, image_id: &'a str, path: &'a str) -> BoxFuture<'a, Result<Option<Bytes>, DockerError>> {
        Box::pin(async move {
            self.enter(Call::File(image_id.to_string(), path.to_string()), None)
                .await?;
            Ok(None)
        })
    }

    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(async move {
            self.enter(Call::Remove(id.to_string()), None).await?;
            self.state.lock().containers.remove(id);
            self.emit(EventKind::Container, id, "destroy");
            Ok(())
        })
    }

    fn inspect_volume_json<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Value, DockerError>> {
        Box::pin(async move {
            self.enter(Call::Volume(name.to_string()), None).await?;
            Err(DockerError::NotFound(format!("get {name}: no such volume")))
        })
    }

    fn data_root(&self) -> BoxFuture<'_, Result<String, DockerError>> {
        Box::pin(async move {
            self.enter(Call::Info, None).await?;
            Ok("/var/lib/docker".to_string())
        })
    }

    fn exec_container<'a>(&'a self, exec_id: &'a str) -> BoxFuture<'a, Result<String, DockerError>> {
        Box::pin(async move {
            self.enter(Call::Exec(exec_id.to_string()), None).await?;
            Err(DockerError::NotFound(format!("No such exec instance: {exec_id}")))
        })
    }

    fn pause<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(async move {
            self.enter(Call::Pause(id.to_string()), Some(Op::Pause)).await?;
            self.act(id, "pause", |c, _| {
                if !c.running {
                    return Err(DockerError::Conflict(format!("Container {id} is not running")));
                }
                if c.paused {
                    return Err(DockerError::AlreadyPaused(format!("Container {id} is already paused")));
                }
                c.paused = true;
                Ok(())
            })
        })
    }

    fn unpause<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(async move {
            self.enter(Call::Unpause(id.to_string()), Some(Op::Unpause)).await?;
            self.act(id, "unpause", |c, _| {
                if !c.paused {
                    return Err(DockerError::Conflict(format!("Container {id} is not paused")));
                }
                c.paused = false;
                Ok(())
            })
        })
    }

    fn start<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(async move {
            self.enter(Call::Start(id.to_string()), Some(Op::Start)).await?;
            self.act(id, "start", |c, pid| {
                if c.running {
                    return Err(DockerError::NotModified);
                }
                c.running = true;
                c.pid = pid;
                Ok(())
            })
        })
    }

    fn stop<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), DockerError>> {
        Box::pin(async move {
            self.enter(Call::Stop(id.to_string()), Some(Op::Stop)).await?;
            self.act(id, "die", |c, _| {
                if !c.running {
                    return Err(DockerError::NotModified);
                }
                c.running = false;
                c.paused = false;
                Ok(())
            })
        })
    }

    fn events(&self, kind: EventKind, _since: Option<SystemTime>) -> BoxStream<'static, Result<Event, DockerError>> {
        self.state.lock().calls.push(Call::Events(kind));
        let receiver = self.events.subscribe();
        let stream = futures_util::stream::unfold(receiver, move |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok((k, event)) if k == kind => return Some((Ok(event), receiver)),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Box::pin(stream)
    }
}
