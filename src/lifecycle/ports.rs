//! Holding a deep sleeper's published ports, so a connection that arrives
//! while it is stopped is not refused.
//!
//! When the shim stops a container (deep sleep), docker-proxy lets go of its
//! published ports; the shim binds them itself. A connection that arrives is
//! accepted and held, and wakes the container. dockerd needs the ports back
//! to start it, so the wake first closes the listeners (from then until
//! docker-proxy binds again, a few milliseconds inside `docker start`, a new
//! connection is refused: the one window left), starts the container, and
//! hands every held connection straight to the container's address, retrying
//! until its server listens.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::docker::PublishedPort;

/// How long a held connection waits for the woken container's server.
const HANDOVER_DEADLINE: Duration = Duration::from_secs(30);
const HANDOVER_RETRY: Duration = Duration::from_millis(20);

/// The listeners of one stopped container and the connections they took.
pub struct PortHold {
    accept_tasks: Vec<JoinHandle<()>>,
    held: std::sync::Arc<Mutex<Vec<(TcpStream, u16)>>>,
}

impl PortHold {
    /// Binds every published port. Ports that cannot be bound (someone else
    /// took them) are logged and skipped. `on_connection` runs for every
    /// accepted connection (it starts the wake).
    pub async fn bind(ports: &[PublishedPort], on_connection: impl Fn() + Send + Sync + Clone + 'static) -> PortHold {
        let held = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut accept_tasks = Vec::new();
        for port in ports {
            let address = SocketAddr::new(port.host_ip, port.host_port);
            let listener = match TcpListener::bind(address).await {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(%address, error = %e, "cannot hold the published port of a stopped container");
                    continue;
                }
            };
            let held = held.clone();
            let container_port = port.container_port;
            let on_connection = on_connection.clone();
            accept_tasks.push(tokio::spawn(async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, _)) => {
                            held.lock().push((stream, container_port));
                            on_connection();
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "accept on a held port failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }));
        }
        PortHold { accept_tasks, held }
    }

    pub fn is_empty(&self) -> bool {
        self.accept_tasks.is_empty()
    }

    /// Closes the listeners (the ports are free for docker-proxy again) and
    /// returns the connections taken so far.
    pub fn release(self) -> Vec<(TcpStream, u16)> {
        for task in &self.accept_tasks {
            task.abort();
        }
        std::mem::take(&mut *self.held.lock())
    }
}

/// Hands held connections to the woken container at `addresses`, each on
/// its own task: connect (retrying while the server starts), then splice.
pub fn hand_over(held: Vec<(TcpStream, u16)>, addresses: &[IpAddr]) {
    let Some(address) = addresses.iter().find(|a| a.is_ipv4()).or(addresses.first()).copied() else {
        tracing::warn!(
            n = held.len(),
            "woken container has no address; dropping held connections"
        );
        return;
    };
    for (mut client, container_port) in held {
        let target = SocketAddr::new(address, container_port);
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + HANDOVER_DEADLINE;
            let mut upstream = loop {
                match TcpStream::connect(target).await {
                    Ok(stream) => break stream,
                    Err(e) if tokio::time::Instant::now() >= deadline => {
                        tracing::warn!(%target, error = %e, "held connection: the container never listened");
                        return;
                    }
                    Err(_) => tokio::time::sleep(HANDOVER_RETRY).await,
                }
            };
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                tracing::debug!(%target, error = %e, "held connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn held_connection_is_handed_over() {
        // A free port to hold, then a "container" server on another port.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let held_port = probe.local_addr().unwrap().port();
        drop(probe);
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server_port = server.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut stream, _) = server.accept().await.unwrap();
            let mut buffer = [0u8; 5];
            stream.read_exact(&mut buffer).await.unwrap();
            stream.write_all(b"pong:").await.unwrap();
            stream.write_all(&buffer).await.unwrap();
        });

        let woken = Arc::new(AtomicUsize::new(0));
        let counter = woken.clone();
        let published = [PublishedPort {
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port: held_port,
            container_port: server_port,
        }];
        let hold = PortHold::bind(&published, move || {
            counter.fetch_add(1, Ordering::SeqCst);
        })
        .await;
        assert!(!hold.is_empty());

        // The client connects while "stopped": accepted, not refused.
        let mut client = TcpStream::connect(("127.0.0.1", held_port)).await.unwrap();
        client.write_all(b"hello").await.unwrap();
        while woken.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let held = hold.release();
        assert_eq!(held.len(), 1);
        hand_over(held, &["127.0.0.1".parse().unwrap()]);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"pong:hello");
        // Released: the port can be bound again (docker-proxy's turn).
        assert!(std::net::TcpListener::bind(("127.0.0.1", held_port)).is_ok());
    }
}
