//! Create: the deny rules, the Docker socket in every spelling.

use serde_json::json;

use super::*;

#[test]
fn deny_rules() {
    let cases: &[(&str, &str)] = &[
        (r#"{"HostConfig":{"Privileged":true}}"#, rule::DENY_PRIVILEGED),
        (r#"{"HostConfig":{"UsernsMode":"host"}}"#, rule::DENY_PRIVILEGED),
        (r#"{"HostConfig":{"MaskedPaths":[]}}"#, rule::DENY_PRIVILEGED),
        (
            r#"{"HostConfig":{"ReadonlyPaths":["/proc/bus"]}}"#,
            rule::DENY_PRIVILEGED,
        ),
        (
            r#"{"HostConfig":{"SecurityOpt":["systempaths=unconfined"]}}"#,
            rule::DENY_PRIVILEGED,
        ),
        (r#"{"HostConfig":{"PidMode":"host"}}"#, rule::DENY_HOST_PID),
        (r#"{"HostConfig":{"IpcMode":"host"}}"#, rule::DENY_HOST_IPC),
        (r#"{"HostConfig":{"NetworkMode":"host"}}"#, rule::DENY_HOST_NETWORK),
        (r#"{"HostConfig":{"NetworkMode":" HOST "}}"#, rule::DENY_HOST_NETWORK),
        (r#"{"HostConfig":{"UTSMode":"host"}}"#, rule::DENY_HOST_NETWORK),
        (r#"{"HostConfig":{"CapAdd":["SYS_ADMIN"]}}"#, rule::DENY_CAP_ADD),
        (r#"{"HostConfig":{"CapAdd":["cap_sys_admin"]}}"#, rule::DENY_CAP_ADD),
        (r#"{"HostConfig":{"CapAdd":["ALL"]}}"#, rule::DENY_CAP_ADD),
        (r#"{"HostConfig":{"CapAdd":["CHOWN","NET_ADMIN"]}}"#, rule::DENY_CAP_ADD),
        (
            r#"{"HostConfig":{"Devices":[{"PathOnHost":"/dev/sda","PathInContainer":"/dev/sda"}]}}"#,
            rule::DENY_DEVICES,
        ),
        (
            r#"{"HostConfig":{"DeviceCgroupRules":["c 1:3 mr"]}}"#,
            rule::DENY_DEVICES,
        ),
        (
            r#"{"HostConfig":{"DeviceRequests":[{"Count":-1,"Capabilities":[["gpu"]]}]}}"#,
            rule::DENY_DEVICES,
        ),
        (
            r#"{"HostConfig":{"SecurityOpt":["seccomp=unconfined"]}}"#,
            rule::DENY_SECCOMP_UNCONFINED,
        ),
        (
            r#"{"HostConfig":{"SecurityOpt":["seccomp:unconfined"]}}"#,
            rule::DENY_SECCOMP_UNCONFINED,
        ),
        (
            r#"{"HostConfig":{"SecurityOpt":[" Seccomp = Unconfined "]}}"#,
            rule::DENY_SECCOMP_UNCONFINED,
        ),
        (
            r#"{"HostConfig":{"SecurityOpt":["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"]}}"#,
            rule::DENY_SECCOMP_UNCONFINED,
        ),
        (
            r#"{"HostConfig":{"SecurityOpt":["apparmor=unconfined"]}}"#,
            rule::DENY_APPARMOR_UNCONFINED,
        ),
        (
            r#"{"HostConfig":{"SecurityOpt":["apparmor:UNCONFINED"]}}"#,
            rule::DENY_APPARMOR_UNCONFINED,
        ),
        (
            r#"{"HostConfig":{"SecurityOpt":["label=disable"]}}"#,
            rule::DENY_APPARMOR_UNCONFINED,
        ),
    ];
    for (input, rule) in cases {
        check(DENY_ONLY, input, Denied(rule));
    }
}

#[test]
fn seccomp_profiles_the_shim_cannot_read_are_denied() {
    // Go reads a lone surrogate as U+FFFD and nests up to 10,000 deep;
    // serde_json refuses both. What the shim cannot read, it does not pass.
    let surrogate =
        r#"{"HostConfig":{"SecurityOpt":["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\",\"x\":\"\\ud800\"}"]}}"#;
    let deep = format!(
        r#"{{"HostConfig":{{"SecurityOpt":["seccomp={{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"x\":{}{}}}"]}}}}"#,
        "[".repeat(300),
        "]".repeat(300)
    );
    let not_json = r#"{"HostConfig":{"SecurityOpt":["seccomp=default.json"]}}"#;
    for input in [surrogate, deep.as_str(), not_json] {
        check(DENY_ONLY, input, Denied(rule::DENY_SECCOMP_UNCONFINED));
    }
}

#[test]
fn deny_rules_allow_the_harmless() {
    let bodies = [
        r#"{"HostConfig":{"Privileged":false,"NetworkMode":"bridge","PidMode":"","IpcMode":"private","UTSMode":""}}"#,
        r#"{"HostConfig":{"CapAdd":["CHOWN","cap_net_bind_service"],"Devices":[],"DeviceCgroupRules":null}}"#,
        r#"{"HostConfig":{"SecurityOpt":["seccomp=builtin","apparmor=docker-default","label=level:s0"]}}"#,
        r#"{"HostConfig":{"SecurityOpt":["seccomp={\"defaultAction\":\"SCMP_ACT_ERRNO\"}"]}}"#,
        // What `docker inspect` shows, copied back by tools that recreate containers.
        r#"{"HostConfig":{"MaskedPaths":["/proc/asound","/proc/acpi","/proc/kcore","/proc/keys",
            "/proc/latency_stats","/proc/timer_list","/proc/timer_stats","/proc/sched_debug","/proc/scsi",
            "/sys/firmware","/sys/devices/virtual/powercap"],
            "ReadonlyPaths":["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]}}"#,
        r#"{"HostConfig":{"CgroupnsMode":"host","NetworkMode":"container:abc"}}"#,
    ];
    let config = "standards: { cap_add_allowed: [CHOWN, NET_BIND_SERVICE] }";
    for body in bodies {
        check(config, body, Body(body, &[]));
    }
}

#[test]
fn each_deny_rule_can_be_switched_off() {
    let cases: &[(&str, &str)] = &[
        ("privileged", r#"{"HostConfig":{"Privileged":true}}"#),
        (
            "docker_socket",
            r#"{"HostConfig":{"Binds":["/var/run/docker.sock:/s"]}}"#,
        ),
        ("host_pid", r#"{"HostConfig":{"PidMode":"host"}}"#),
        ("host_ipc", r#"{"HostConfig":{"IpcMode":"host"}}"#),
        ("host_network", r#"{"HostConfig":{"NetworkMode":"host"}}"#),
        ("cap_add", r#"{"HostConfig":{"CapAdd":["SYS_ADMIN"]}}"#),
        ("devices", r#"{"HostConfig":{"Devices":[{"PathOnHost":"/dev/fuse"}]}}"#),
        (
            "seccomp_unconfined",
            r#"{"HostConfig":{"SecurityOpt":["seccomp=unconfined"]}}"#,
        ),
        (
            "apparmor_unconfined",
            r#"{"HostConfig":{"SecurityOpt":["apparmor=unconfined"]}}"#,
        ),
    ];
    for (switch, body) in cases {
        check(DENY_ONLY, body, Denied(&format!("deny.{switch}")));
        let off = format!("standards: {{ deny: {{ {switch}: false }} }}");
        check(&off, body, Body(body, &[]));
    }
}

#[test]
fn docker_socket_spellings() {
    let denied = [
        "/var/run/docker.sock",
        "/run/docker.sock",
        "/var/run/docker.sock/",
        "//var//run//docker.sock",
        "/var/./run/./docker.sock",
        "/var/run/../run/docker.sock",
        "/tmp/../var/run/docker.sock",
        "/var/run",
        "/run/",
        "/var",
        "/",
        "/..",
        "/home/me/.docker/desktop/docker.sock",
        "/run/user/1000/docker.sock",
        "/run/containerd/containerd.sock",
        "/run/containerd",
        "/run/forge-shim",
        "/proc/1/root",
        "/proc/self/root/run",
        "/proc/1/task/1/cwd",
    ];
    for source in denied {
        let bind = json!({"HostConfig": {"Binds": [format!("{source}:/mnt:ro")]}}).to_string();
        check(DENY_ONLY, &bind, Denied(rule::DENY_DOCKER_SOCKET));
        let mount =
            json!({"HostConfig": {"Mounts": [{"Type": "bind", "Source": source, "Target": "/mnt"}]}}).to_string();
        check(DENY_ONLY, &mount, Denied(rule::DENY_DOCKER_SOCKET));
        let volume = json!({"HostConfig": {"Mounts": [{"Type": "volume", "Target": "/mnt", "VolumeOptions":
            {"DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind", "device": source}}}}]}})
        .to_string();
        check(DENY_ONLY, &volume, Denied(rule::DENY_DOCKER_SOCKET));
    }
    let allowed = [
        "/var/lib/app",
        "/srv/docker.sockets/x",
        "/run/user/1000/app",
        "/proc",
        "/home/me/project",
    ];
    for source in allowed {
        let bind =
            json!({"HostConfig": {"Binds": [format!("{source}:/mnt"), "named:/data", "/anonymous"]}}).to_string();
        check(DENY_ONLY, &bind, Body(&bind, &[]));
    }
    // Key spellings inside Mounts are canonicalised before the check.
    check(
        DENY_ONLY,
        r#"{"hostconfig":{"mounts":[{"TYPE":"bind","source":"/var/run","target":"/x"}]}}"#,
        Denied(rule::DENY_DOCKER_SOCKET),
    );
}
