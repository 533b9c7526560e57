//! Processes with deadlines: every command a test runs is killed (with its
//! process group) when it overruns, so no test hangs.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

/// A command that did not finish in time; it was killed (its whole process
/// group) and `partial` holds what it printed.
#[derive(Debug)]
pub struct TimedOut {
    pub command: String,
    pub after: Duration,
    pub partial: Output,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} did not finish within {:?} and was killed\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.after,
            self.partial.stdout_text(),
            self.partial.stderr_text()
        )
    }
}

/// Runs `cmd` to completion with stdout and stderr captured; panics (with
/// the partial output) if it takes longer than `timeout`. Stdin is whatever
/// the caller set (the `docker` helpers set `/dev/null`).
pub fn run_with_timeout(cmd: Command, timeout: Duration) -> Output {
    try_run_with_timeout(cmd, timeout).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`run_with_timeout`] with `input` written to the command's stdin,
/// which is then closed.
pub fn run_with_input(mut cmd: Command, input: &[u8], timeout: Duration) -> Output {
    cmd.stdin(Stdio::piped());
    let input = input.to_vec();
    try_run_inner(cmd, timeout, Some(input)).unwrap_or_else(|e| panic!("{e}"))
}

/// Like [`run_with_timeout`], returning the timeout instead of panicking.
pub fn try_run_with_timeout(cmd: Command, timeout: Duration) -> Result<Output, TimedOut> {
    try_run_inner(cmd, timeout, None)
}

fn try_run_inner(mut cmd: Command, timeout: Duration, input: Option<Vec<u8>>) -> Result<Output, TimedOut> {
    let description = describe(&cmd);
    // Its own process group, so that a timeout kills helpers it started
    // (the compose plugin, `script`'s child) along with it.
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
    let pgid = Pid::from_raw(child.id() as i32);
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin was piped");
        thread::spawn(move || {
            // The command may exit without reading it all: ignore EPIPE.
            let _ = stdin.write_all(&input);
        });
    }
    let stdout = spawn_reader(child.stdout.take());
    let stderr = spawn_reader(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {description}: {e}"),
        }
    };
    let status = match status {
        Some(status) => status,
        None => {
            let _ = signal::killpg(pgid, Signal::SIGKILL);
            let status = child.wait().unwrap_or(ExitStatus::from_raw(9));
            let partial = Output {
                status,
                stdout: collect_reader(stdout, Duration::from_secs(5)),
                stderr: collect_reader(stderr, Duration::from_secs(5)),
            };
            return Err(TimedOut {
                command: description,
                after: timeout,
                partial,
            });
        }
    };
    // A helper the command left behind may hold the pipes open: wait a
    // little for EOF, then kill the group.
    let pipes_deadline = Duration::from_secs(10);
    let finish = |reader: &Reader| match reader.1.recv_timeout(pipes_deadline) {
        Ok(bytes) => bytes,
        Err(_) => {
            let _ = signal::killpg(pgid, Signal::SIGKILL);
            reader.1.recv_timeout(pipes_deadline).unwrap_or_default()
        }
    };
    let stdout_bytes = finish(&stdout);
    let stderr_bytes = finish(&stderr);
    Ok(Output {
        status,
        stdout: stdout_bytes,
        stderr: stderr_bytes,
    })
}

type Reader = (thread::JoinHandle<()>, mpsc::Receiver<Vec<u8>>);

fn spawn_reader<R: Read + Send + 'static>(pipe: Option<R>) -> Reader {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    (handle, rx)
}

fn collect_reader(reader: Reader, timeout: Duration) -> Vec<u8> {
    reader.1.recv_timeout(timeout).unwrap_or_default()
}

fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&shell_quote(&arg.to_string_lossy()));
    }
    text
}

/// Quotes `arg` for `sh` when it needs it.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+%".contains(&b));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// Runs the shell command line `command_line` under a pseudo-terminal with
/// `script -qec CMD /dev/null` (stdin `/dev/null`), with extra `env`; the
/// exit status is the command's own. Output has `\r\n` line ends.
pub fn run_in_pty(command_line: &str, env: &[(&str, &str)], timeout: Duration) -> Output {
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", command_line, "/dev/null"])
        .stdin(Stdio::null());
    for (key, value) in env {
        cmd.env(key, value);
    }
    run_with_timeout(cmd, timeout)
}

/// A child started with [`spawn_streaming`]: its stdout lines arrive as they
/// are printed. Dropping it kills its process group.
pub struct StreamingChild {
    pub child: Child,
    description: String,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Option<Reader>,
}

/// Starts `cmd` (its own process group) with stdout read line by line, for
/// long-lived commands such as `docker events` or `docker logs -f`.
pub fn spawn_streaming(mut cmd: Command) -> StreamingChild {
    let description = describe(&cmd);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
    let stdout = child.stdout.take().expect("stdout was piped");
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let stderr = Some(spawn_reader(child.stderr.take()));
    StreamingChild {
        child,
        description,
        lines,
        seen: Vec::new(),
        stderr,
    }
}

impl StreamingChild {
    /// Reads lines until one satisfies `pred`, at most `timeout`; panics
    /// with everything seen so far otherwise. Returns that line.
    pub fn wait_for_line(&mut self, what: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(line) = self.seen.iter().find(|l| pred(l)) {
            return line.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "{}: no line matching {what} within {timeout:?}; lines so far:\n{}",
                    self.description,
                    self.seen.join("\n")
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let stderr = self.stderr_text();
                    panic!(
                        "{}: output ended before a line matching {what}; lines:\n{}\nstderr:\n{stderr}",
                        self.description,
                        self.seen.join("\n"),
                    )
                }
            }
        }
    }

    /// Every line seen so far (those read by `wait_for_line`, plus any
    /// that are already waiting).
    pub fn lines(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `SIGKILL` to the process group, and reap.
    pub fn kill(&mut self) {
        let _ = signal::killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// The process's stderr; only complete after it exited.
    pub fn stderr_text(&mut self) -> String {
        match self.stderr.take() {
            Some(reader) => String::from_utf8_lossy(&collect_reader(reader, Duration::from_secs(5))).into_owned(),
            None => String::new(),
        }
    }
}

impl Drop for StreamingChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

// ---------------------------------------------------------------------------
// output helpers

pub trait OutputExt {
    fn stdout_text(&self) -> String;
    fn stderr_text(&self) -> String;
    /// The exit code; panics when the process was killed by a signal.
    fn code(&self) -> i32;
    /// Panics with stdout and stderr unless the exit code is 0.
    fn assert_success(&self, what: &str) -> &Self;
    /// Panics with stdout and stderr unless the exit code is `code`.
    fn assert_code(&self, code: i32, what: &str) -> &Self;
}

impl OutputExt for Output {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {:?}", self.status.signal()))
    }

    fn assert_success(&self, what: &str) -> &Self {
        self.assert_code(0, what)
    }

    fn assert_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(
            self.status.code(),
            Some(code),
            "{what}: expected exit code {code}, got {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout_text(),
            self.stderr_text()
        );
        self
    }
}
