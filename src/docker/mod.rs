//! The only place that talks to dockerd as a client (through bollard), for
//! what the shim needs to know or do on its own: image users for the
//! standards, and later the lifecycle's pause and unpause.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("cannot connect to dockerd at {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("dockerd: {0}")]
    Api(#[from] bollard::errors::Error),
}

/// A lazily connected bollard client. The API version is negotiated on first
/// use (dockerd 20.10 speaks 1.41, below bollard's default), and again after
/// an error, so a dockerd that restarts is picked up without a shim restart.
pub struct Docker {
    path: PathBuf,
    client: Mutex<Option<bollard::Docker>>,
}

impl Docker {
    pub fn new(path: &Path) -> Docker {
        Docker {
            path: path.to_path_buf(),
            client: Mutex::new(None),
        }
    }

    pub async fn client(&self) -> Result<bollard::Docker, DockerError> {
        if let Some(client) = self.client.lock().clone() {
            return Ok(client);
        }
        let connect_err = |source| DockerError::Connect {
            path: self.path.clone(),
            source,
        };
        let path = self.path.to_string_lossy();
        let client = bollard::Docker::connect_with_unix(&path, 120, bollard::API_DEFAULT_VERSION)
            .map_err(connect_err)?
            .negotiate_version()
            .await
            .map_err(connect_err)?;
        *self.client.lock() = Some(client.clone());
        Ok(client)
    }

    /// Forgets the negotiated client, e.g. after dockerd went away.
    pub fn reset(&self) {
        self.client.lock().take();
    }

    /// Whether dockerd answers `/_ping`.
    pub async fn ping(&self) -> Result<(), DockerError> {
        let client = self.client().await?;
        client.ping().await.map(drop).map_err(|e| {
            self.reset();
            DockerError::Api(e)
        })
    }

    /// The user an image is configured to run as (`Config.User`), `""` for
    /// root by default. `Ok(None)` when the image does not exist.
    pub async fn image_user(&self, image: &str) -> Result<Option<String>, DockerError> {
        let client = self.client().await?;
        match client.inspect_image(image).await {
            Ok(inspect) => Ok(Some(inspect.config.and_then(|config| config.user).unwrap_or_default())),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => {
                self.reset();
                Err(DockerError::Api(e))
            }
        }
    }
}

/// What the shim needs of a container's inspect.
#[derive(Clone, Debug, Default)]
pub struct ContainerInfo {
    pub id: String,
    /// Without the leading `/`.
    pub name: Option<String>,
    /// The image as the create request named it (`Config.Image`).
    pub image: Option<String>,
    pub labels: Option<serde_json::Map<String, serde_json::Value>>,
    pub pid: Option<i64>,
    pub running: bool,
    pub paused: bool,
    pub started_at: Option<String>,
    pub nano_cpus: Option<i64>,
    pub memory_limit: Option<i64>,
    /// The container's addresses on its Docker networks.
    pub addresses: Vec<std::net::IpAddr>,
    /// Its TCP ports published on the host, as bound while it runs.
    pub published: Vec<PublishedPort>,
    /// Whether it has a network namespace of its own (not `host`, not
    /// `container:<id>`), so its `/proc/<pid>/net/dev` is its own traffic.
    pub own_network: bool,
    /// `Config.User` (merged with the image's).
    pub user: Option<String>,
    /// `HostConfig` as dockerd's JSON, for the update rules.
    pub host_config: Option<serde_json::Value>,
}

impl Docker {
    /// Inspects a container by id, name or id prefix; `None` when dockerd
    /// does not know it or cannot be reached (the caller then forwards the
    /// request and dockerd gives its own answer).
    pub async fn inspect_container(&self, reference: &str) -> Option<ContainerInfo> {
        let client = self.client().await.ok()?;
        let inspect = match client
            .inspect_container(reference, None::<bollard::query_parameters::InspectContainerOptions>)
            .await
        {
            Ok(inspect) => inspect,
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return None,
            Err(e) => {
                tracing::debug!(reference, error = %e, "inspect failed");
                self.reset();
                return None;
            }
        };
        let config = inspect.config.unwrap_or_default();
        let state = inspect.state.unwrap_or_default();
        let host_config = inspect.host_config.unwrap_or_default();
        let host_config_json = serde_json::to_value(&host_config).ok();
        let published = inspect
            .network_settings
            .as_ref()
            .and_then(|settings| settings.ports.as_ref())
            .map(published_ports)
            .unwrap_or_default();
        let addresses = inspect
            .network_settings
            .and_then(|settings| settings.networks)
            .map(|networks| {
                networks
                    .values()
                    .flat_map(|n| [n.ip_address.clone(), n.global_ipv6_address.clone()])
                    .flatten()
                    .filter_map(|a| a.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        Some(ContainerInfo {
            id: inspect.id.unwrap_or_default(),
            name: inspect.name.map(|n| n.trim_start_matches('/').to_string()),
            image: config.image.clone(),
            labels: config.labels.clone().map(|labels| {
                labels
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect()
            }),
            pid: state.pid,
            running: state.running.unwrap_or(false),
            paused: state.paused.unwrap_or(false),
            started_at: state.started_at,
            nano_cpus: host_config.nano_cpus,
            memory_limit: host_config.memory,
            addresses,
            published,
            own_network: host_config
                .network_mode
                .as_deref()
                .is_none_or(|mode| mode != "host" && !mode.starts_with("container:")),
            user: config.user.clone(),
            host_config: host_config_json,
        })
    }
}

impl Docker {
    /// A container's inspect as dockerd's JSON (`HostConfig`, `Mounts`, …),
    /// for rules that judge another container; `None` when it is unknown.
    pub async fn inspect_container_json(&self, reference: &str) -> Option<serde_json::Value> {
        let client = self.client().await.ok()?;
        let inspect = client
            .inspect_container(reference, None::<bollard::query_parameters::InspectContainerOptions>)
            .await
            .ok()?;
        serde_json::to_value(inspect).ok()
    }
}

/// One TCP port published on the host.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublishedPort {
    pub host_ip: std::net::IpAddr,
    pub host_port: u16,
    pub container_port: u16,
}

/// `NetworkSettings.Ports` (`"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}]`)
/// to the TCP ports bound on the host.
fn published_ports(
    ports: &std::collections::HashMap<String, Option<Vec<bollard::models::PortBinding>>>,
) -> Vec<PublishedPort> {
    let mut published = Vec::new();
    for (key, bindings) in ports {
        let Some((port, "tcp")) = key.split_once('/') else {
            continue;
        };
        let Ok(container_port) = port.parse() else { continue };
        for binding in bindings.iter().flatten() {
            let host_port = binding.host_port.as_deref().and_then(|p| p.parse().ok());
            let host_ip = binding
                .host_ip
                .as_deref()
                .filter(|ip| !ip.is_empty())
                .unwrap_or("0.0.0.0");
            if let (Some(host_port), Ok(host_ip)) = (host_port, host_ip.parse()) {
                published.push(PublishedPort {
                    host_ip,
                    host_port,
                    container_port,
                });
            }
        }
    }
    published.sort_by_key(|p| (p.host_port, p.host_ip));
    published.dedup();
    published
}
