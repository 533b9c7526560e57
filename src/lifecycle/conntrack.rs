//! Push-based wake on new connections: the kernel raises a conntrack NEW
//! event for every new flow, including those to a frozen container (whose
//! kernel side still completes the handshake and queues the connection). We
//! follow `conntrack -E -e NEW` and map the addresses in each event to the
//! sleeping containers that own them.
//!
//! Data on a connection that was already open raises no event; the wake
//! poller's counters cover that case.

use std::net::IpAddr;
use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

/// Every IP address an event line names (`src=` and `dst=` of both the
/// original and the reply direction): a published port's connection is
/// DNAT'ed, so the container's address shows up in the reply tuple.
pub fn addresses(line: &str) -> Vec<IpAddr> {
    line.split_whitespace()
        .filter_map(|field| field.strip_prefix("dst=").or_else(|| field.strip_prefix("src=")))
        .filter_map(|addr| addr.parse().ok())
        .collect()
}

/// Runs `<program> -E -e NEW` (`conntrack`) and sends the addresses of each event. Returns
/// an error at once when the tool is missing or cannot open netlink, so the
/// caller can log that wake-on-connection falls back to counters.
pub async fn follow(program: &Path, sender: mpsc::Sender<Vec<IpAddr>>) -> std::io::Result<()> {
    let mut child = Command::new(program)
        .args(["-E", "-e", "NEW"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        let found = addresses(&line);
        if !found.is_empty() && sender.send(found).await.is_err() {
            break;
        }
    }
    let status = child.wait().await?;
    Err(std::io::Error::other(format!("conntrack exited: {status}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_both_directions() {
        let line = "    [NEW] tcp      6 120 SYN_SENT src=172.17.0.1 dst=172.17.0.3 sport=43210 dport=8080 [UNREPLIED] src=172.17.0.3 dst=172.17.0.1 sport=8080 dport=43210";
        let found = addresses(line);
        assert!(found.contains(&"172.17.0.3".parse().unwrap()));
        assert!(found.contains(&"172.17.0.1".parse().unwrap()));
        let dnat = "[NEW] tcp 6 120 SYN_SENT src=10.0.0.5 dst=10.0.0.1 sport=5000 dport=18080 [UNREPLIED] src=172.18.0.2 dst=10.0.0.5 sport=8080 dport=5000";
        assert!(addresses(dnat).contains(&"172.18.0.2".parse().unwrap()));
        assert!(addresses("garbage line").is_empty());
        let v6 = "[NEW] tcp 6 120 SYN_SENT src=fd00::1 dst=fd00::2 sport=1 dport=2";
        assert!(addresses(v6).contains(&"fd00::2".parse().unwrap()));
    }
}
