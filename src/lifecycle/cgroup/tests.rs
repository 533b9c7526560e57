use super::*;

const ID: &str = "b7f0f468feb61f36c3e40ac7b8dd69da797edacb089aa43162daabebc0532170";
const OTHER_ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const UNLIMITED: u64 = 9_223_372_036_854_771_712;
const MIB: u64 = 1 << 20;

fn put(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

/// A v1 container as the cgroupfs driver lays it out on this host: cpu
/// and cpuacct mounted separately, swap accounting on.
fn fake_v1(root: &Path, leaf: &str) {
    let memory = root.join("memory").join(leaf);
    put(&memory.join(V1_LIMIT), &format!("{UNLIMITED}\n"));
    put(&memory.join(V1_MEMSW_LIMIT), &format!("{UNLIMITED}\n"));
    put(&memory.join(V1_USAGE), &format!("{}\n", 100 * MIB));
    put(
        &memory.join("memory.stat"),
        "cache 67375104\nrss 49152\nshmem 67108864\ntotal_cache 67375104\n\
         total_rss 49152\ntotal_shmem 67108864\ntotal_swap 4096\n",
    );
    put(&root.join("cpuacct").join(leaf).join("cpuacct.usage"), "412784374\n");
    put(&root.join("freezer").join(leaf).join("freezer.state"), "FROZEN\n");
}

fn fake_v2(root: &Path, leaf: &str) {
    put(&root.join("cgroup.controllers"), "cpuset cpu io memory pids\n");
    let dir = root.join(leaf);
    put(&dir.join(V2_CURRENT), &format!("{}\n", 100 * MIB));
    put(&dir.join(V2_HIGH), "max\n");
    put(&dir.join(V2_RECLAIM), "");
    put(&dir.join(V2_SWAP_CURRENT), "8192\n");
    put(
        &dir.join("memory.stat"),
        "anon 1048576\nfile 2097152\nkernel 4096\nshmem 65536\nfile_mapped 0\n",
    );
    put(
        &dir.join("cpu.stat"),
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
    );
    put(&dir.join("cgroup.freeze"), "1\n");
    put(&dir.join("cgroup.events"), "populated 1\nfrozen 1\n");
}

fn fake_proc(proc_root: &Path, pid: u32, cgroup: &str) {
    put(&proc_root.join(pid.to_string()).join("cgroup"), cgroup);
}

/// `/proc/<pid>/cgroup` of a container on this host (hybrid v1).
fn v1_proc_lines(leaf: &str) -> String {
    [
        "9:name=systemd:/LEAF",
        "8:pids:/LEAF",
        "6:freezer:/LEAF",
        "4:memory:/LEAF",
        "2:cpuacct:/LEAF",
        "1:cpu:/LEAF",
        "0::/LEAF",
    ]
    .join("\n")
    .replace("LEAF", leaf)
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    proc_root: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cgroup");
    let proc_root = dir.path().join("proc");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&proc_root).unwrap();
    Fixture {
        _dir: dir,
        root,
        proc_root,
    }
}

#[test]
fn detects_v2_only_at_the_root() {
    let f = fixture();
    assert_eq!(CgroupVersion::detect(&f.root), CgroupVersion::V1);
    // Hybrid: an empty v2 tree at unified/ is still a v1 host.
    put(&f.root.join("unified/cgroup.controllers"), "");
    assert_eq!(CgroupVersion::detect(&f.root), CgroupVersion::V1);
    put(&f.root.join("cgroup.controllers"), "memory\n");
    assert_eq!(CgroupVersion::detect(&f.root), CgroupVersion::V2);
}

#[test]
fn for_pid_v1_cgroupfs() {
    let f = fixture();
    let leaf = format!("docker/{ID}");
    fake_v1(&f.root, &leaf);
    fake_proc(&f.proc_root, 42, &v1_proc_lines(&leaf));
    let cg = ContainerCgroup::for_pid(&f.root, &f.proc_root, 42).unwrap();
    assert_eq!(cg.version(), CgroupVersion::V1);
    assert_eq!(cg.memory_dir(), f.root.join("memory").join(&leaf));
    assert_eq!(cg.cpu_dir, f.root.join("cpuacct").join(&leaf));
    assert_eq!(cg.freezer_dir, f.root.join("freezer").join(&leaf));
}

#[test]
fn for_pid_v1_with_combined_cpu_cpuacct_mount() {
    let f = fixture();
    let leaf = format!("system.slice/docker-{ID}.scope");
    fake_v1(&f.root, &leaf);
    fs::remove_dir_all(f.root.join("cpuacct")).unwrap();
    put(&f.root.join("cpu,cpuacct").join(&leaf).join("cpuacct.usage"), "7\n");
    let lines = format!("4:memory:/{leaf}\n3:cpu,cpuacct:/{leaf}\n2:freezer:/{leaf}\n");
    fake_proc(&f.proc_root, 42, &lines);
    let cg = ContainerCgroup::for_pid(&f.root, &f.proc_root, 42).unwrap();
    assert_eq!(cg.cpu_usage_nanos().unwrap(), 7);
}

#[test]
fn for_pid_v2_systemd() {
    let f = fixture();
    let leaf = format!("system.slice/docker-{ID}.scope");
    fake_v2(&f.root, &leaf);
    fake_proc(&f.proc_root, 7, &format!("0::/{leaf}\n"));
    let cg = ContainerCgroup::for_pid(&f.root, &f.proc_root, 7).unwrap();
    assert_eq!(cg.version(), CgroupVersion::V2);
    assert_eq!(cg.memory_dir(), f.root.join(&leaf));
    assert_eq!(cg.cpu_dir, f.root.join(&leaf));
}

#[test]
fn for_pid_refuses_root_cgroups() {
    // Seen through a cgroup namespace, or not a container at all:
    // resolving it would squeeze the whole host.
    let f = fixture();
    fake_v1(&f.root, &format!("docker/{ID}"));
    fake_proc(&f.proc_root, 1, "6:freezer:/\n4:memory:/\n2:cpuacct:/\n");
    let error = ContainerCgroup::for_pid(&f.root, &f.proc_root, 1).unwrap_err();
    assert!(matches!(error, CgroupError::RootCgroup { pid: 1, .. }), "{error}");

    let f = fixture();
    fake_v2(&f.root, &format!("docker/{ID}"));
    fake_proc(&f.proc_root, 1, "0::/\n");
    let error = ContainerCgroup::for_pid(&f.root, &f.proc_root, 1).unwrap_err();
    assert!(matches!(error, CgroupError::RootCgroup { pid: 1, .. }), "{error}");
}

#[test]
fn for_pid_errors_name_what_is_missing() {
    let f = fixture();
    let error = ContainerCgroup::for_pid(&f.root, &f.proc_root, 99).unwrap_err();
    assert!(matches!(error, CgroupError::Read { .. }));
    assert!(error.to_string().contains("99/cgroup"), "{error}");

    fake_proc(
        &f.proc_root,
        5,
        "4:memory:/docker/gone\n2:cpuacct:/docker/gone\n1:freezer:/docker/gone\n",
    );
    let error = ContainerCgroup::for_pid(&f.root, &f.proc_root, 5).unwrap_err();
    assert!(matches!(error, CgroupError::NotFound { .. }), "{error}");

    fake_proc(&f.proc_root, 6, "2:cpuacct:/docker/x\n");
    let error = ContainerCgroup::for_pid(&f.root, &f.proc_root, 6).unwrap_err();
    assert!(
        matches!(
            error,
            CgroupError::NoEntry {
                controller: "memory",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn for_id_tries_the_common_layouts() {
    for (v2, leaf) in [
        (false, format!("docker/{ID}")),
        (false, format!("system.slice/docker-{ID}.scope")),
        (true, format!("docker/{ID}")),
        (true, format!("system.slice/docker-{ID}.scope")),
    ] {
        let f = fixture();
        if v2 {
            fake_v2(&f.root, &leaf);
        } else {
            fake_v1(&f.root, &leaf);
        }
        let cg = ContainerCgroup::for_id(&f.root, ID).unwrap();
        let expected = if v2 {
            f.root.join(&leaf)
        } else {
            f.root.join("memory").join(&leaf)
        };
        assert_eq!(cg.memory_dir(), expected, "{leaf}");
    }
}

#[test]
fn for_id_refuses_anything_but_a_full_id() {
    let f = fixture();
    for id in ["", "b7f0f468feb6", "../../../../etc", &format!("{}/x", &ID[..62])] {
        let error = ContainerCgroup::for_id(&f.root, id).unwrap_err();
        assert!(matches!(error, CgroupError::InvalidId(_)), "{id}: {error}");
    }
    let error = ContainerCgroup::for_id(&f.root, ID).unwrap_err();
    let message = error.to_string();
    assert!(message.contains(&format!("memory/docker/{ID}")), "{message}");
    assert!(message.contains("system.slice"), "{message}");
}

#[test]
fn resolve_ignores_a_reused_pid() {
    let f = fixture();
    fake_v1(&f.root, &format!("docker/{ID}"));
    fake_v1(&f.root, &format!("docker/{OTHER_ID}"));
    // Pid 42 now belongs to another container.
    fake_proc(&f.proc_root, 42, &v1_proc_lines(&format!("docker/{OTHER_ID}")));
    let cg = ContainerCgroup::resolve(&f.root, &f.proc_root, Some(42), ID).unwrap();
    assert_eq!(cg.memory_dir(), f.root.join("memory/docker").join(ID));
    let cg = ContainerCgroup::resolve(&f.root, &f.proc_root, Some(42), OTHER_ID).unwrap();
    assert_eq!(cg.memory_dir(), f.root.join("memory/docker").join(OTHER_ID));
    let cg = ContainerCgroup::resolve(&f.root, &f.proc_root, None, ID).unwrap();
    assert_eq!(cg.memory_dir(), f.root.join("memory/docker").join(ID));
}

#[test]
fn readings_v1() {
    let f = fixture();
    fake_v1(&f.root, &format!("docker/{ID}"));
    let cg = ContainerCgroup::for_id(&f.root, ID).unwrap();
    assert_eq!(cg.memory_usage().unwrap(), 100 * MIB);
    assert_eq!(
        cg.memory_stat().unwrap(),
        MemoryStat {
            anon: 49152,
            file: 67375104,
            shmem: 67108864,
            swap: 4096
        }
    );
    assert_eq!(cg.cpu_usage_nanos().unwrap(), 412784374);
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Frozen);
    put(&cg.freezer_dir.join("freezer.state"), "FREEZING\n");
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Freezing);
    put(&cg.memory_dir.join(V1_USAGE), "lots\n");
    let error = cg.memory_usage().unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    assert!(error.to_string().contains(V1_USAGE), "{error}");
}

#[test]
fn readings_v2() {
    let f = fixture();
    fake_v2(&f.root, &format!("docker/{ID}"));
    let cg = ContainerCgroup::for_id(&f.root, ID).unwrap();
    assert_eq!(cg.memory_usage().unwrap(), 100 * MIB);
    assert_eq!(
        cg.memory_stat().unwrap(),
        MemoryStat {
            anon: 1048576,
            file: 2097152,
            shmem: 65536,
            swap: 8192
        }
    );
    assert_eq!(cg.cpu_usage_nanos().unwrap(), 1_500_000);
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Frozen);
    put(&cg.freezer_dir.join("cgroup.events"), "populated 1\nfrozen 0\n");
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Freezing);
    put(&cg.freezer_dir.join("cgroup.freeze"), "0\n");
    assert_eq!(cg.freezer_state().unwrap(), FreezerState::Thawed);
    // No swap accounting: no memory.swap.current.
    fs::remove_file(cg.memory_dir.join(V2_SWAP_CURRENT)).unwrap();
    assert_eq!(cg.memory_stat().unwrap().swap, 0);
}

#[test]
fn squeeze_and_restore_on_v1_files() {
    let f = fixture();
    fake_v1(&f.root, &format!("docker/{ID}"));
    let cg = ContainerCgroup::for_id(&f.root, ID).unwrap();
    let report = cg.squeeze(8 * MIB, Duration::from_secs(5)).unwrap();
    assert_eq!(
        report.saved,
        SavedLimits::V1 {
            memory_limit: UNLIMITED,
            memsw_limit: Some(UNLIMITED)
        }
    );
    assert_eq!(
        report.method,
        SqueezeMethod::V1Limit {
            lowest_limit: Some(8 * MIB)
        }
    );
    assert_eq!(report.stop, SqueezeStop::Completed);
    // Plain files do not reclaim: usage stays where it was.
    assert_eq!((report.before, report.after), (100 * MIB, 100 * MIB));
    assert!(!report.reached_target);
    assert_eq!(read(&cg.memory_dir.join(V1_LIMIT)), (8 * MIB).to_string());

    cg.restore(&report.saved).unwrap();
    assert_eq!(read(&cg.memory_dir.join(V1_LIMIT)), UNLIMITED.to_string());
    assert_eq!(read(&cg.memory_dir.join(V1_MEMSW_LIMIT)), UNLIMITED.to_string());
}

#[test]
fn squeeze_and_restore_on_v2_files() {
    let f = fixture();
    fake_v2(&f.root, &format!("docker/{ID}"));
    let cg = ContainerCgroup::for_id(&f.root, ID).unwrap();
    let report = cg.squeeze(20 * MIB, Duration::from_secs(5)).unwrap();
    assert_eq!(report.saved, SavedLimits::V2 { memory_high: None });
    // Usage never moves in a file, so it asks for the whole 80 MiB in
    // chunks of 10 MiB and stops there.
    assert_eq!(report.method, SqueezeMethod::V2Reclaim { requested: 80 * MIB });
    assert_eq!(read(&cg.memory_dir.join(V2_RECLAIM)), (10 * MIB).to_string());
    assert_eq!(read(&cg.memory_dir.join(V2_HIGH)), "max\n");
    cg.restore(&report.saved).unwrap();
    assert_eq!(read(&cg.memory_dir.join(V2_HIGH)), "max");

    // Before 5.19 there is no memory.reclaim: memory.high goes down instead.
    fs::remove_file(cg.memory_dir.join(V2_RECLAIM)).unwrap();
    let report = cg.squeeze(20 * MIB, Duration::from_secs(5)).unwrap();
    assert_eq!(
        report.method,
        SqueezeMethod::V2High {
            lowest_high: Some(20 * MIB)
        }
    );
    assert_eq!(read(&cg.memory_dir.join(V2_HIGH)), (20 * MIB).to_string());
    assert!(
        !cg.memory_dir.join(V2_RECLAIM).exists(),
        "a write must not create a control file"
    );
    cg.restore(&report.saved).unwrap();
    assert_eq!(read(&cg.memory_dir.join(V2_HIGH)), "max");
}

#[test]
fn a_cancelled_squeeze_stops_before_the_next_step() {
    let f = fixture();
    fake_v1(&f.root, &format!("docker/{ID}"));
    let cg = ContainerCgroup::for_id(&f.root, ID).unwrap();
    let report = cg
        .squeeze_cancellable(8 * MIB, Duration::from_secs(5), &AtomicBool::new(true))
        .unwrap();
    assert_eq!(report.stop, SqueezeStop::Cancelled);
    assert_eq!(report.method, SqueezeMethod::V1Limit { lowest_limit: None });
    assert_eq!(
        read(&cg.memory_dir.join(V1_LIMIT)),
        format!("{UNLIMITED}\n"),
        "nothing written"
    );

    let report = cg.squeeze(8 * MIB, Duration::ZERO).unwrap();
    assert_eq!(report.stop, SqueezeStop::OutOfTime);
}

#[test]
fn squeeze_errors_name_the_directory() {
    let f = fixture();
    fake_v1(&f.root, &format!("docker/{ID}"));
    let cg = ContainerCgroup::for_id(&f.root, ID).unwrap();
    fs::remove_file(cg.memory_dir.join(V1_USAGE)).unwrap();
    let error = cg.squeeze(MIB, Duration::from_secs(1)).unwrap_err();
    let message = error.to_string();
    assert!(message.contains(&cg.memory_dir.display().to_string()), "{message}");
    assert!(message.contains(V1_USAGE), "{message}");
}

#[test]
fn swap_from_meminfo_or_swaps() {
    let f = fixture();
    assert!(!swap_available(&f.proc_root));
    put(&f.proc_root.join("swaps"), "Filename\tType\tSize\tUsed\tPriority\n");
    assert!(!swap_available(&f.proc_root));
    put(
        &f.proc_root.join("swaps"),
        "Filename\tType\tSize\tUsed\tPriority\n/var/tmp/x.swap file 1048572 0 -2\n",
    );
    assert!(swap_available(&f.proc_root), "falls back to /proc/swaps");
    put(
        &f.proc_root.join("meminfo"),
        "MemTotal:       24684544 kB\nSwapTotal:             0 kB\nSwapFree:              0 kB\n",
    );
    assert!(!swap_available(&f.proc_root), "meminfo wins");
    put(
        &f.proc_root.join("meminfo"),
        "SwapTotal:       1048572 kB\nSwapFree:         1048000 kB\n",
    );
    assert!(swap_available(&f.proc_root));
    assert_eq!(swap_free_bytes(&f.proc_root).unwrap(), 1048000 * 1024);
}

#[test]
fn saved_limits_serialize_tagged() {
    let v1 = SavedLimits::V1 {
        memory_limit: 1,
        memsw_limit: None,
    };
    let json = serde_json::to_value(&v1).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"cgroup": "v1", "memory_limit": 1, "memsw_limit": null})
    );
    let v2: SavedLimits = serde_json::from_str(r#"{"cgroup":"v2","memory_high":null}"#).unwrap();
    assert_eq!(v2, SavedLimits::V2 { memory_high: None });
}

/// A memory cgroup that answers like the kernel: a limit below usage
/// reclaims down to it, or down to `floor` (what cannot be reclaimed)
/// and then fails with `EBUSY`; memory must stay ≤ memsw; v2
/// `memory.reclaim` fails with `EAGAIN` when it got less than asked.
struct FakeKernel {
    version: CgroupVersion,
    usage: u64,
    floor: u64,
    /// v1 memory limit, or v2 memory.high (`u64::MAX` is max).
    limit: u64,
    memsw: Option<u64>,
    has_reclaim: bool,
    writes: Vec<(String, String)>,
    /// Fail the nth write (0-based) with this errno.
    fail_write: Option<(usize, i32)>,
    /// After the first refusal the floor drops to this: the pages that
    /// were being written to swap can now be freed.
    floor_after_refusal: Option<u64>,
}

impl FakeKernel {
    fn v1(usage: u64, floor: u64) -> FakeKernel {
        FakeKernel {
            version: CgroupVersion::V1,
            usage,
            floor,
            limit: UNLIMITED,
            memsw: Some(UNLIMITED),
            has_reclaim: false,
            writes: Vec::new(),
            fail_write: None,
            floor_after_refusal: None,
        }
    }

    fn v2(usage: u64, floor: u64, has_reclaim: bool) -> FakeKernel {
        FakeKernel {
            version: CgroupVersion::V2,
            limit: u64::MAX,
            memsw: None,
            has_reclaim,
            ..FakeKernel::v1(usage, floor)
        }
    }

    fn limit_writes(&self, name: &str) -> Vec<u64> {
        self.writes
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.parse().unwrap())
            .collect()
    }

    /// Reclaims down to `wanted` if it can, else to the floor.
    fn reclaim_to(&mut self, wanted: u64) -> bool {
        self.usage = self.usage.min(wanted.max(self.floor));
        let reached = self.usage <= wanted;
        if !reached {
            if let Some(floor) = self.floor_after_refusal.take() {
                self.floor = floor;
            }
        }
        reached
    }
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

impl ControlFiles for FakeKernel {
    fn read(&self, name: &str) -> io::Result<String> {
        let value = match (self.version, name) {
            (CgroupVersion::V1, V1_LIMIT) => self.limit.to_string(),
            (CgroupVersion::V1, V1_MEMSW_LIMIT) => self.memsw.ok_or_else(|| errno(libc::ENOENT))?.to_string(),
            (CgroupVersion::V1, V1_USAGE) | (CgroupVersion::V2, V2_CURRENT) => self.usage.to_string(),
            (CgroupVersion::V2, V2_HIGH) if self.limit == u64::MAX => "max".to_string(),
            (CgroupVersion::V2, V2_HIGH) => self.limit.to_string(),
            _ => return Err(errno(libc::ENOENT)),
        };
        Ok(format!("{value}\n"))
    }

    fn write(&mut self, name: &str, value: &str) -> io::Result<()> {
        let nth = self.writes.len();
        self.writes.push((name.to_string(), value.to_string()));
        if let Some((n, code)) = self.fail_write {
            if n == nth {
                return Err(errno(code));
            }
        }
        let bytes = || -> io::Result<u64> {
            match value {
                "max" => Ok(u64::MAX),
                v => v.parse().map_err(|_| errno(libc::EINVAL)),
            }
        };
        match (self.version, name) {
            (CgroupVersion::V1, V1_LIMIT) => {
                let new = bytes()?;
                if self.memsw.is_some_and(|memsw| new > memsw) {
                    return Err(errno(libc::EINVAL));
                }
                if !self.reclaim_to(new) {
                    return Err(errno(libc::EBUSY));
                }
                self.limit = new;
            }
            (CgroupVersion::V1, V1_MEMSW_LIMIT) => {
                let new = bytes()?;
                if new < self.limit {
                    return Err(errno(libc::EINVAL));
                }
                self.memsw = Some(new);
            }
            (CgroupVersion::V2, V2_HIGH) => {
                // memory.high never fails; it reclaims what it can.
                let new = bytes()?;
                self.reclaim_to(new);
                self.limit = new;
            }
            (CgroupVersion::V2, V2_RECLAIM) if self.has_reclaim => {
                let wanted = self.usage.saturating_sub(bytes()?);
                if !self.reclaim_to(wanted) {
                    return Err(errno(libc::EAGAIN));
                }
            }
            _ => return Err(errno(libc::ENOENT)),
        }
        Ok(())
    }

    fn exists(&self, name: &str) -> bool {
        match name {
            V1_MEMSW_LIMIT => self.memsw.is_some(),
            V2_RECLAIM => self.has_reclaim,
            _ => true,
        }
    }
}

fn never() -> impl FnMut() -> bool {
    || false
}

/// Runs out of time after `n` checks.
fn after_checks(n: usize) -> impl FnMut() -> bool {
    let mut checks = 0;
    move || {
        checks += 1;
        checks > n
    }
}

#[test]
fn v1_steps_down_to_the_target() {
    let mut kernel = FakeKernel::v1(200 * MIB, 0);
    let report = squeeze_files(&mut kernel, CgroupVersion::V1, 8 * MIB, &mut never()).unwrap();
    assert_eq!(report.stop, SqueezeStop::Completed);
    assert_eq!(
        report.method,
        SqueezeMethod::V1Limit {
            lowest_limit: Some(8 * MIB)
        }
    );
    assert_eq!((report.before, report.after), (200 * MIB, 8 * MIB));
    assert!(report.reached_target);
    let limits = kernel.limit_writes(V1_LIMIT);
    assert_eq!(limits.len(), SQUEEZE_STEPS as usize);
    assert!(limits.windows(2).all(|w| w[0] > w[1]), "{limits:?}");
    assert_eq!(*limits.last().unwrap(), 8 * MIB);
    // The squeeze leaves memsw alone.
    assert!(kernel.limit_writes(V1_MEMSW_LIMIT).is_empty());
}

#[test]
fn v1_settles_just_above_the_floor_on_ebusy() {
    // No swap: 50 MiB of anonymous memory cannot go anywhere.
    let floor = 50 * MIB + 1000;
    let mut kernel = FakeKernel::v1(200 * MIB, floor);
    let report = squeeze_files(&mut kernel, CgroupVersion::V1, 8 * MIB, &mut never()).unwrap();
    assert_eq!(report.stop, SqueezeStop::KernelRefused);
    let settled = round_up(floor, LIMIT_GRANULARITY);
    assert_eq!(
        report.method,
        SqueezeMethod::V1Limit {
            lowest_limit: Some(settled)
        }
    );
    assert_eq!(kernel.limit, settled);
    assert_eq!(report.after, floor);
    assert!(!report.reached_target);
}

#[test]
fn a_refusal_is_retried() {
    let mut kernel = FakeKernel::v1(200 * MIB, 16 * MIB);
    kernel.floor_after_refusal = Some(0);
    let report = squeeze_files(&mut kernel, CgroupVersion::V1, 8 * MIB, &mut never()).unwrap();
    assert_eq!(report.stop, SqueezeStop::Completed);
    assert_eq!(report.after, 8 * MIB);
    let limits = kernel.limit_writes(V1_LIMIT);
    assert_eq!(limits.len(), SQUEEZE_STEPS as usize + 1, "{limits:?}");
    assert_eq!(limits[limits.len() - 2..], [8 * MIB, 8 * MIB]);

    let mut kernel = FakeKernel::v2(200 * MIB, 16 * MIB, true);
    kernel.floor_after_refusal = Some(0);
    let report = squeeze_files(&mut kernel, CgroupVersion::V2, 8 * MIB, &mut never()).unwrap();
    assert_eq!(report.stop, SqueezeStop::Completed);
    assert_eq!(report.after, 8 * MIB);
}

#[test]
fn v1_refused_at_the_first_step() {
    // Almost nothing reclaimable: the first step fails, and the settle
    // write lands just above the floor, still below the old usage.
    let mut kernel = FakeKernel::v1(100 * MIB, 99 * MIB);
    let report = squeeze_files(&mut kernel, CgroupVersion::V1, 0, &mut never()).unwrap();
    assert_eq!(report.stop, SqueezeStop::KernelRefused);
    assert_eq!(
        report.method,
        SqueezeMethod::V1Limit {
            lowest_limit: Some(99 * MIB)
        }
    );

    // Nothing reclaimable at all: no limit is accepted below usage.
    let mut kernel = FakeKernel::v1(100 * MIB, 100 * MIB);
    let report = squeeze_files(&mut kernel, CgroupVersion::V1, 0, &mut never()).unwrap();
    assert_eq!(report.method, SqueezeMethod::V1Limit { lowest_limit: None });
    assert_eq!(kernel.limit, UNLIMITED);
}

#[test]
fn v1_stops_when_out_of_time() {
    let mut kernel = FakeKernel::v1(200 * MIB, 0);
    let report = squeeze_files(&mut kernel, CgroupVersion::V1, 8 * MIB, &mut after_checks(3)).unwrap();
    assert_eq!(report.stop, SqueezeStop::OutOfTime);
    assert_eq!(kernel.limit_writes(V1_LIMIT).len(), 3);
    assert_eq!(
        report.method,
        SqueezeMethod::V1Limit {
            lowest_limit: Some(kernel.limit)
        }
    );
    assert!(!report.reached_target);

    let mut kernel = FakeKernel::v1(200 * MIB, 0);
    let report = squeeze_files(&mut kernel, CgroupVersion::V1, 8 * MIB, &mut after_checks(0)).unwrap();
    assert_eq!(report.method, SqueezeMethod::V1Limit { lowest_limit: None });
    assert!(kernel.writes.is_empty());
}

#[test]
fn v1_not_needed_writes_nothing() {
    let mut kernel = FakeKernel::v1(5 * MIB, 0);
    let report = squeeze_files(&mut kernel, CgroupVersion::V1, 8 * MIB, &mut never()).unwrap();
    assert_eq!(report.method, SqueezeMethod::NotNeeded);
    assert!(report.reached_target);
    assert!(kernel.writes.is_empty());
}

#[test]
fn v1_unexpected_error_restores_the_limit() {
    let mut kernel = FakeKernel::v1(200 * MIB, 0);
    kernel.fail_write = Some((2, libc::ENODEV));
    let error = squeeze_files(&mut kernel, CgroupVersion::V1, 8 * MIB, &mut never()).unwrap_err();
    assert!(error.to_string().contains(V1_LIMIT), "{error}");
    assert_eq!(kernel.limit, UNLIMITED, "put back after the failure");
    assert_eq!(kernel.memsw, Some(UNLIMITED));
}

#[test]
fn v1_restore_raises_memsw_first() {
    // Squeezed to 8 MiB under a memsw of 16 MiB; the saved limits are
    // higher than both, so memory first would be EINVAL.
    let mut kernel = FakeKernel::v1(8 * MIB, 0);
    kernel.limit = 8 * MIB;
    kernel.memsw = Some(16 * MIB);
    let saved = SavedLimits::V1 {
        memory_limit: 512 * MIB,
        memsw_limit: Some(1024 * MIB),
    };
    restore_files(&mut kernel, &saved).unwrap();
    assert_eq!((kernel.limit, kernel.memsw), (512 * MIB, Some(1024 * MIB)));
    assert_eq!(kernel.writes[0].0, V1_MEMSW_LIMIT);
}

#[test]
fn v1_restore_lowers_memory_first() {
    let mut kernel = FakeKernel::v1(8 * MIB, 0);
    kernel.limit = 1024 * MIB;
    kernel.memsw = Some(2048 * MIB);
    let saved = SavedLimits::V1 {
        memory_limit: 256 * MIB,
        memsw_limit: Some(512 * MIB),
    };
    restore_files(&mut kernel, &saved).unwrap();
    assert_eq!((kernel.limit, kernel.memsw), (256 * MIB, Some(512 * MIB)));
    assert_eq!(kernel.writes[0].0, V1_LIMIT);
}

#[test]
fn v1_without_swap_accounting() {
    let mut kernel = FakeKernel::v1(100 * MIB, 0);
    kernel.memsw = None;
    let report = squeeze_files(&mut kernel, CgroupVersion::V1, 8 * MIB, &mut never()).unwrap();
    assert_eq!(
        report.saved,
        SavedLimits::V1 {
            memory_limit: UNLIMITED,
            memsw_limit: None
        }
    );
    restore_files(&mut kernel, &report.saved).unwrap();
    assert_eq!(kernel.limit, UNLIMITED);
}

#[test]
fn v2_reclaims_in_chunks() {
    let mut kernel = FakeKernel::v2(200 * MIB, 0, true);
    let report = squeeze_files(&mut kernel, CgroupVersion::V2, 8 * MIB, &mut never()).unwrap();
    assert_eq!(report.stop, SqueezeStop::Completed);
    assert_eq!(report.method, SqueezeMethod::V2Reclaim { requested: 192 * MIB });
    assert_eq!(report.after, 8 * MIB);
    assert!(report.reached_target);
    assert_eq!(kernel.limit_writes(V2_RECLAIM), vec![24 * MIB; 8]);
    assert!(kernel.limit_writes(V2_HIGH).is_empty(), "memory.high untouched");
}

#[test]
fn v2_reclaim_stops_on_eagain() {
    let mut kernel = FakeKernel::v2(200 * MIB, 150 * MIB, true);
    let report = squeeze_files(&mut kernel, CgroupVersion::V2, 8 * MIB, &mut never()).unwrap();
    assert_eq!(report.stop, SqueezeStop::KernelRefused);
    assert_eq!(report.after, 150 * MIB);
    // Two chunks served, then the refused one and its retries.
    let asks = kernel.limit_writes(V2_RECLAIM);
    assert_eq!(asks.len(), 2 + 1 + SQUEEZE_RETRIES as usize, "{asks:?}");
}

#[test]
fn v2_reclaim_stops_when_out_of_time() {
    let mut kernel = FakeKernel::v2(200 * MIB, 0, true);
    let report = squeeze_files(&mut kernel, CgroupVersion::V2, 8 * MIB, &mut after_checks(2)).unwrap();
    assert_eq!(report.stop, SqueezeStop::OutOfTime);
    assert_eq!(report.method, SqueezeMethod::V2Reclaim { requested: 48 * MIB });
}

#[test]
fn v2_falls_back_to_memory_high() {
    let mut kernel = FakeKernel::v2(200 * MIB, 0, false);
    kernel.limit = 1024 * MIB;
    let report = squeeze_files(&mut kernel, CgroupVersion::V2, 8 * MIB, &mut never()).unwrap();
    assert_eq!(
        report.method,
        SqueezeMethod::V2High {
            lowest_high: Some(8 * MIB)
        }
    );
    assert_eq!(
        report.saved,
        SavedLimits::V2 {
            memory_high: Some(1024 * MIB)
        }
    );
    assert!(report.reached_target);
    restore_files(&mut kernel, &report.saved).unwrap();
    assert_eq!(kernel.limit, 1024 * MIB);
}

#[test]
fn parses_proc_cgroup_lines() {
    let entry = ProcCgroupEntry::parse("3:cpu,cpuacct:/docker/a:b").unwrap();
    assert!(entry.has_controller("cpuacct"));
    assert!(entry.has_controller("cpu"));
    assert!(!entry.has_controller("cpus"));
    assert!(!entry.has_controller(""));
    assert_eq!(entry.relative_path(), "docker/a:b");
    let unified = ProcCgroupEntry::parse("0::/system.slice/x.scope").unwrap();
    assert!(unified.has_controller(""));
    assert!(ProcCgroupEntry::parse("garbage").is_none());
    assert_eq!(round_up(1, LIMIT_GRANULARITY), LIMIT_GRANULARITY);
    assert_eq!(round_up(LIMIT_GRANULARITY, LIMIT_GRANULARITY), LIMIT_GRANULARITY);
}

#[test]
fn procs_lists_the_container_and_its_child_cgroups_on_v1_and_v2() {
    for version in [CgroupVersion::V1, CgroupVersion::V2] {
        let f = fixture();
        let leaf = format!("docker/{ID}");
        let dir = match version {
            CgroupVersion::V1 => {
                fake_v1(&f.root, &leaf);
                f.root.join("memory").join(&leaf)
            }
            CgroupVersion::V2 => {
                fake_v2(&f.root, &leaf);
                f.root.join(&leaf)
            }
        };
        put(&dir.join("cgroup.procs"), "41\n7\n");
        put(&dir.join("inner").join("cgroup.procs"), "99\n7\n");
        let cgroup = ContainerCgroup::for_id(&f.root, ID).unwrap();
        assert_eq!(cgroup.version(), version);
        assert_eq!(cgroup.procs().unwrap(), vec![7, 41, 99], "{version:?}");
        // The container's own list missing is an error, not "no processes".
        fs::remove_file(dir.join("cgroup.procs")).unwrap();
        assert!(cgroup.procs().is_err(), "{version:?}");
    }
}
