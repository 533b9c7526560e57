use std::time::Duration;

use super::*;

const HEADER: &str = "Inter-|   Receive                                                |  Transmit\n \
    face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

#[test]
fn sums_every_interface_but_lo() {
    let text = format!(
        "{HEADER}    lo:  999999      10    0    0    0     0          0         0   999999      10    0    0    0     0       0          0\n  \
         eth0:     806       9    0    0    0     0          0         0     1234      12    0    0    0     0       0          0\n  \
         eth1:12345678901 9    0    0    0     0          0         0       10       1    0    0    0     0       0          0\n"
    );
    assert_eq!(parse_net_dev(&text), Ok(806 + 1234 + 12345678901 + 10));
}

#[test]
fn no_interfaces_is_zero() {
    assert_eq!(parse_net_dev(HEADER), Ok(0));
    let only_lo = format!("{HEADER}    lo: 5 1 0 0 0 0 0 0 5 1 0 0 0 0 0 0\n");
    assert_eq!(parse_net_dev(&only_lo), Ok(0));
}

#[test]
fn bad_lines_are_named() {
    let text = format!("{HEADER}  eth0: 1 2 3\n");
    assert_eq!(parse_net_dev(&text), Err((3, "  eth0: 1 2 3".to_string())));
    let text = format!("{HEADER}  eth0 1 2 3 4 5 6 7 8 9\n");
    assert_eq!(parse_net_dev(&text).unwrap_err().0, 3);
    let text = format!("{HEADER}  eth0: x 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0\n");
    assert_eq!(parse_net_dev(&text).unwrap_err().0, 3);
}

#[test]
fn interfaces_are_listed_with_their_bytes() {
    let text = format!(
        "{HEADER}    lo: 9 1 0 0 0 0 0 0 9 1 0 0 0 0 0 0\n  \
         veth1a2b: 100 1 0 0 0 0 0 0 50 1 0 0 0 0 0 0\n  \
         docker0:7 1 0 0 0 0 0 0 3 1 0 0 0 0 0 0\n"
    );
    assert_eq!(
        parse_net_dev_interfaces(&text),
        Ok(vec![("veth1a2b".to_string(), 150), ("docker0".to_string(), 10)])
    );
}

fn put_link(dir: &Path, name: &str, index: u64, link: u64) {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("ifindex"), format!("{index}\n")).unwrap();
    std::fs::write(path.join("iflink"), format!("{link}\n")).unwrap();
}

#[test]
fn host_peers_pairs_veths_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let proc_root = dir.path().join("proc");
    let inside = proc_root.join("42/root/sys/class/net");
    let host = dir.path().join("sys/class/net");
    put_link(&inside, "lo", 1, 1);
    put_link(&inside, "eth0", 3338, 3339);
    put_link(&inside, "eth1", 17, 18);
    put_link(&host, "lo", 1, 1);
    put_link(&host, "eth0", 4, 4);
    put_link(&host, "veth58038ce", 3339, 3338);
    put_link(&host, "vethb0b0", 18, 17);
    // Same host index, but its peer is some other container's end.
    put_link(&host, "vethother", 99, 3338);
    let mut peers = host_peers(&proc_root, &host, 42).unwrap();
    peers.sort();
    assert_eq!(peers, vec!["veth58038ce".to_string(), "vethb0b0".to_string()]);

    // A macvlan child: its parent is a NIC whose iflink is itself.
    let proc2 = dir.path().join("proc2");
    put_link(&proc2.join("7/root/sys/class/net"), "eth0", 2, 4);
    assert_eq!(host_peers(&proc2, &host, 7), None);

    // Only lo: nothing to watch, which is not a failure.
    let proc3 = dir.path().join("proc3");
    put_link(&proc3.join("8/root/sys/class/net"), "lo", 1, 1);
    assert_eq!(host_peers(&proc3, &host, 8), Some(vec![]));

    // No sysfs in the container: unknown.
    assert_eq!(host_peers(&proc_root, &host, 43), None);
}

#[test]
fn host_net_dev_reads_the_shims_table() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("self/net");
    std::fs::create_dir_all(&net).unwrap();
    std::fs::write(
        net.join("dev"),
        format!("{HEADER}  veth1: 100 0 0 0 0 0 0 0 50 0 0 0 0 0 0 0\n"),
    )
    .unwrap();
    // Only what the host end sent, towards the container: the 100 bytes it
    // received are the container's own chatter.
    let table = host_net_dev(dir.path()).unwrap();
    assert_eq!(table.get("veth1"), Some(&50));
    assert_eq!(table.len(), 1);
}

#[test]
fn a_sleepers_own_table_counts_what_it_received() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("7/net");
    std::fs::create_dir_all(&net).unwrap();
    std::fs::write(
        net.join("dev"),
        format!(
            "{HEADER}    lo: 999 0 0 0 0 0 0 0 999 0 0 0 0 0 0 0
  eth0: 300 0 0 0 0 0 0 0 7000 0 0 0 0 0 0 0
  eth1: 20 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0
"
        ),
    )
    .unwrap();
    assert_eq!(net_bytes_received(dir.path(), 7).unwrap(), 320);
    // The running sampler still counts both directions.
    assert_eq!(net_bytes(dir.path(), 7).unwrap(), 7321);
}

#[test]
fn net_bytes_reads_the_pids_table() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("42/net");
    std::fs::create_dir_all(&net).unwrap();
    std::fs::write(
        net.join("dev"),
        format!("{HEADER}  eth0: 100 0 0 0 0 0 0 0 50 0 0 0 0 0 0 0\n"),
    )
    .unwrap();
    assert_eq!(net_bytes(dir.path(), 42).unwrap(), 150);

    let error = net_bytes(dir.path(), 43).unwrap_err();
    assert!(matches!(error, ActivityError::Read { .. }));
    assert!(error.to_string().contains("43/net/dev"), "{error}");

    std::fs::write(net.join("dev"), format!("{HEADER}  eth0: 1\n")).unwrap();
    let error = net_bytes(dir.path(), 42).unwrap_err();
    assert!(error.to_string().contains("42/net/dev: line 3"), "{error}");
}

#[test]
fn sample_reads_net_and_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let root = dir.path().join("cgroup");
    let memory = root.join("memory/docker").join(id);
    let cpuacct = root.join("cpuacct/docker").join(id);
    std::fs::create_dir_all(&memory).unwrap();
    std::fs::create_dir_all(&cpuacct).unwrap();
    std::fs::write(cpuacct.join("cpuacct.usage"), "777\n").unwrap();
    let net = dir.path().join("proc/42/net");
    std::fs::create_dir_all(&net).unwrap();
    std::fs::write(
        net.join("dev"),
        format!("{HEADER}  eth0: 100 0 0 0 0 0 0 0 50 0 0 0 0 0 0 0\n"),
    )
    .unwrap();

    let cgroup = ContainerCgroup::for_id(&root, id).unwrap();
    let at = Instant::now();
    let sample = Sample::read(&dir.path().join("proc"), 42, &cgroup, at).unwrap();
    assert_eq!(
        sample,
        Sample {
            at,
            net_bytes: 150,
            cpu_nanos: 777
        }
    );
    std::fs::remove_file(cpuacct.join("cpuacct.usage")).unwrap();
    let error = Sample::read(&dir.path().join("proc"), 42, &cgroup, at).unwrap_err();
    assert!(matches!(error, ActivityError::Cpu(_)), "{error}");
}

/// One row: seconds between samples, net bytes and CPU ms in the
/// interval, the CPU limit in cores, and the expected verdict.
struct Case {
    name: &'static str,
    seconds: f64,
    net_delta: u64,
    cpu_ms: u64,
    cores: f64,
    expect: Activity,
}

const THRESHOLD: f64 = 0.1;
const NET_IDLE_RATE: u64 = 1024;

fn busy(reason: BusyReason) -> Activity {
    Activity::Busy { reason }
}

#[test]
fn judge_table() {
    let cases = [
        Case {
            name: "nothing at all",
            seconds: 10.0,
            net_delta: 0,
            cpu_ms: 0,
            cores: 1.0,
            expect: Activity::Idle,
        },
        Case {
            name: "chatter at the idle rate",
            seconds: 10.0,
            net_delta: 10 * 1024,
            cpu_ms: 0,
            cores: 1.0,
            expect: Activity::Idle,
        },
        Case {
            name: "traffic just above the idle rate",
            seconds: 10.0,
            net_delta: 10 * 1024 + 10,
            cpu_ms: 0,
            cores: 1.0,
            expect: busy(BusyReason::Network { rate: 1025 }),
        },
        Case {
            name: "a download",
            seconds: 5.0,
            net_delta: 50 << 20,
            cpu_ms: 2000,
            cores: 1.0,
            expect: busy(BusyReason::Network { rate: 10 << 20 }),
        },
        Case {
            name: "cpu at the threshold",
            seconds: 10.0,
            net_delta: 0,
            cpu_ms: 1000,
            cores: 1.0,
            expect: Activity::Idle,
        },
        Case {
            name: "cpu above the threshold",
            seconds: 10.0,
            net_delta: 0,
            cpu_ms: 2500,
            cores: 1.0,
            expect: busy(BusyReason::Cpu { fraction: 0.25 }),
        },
        Case {
            name: "the same cpu is idle for a 4-core limit",
            seconds: 10.0,
            net_delta: 0,
            cpu_ms: 2500,
            cores: 4.0,
            expect: Activity::Idle,
        },
        Case {
            name: "a half-core limit doubles the fraction",
            seconds: 10.0,
            net_delta: 0,
            cpu_ms: 600,
            cores: 0.5,
            expect: busy(BusyReason::Cpu { fraction: 0.12 }),
        },
        Case {
            name: "no limit counts as one core",
            seconds: 10.0,
            net_delta: 0,
            cpu_ms: 2000,
            cores: 0.0,
            expect: busy(BusyReason::Cpu { fraction: 0.2 }),
        },
        Case {
            name: "a NaN limit counts as one core",
            seconds: 10.0,
            net_delta: 0,
            cpu_ms: 500,
            cores: f64::NAN,
            expect: Activity::Idle,
        },
        Case {
            name: "same instant, no change",
            seconds: 0.0,
            net_delta: 0,
            cpu_ms: 0,
            cores: 1.0,
            expect: Activity::Idle,
        },
        Case {
            name: "same instant, traffic",
            seconds: 0.0,
            net_delta: 2,
            cpu_ms: 0,
            cores: 1.0,
            expect: busy(BusyReason::Network { rate: 2000 }),
        },
    ];
    let start = Instant::now();
    for case in cases {
        let prev = Sample {
            at: start,
            net_bytes: 1_000_000,
            cpu_nanos: 5_000_000_000,
        };
        let now = Sample {
            at: start + Duration::from_secs_f64(case.seconds),
            net_bytes: prev.net_bytes + case.net_delta,
            cpu_nanos: prev.cpu_nanos + case.cpu_ms * 1_000_000,
        };
        let verdict = judge(&prev, &now, case.cores, THRESHOLD, NET_IDLE_RATE);
        match (verdict, case.expect) {
            (
                Activity::Busy {
                    reason: BusyReason::Cpu { fraction: got },
                },
                Activity::Busy {
                    reason: BusyReason::Cpu { fraction: want },
                },
            ) => assert!((got - want).abs() < 1e-9, "{}: {got} != {want}", case.name),
            (got, want) => assert_eq!(got, want, "{}", case.name),
        }
        assert_eq!(verdict.is_busy(), case.expect.is_busy(), "{}", case.name);
    }
}

#[test]
fn counters_going_backwards_are_a_reset() {
    let start = Instant::now();
    let prev = Sample {
        at: start,
        net_bytes: 5000,
        cpu_nanos: 9_000_000_000,
    };
    let after = start + Duration::from_secs(10);
    for now in [
        Sample {
            at: after,
            net_bytes: 10,
            cpu_nanos: 9_000_000_000,
        },
        Sample {
            at: after,
            net_bytes: 5000,
            cpu_nanos: 1_000,
        },
    ] {
        assert_eq!(
            judge(&prev, &now, 1.0, THRESHOLD, NET_IDLE_RATE),
            busy(BusyReason::CounterReset)
        );
    }
}

#[test]
fn zero_idle_rate_makes_any_byte_activity() {
    let start = Instant::now();
    let prev = Sample {
        at: start,
        net_bytes: 0,
        cpu_nanos: 0,
    };
    let now = Sample {
        at: start + Duration::from_secs(60),
        net_bytes: 1,
        cpu_nanos: 0,
    };
    assert!(judge(&prev, &now, 1.0, THRESHOLD, 0).is_busy());
    assert!(!judge(&prev, &now, 1.0, THRESHOLD, 1).is_busy());
}

#[test]
fn network_is_reported_before_cpu() {
    let start = Instant::now();
    let prev = Sample {
        at: start,
        net_bytes: 0,
        cpu_nanos: 0,
    };
    let now = Sample {
        at: start + Duration::from_secs(1),
        net_bytes: 1 << 20,
        cpu_nanos: 1_000_000_000,
    };
    assert_eq!(
        judge(&prev, &now, 1.0, THRESHOLD, NET_IDLE_RATE),
        busy(BusyReason::Network { rate: 1 << 20 })
    );
}

#[test]
fn an_unreadable_reading_is_never_idle() {
    let at = Instant::now();
    let idle = Sample {
        at,
        net_bytes: 100,
        cpu_nanos: 1_000,
    };
    let later = Sample {
        at: at + Duration::from_secs(30),
        ..idle
    };
    let unreadable = Some(Activity::Busy {
        reason: BusyReason::Unreadable,
    });
    // Nothing changed in 30 s: idle, when both readings were taken.
    assert_eq!(verdict(Some(&idle), Some(&later), 1.0, 0.1, 1024), Some(Activity::Idle));
    // A reading that failed counts as busy, with or without a previous one.
    assert_eq!(verdict(Some(&idle), None, 1.0, 0.1, 1024), unreadable);
    assert_eq!(verdict(None, None, 1.0, 0.1, 1024), unreadable);
    // The first reading has nothing to compare with.
    assert_eq!(verdict(None, Some(&idle), 1.0, 0.1, 1024), None);
}

const NETSTAT_NAMES: &str = "IpExt: InNoRoutes InTruncatedPkts InMcastPkts OutMcastPkts InBcastPkts OutBcastPkts \
    InOctets OutOctets InMcastOctets OutMcastOctets InBcastOctets OutBcastOctets InCsumErrors";

fn netstat(in_octets: u64, mcast: u64, bcast: u64) -> String {
    format!(
        "TcpExt: SyncookiesSent SyncookiesRecv\nTcpExt: 0 0\n{NETSTAT_NAMES}\n\
         IpExt: 0 0 3 0 1 0 {in_octets} 999 {mcast} 0 {bcast} 0 0\n"
    )
}

fn snmp6(receives: u64, discards: u64, octets: u64, mcast: u64) -> String {
    format!(
        "Ip6InReceives                   \t{receives}\nIp6InHdrErrors                  \t0\n\
         Ip6InDiscards                   \t{discards}\nIp6InOctets                     \t{octets}\n\
         Ip6InMcastOctets                \t{mcast}\nIcmp6InMsgs                     \t4\n"
    )
}

#[test]
fn unicast_is_ip_bytes_without_multicast_and_broadcast() {
    assert_eq!(unicast_in_octets(&netstat(1000, 300, 200), None), Some(500));
    assert_eq!(
        unicast_in_octets(&netstat(1000, 300, 200), Some(&snmp6(10, 0, 800, 600))),
        Some(500 + 200)
    );
}

#[test]
fn multicast_alone_adds_no_unicast() {
    // A new neighbour's router solicitation and MLD reports: IPv6 multicast.
    let before = unicast_in_octets(&netstat(0, 0, 0), Some(&snmp6(2, 0, 160, 160)));
    let after = unicast_in_octets(&netstat(0, 0, 0), Some(&snmp6(5, 0, 390, 390)));
    assert_eq!(before, after);
    // Broadcast and multicast IPv4 (DHCP, mDNS) neither.
    assert_eq!(
        unicast_in_octets(&netstat(700, 400, 300), None),
        unicast_in_octets(&netstat(0, 0, 0), None)
    );
}

#[test]
fn a_namespace_without_ipv6_counts_no_ipv6_bytes() {
    // disable_ipv6: every packet is discarded, but its bytes were counted
    // in Ip6InOctets first (and none in Ip6InMcastOctets).
    assert_eq!(
        unicast_in_octets(&netstat(100, 0, 0), Some(&snmp6(7, 7, 548, 0))),
        Some(100)
    );
}

#[test]
fn missing_ipv4_counters_are_unknown() {
    assert_eq!(unicast_in_octets("TcpExt: A\nTcpExt: 1\n", None), None);
    let no_bcast = "IpExt: InOctets InMcastOctets\nIpExt: 10 2\n";
    assert_eq!(unicast_in_octets(no_bcast, None), None);
    assert_eq!(unicast_in_octets("", Some(&snmp6(1, 0, 10, 0))), None);
}
