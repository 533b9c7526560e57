use serde_json::json;

use super::*;

#[test]
fn container_info_from_dockerd_json() {
    let inspect = json!({
        "Id": "b7f0f468feb6",
        "Name": "/web",
        "Config": {"Image": "nginx", "User": "101", "Labels": {"com.docker.compose.service": "web"}},
        "State": {"Running": true, "Paused": false, "Pid": 4242, "StartedAt": "2024-01-01T00:00:00Z"},
        "HostConfig": {"NanoCpus": 500000000, "Memory": 0, "NetworkMode": "bridge", "FieldBollardDoesNotKnow": 1},
        "NetworkSettings": {
            "Networks": {
                "bridge": {"IPAddress": "172.17.0.3", "GlobalIPv6Address": ""},
                "app": {"IPAddress": "172.18.0.2", "GlobalIPv6Address": "fd00::2"}
            },
            "Ports": {
                "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}, {"HostIp": "", "HostPort": "8080"}],
                "443/tcp": null,
                "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "5353"}]
            }
        }
    });
    let info = ContainerInfo::from_inspect(&inspect).unwrap();
    assert_eq!(info.id, "b7f0f468feb6");
    assert_eq!(info.name.as_deref(), Some("web"));
    assert_eq!(info.image.as_deref(), Some("nginx"));
    assert_eq!(info.user.as_deref(), Some("101"));
    assert_eq!(info.labels.unwrap()["com.docker.compose.service"], "web");
    assert!(info.running && !info.paused);
    assert_eq!(info.pid, Some(4242));
    assert_eq!(info.nano_cpus, Some(500_000_000));
    assert!(info.own_network);
    let mut addresses: Vec<String> = info.addresses.iter().map(ToString::to_string).collect();
    addresses.sort();
    assert_eq!(addresses, ["172.17.0.3", "172.18.0.2", "fd00::2"]);
    // Only TCP, one entry per distinct binding (an empty HostIp is 0.0.0.0).
    assert_eq!(
        info.published,
        [PublishedPort {
            host_ip: "0.0.0.0".parse().unwrap(),
            host_port: 8080,
            container_port: 80
        }]
    );
    // Every field of dockerd's HostConfig is kept, known to bollard or not.
    assert_eq!(info.host_config.unwrap()["FieldBollardDoesNotKnow"], 1);
}

#[test]
fn shared_networks_are_not_its_own() {
    for (mode, own) in [
        ("host", false),
        ("container:abc", false),
        ("bridge", true),
        ("app_default", true),
    ] {
        let inspect = json!({"Id": "x", "HostConfig": {"NetworkMode": mode}});
        assert_eq!(
            ContainerInfo::from_inspect(&inspect).unwrap().own_network,
            own,
            "{mode}"
        );
    }
    assert!(ContainerInfo::from_inspect(&json!({"Id": "x"})).unwrap().own_network);
    assert!(ContainerInfo::from_inspect(&json!({"message": "No such container"})).is_none());
}
