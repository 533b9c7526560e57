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

    /// The user an image is configured to run as (`Config.User`), `""` for
    /// root by default. `Ok(None)` when the image does not exist.
    pub async fn image_user(&self, image: &str) -> Result<Option<String>, DockerError> {
        let client = self.client().await?;
        match client.inspect_image(image).await {
            Ok(inspect) => Ok(Some(
                inspect
                    .config
                    .and_then(|config| config.user)
                    .unwrap_or_default(),
            )),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => {
                self.reset();
                Err(DockerError::Api(e))
            }
        }
    }
}
