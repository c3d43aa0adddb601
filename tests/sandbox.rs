//! The throwaway cluster: starts, answers, and never outlives its owner.

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgm::db;
use pgm::os::process_alive;
use pgm::sandbox::{Sandbox, SandboxOptions, sweep_stale};

const CHILD_MODE: &str = "PGM_SANDBOX_CHILD_MODE";

fn wait_until_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if !process_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn starts_answers_and_cleans_up_on_drop() {
    let sandbox = Sandbox::start().expect("sandbox starts");
    let startup = sandbox.startup_time();
    eprintln!(
        "sandbox startup (initdb + server ready): {} ms",
        startup.as_millis()
    );
    let mut client = db::connect(&sandbox.settings("postgres")).expect("connects");
    let version: String = client.query_one("SHOW server_version", &[]).unwrap().get(0);
    assert_eq!(
        version.split(' ').next().unwrap(),
        sandbox.binaries().version
    );
    let socket = sandbox
        .socket_dir()
        .join(format!(".s.PGSQL.{}", sandbox.port()));
    assert!(
        socket.exists(),
        "the server listens on a socket in its own directory"
    );
    std::net::TcpStream::connect(("127.0.0.1", sandbox.port())).expect("and on the loopback port");

    let (pid, root) = (sandbox.server_pid(), sandbox.root().to_path_buf());
    drop(client);
    drop(sandbox);
    assert!(!process_alive(pid), "the server stopped");
    assert!(!root.exists(), "its directory is gone");
}

#[test]
fn a_panicking_owner_still_stops_the_server() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let result = std::thread::spawn(move || {
        let sandbox = Sandbox::start().expect("sandbox starts");
        sender
            .send((sandbox.server_pid(), sandbox.root().to_path_buf()))
            .unwrap();
        panic!("a test failing while it owns a sandbox");
    })
    .join();
    assert!(result.is_err());
    let (pid, root) = receiver.recv().unwrap();
    assert!(!process_alive(pid), "the server stopped during unwinding");
    assert!(!root.exists(), "its directory is gone");
}

/// The process-wide sandbox of a test binary, seen from inside. Run as a
/// child by the tests below, it reports its server and then fails or hangs
/// as asked; run on its own, it checks the shared sandbox answers.
#[test]
fn process_wide_sandbox() {
    let sandbox =
        Sandbox::start_for_process(&Default::default()).unwrap_or_else(|error| panic!("{error}"));
    let mut client = db::connect(&sandbox.settings("postgres")).expect("connects");
    assert_eq!(
        client.query_one("SELECT 1", &[]).unwrap().get::<_, i32>(0),
        1
    );
    match std::env::var(CHILD_MODE).as_deref() {
        Ok(mode) => {
            println!(
                "SANDBOX {} {}",
                sandbox.server_pid(),
                sandbox.root().display()
            );
            match mode {
                "panic" => panic!("failing on purpose while the process-wide sandbox runs"),
                _ => std::thread::sleep(Duration::from_secs(120)),
            }
        }
        Err(_) => assert!(process_alive(sandbox.server_pid())),
    }
}

fn spawn_child(mode: &str) -> (std::process::Child, u32, PathBuf) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "process_wide_sandbox",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.find("SANDBOX ").map(|at| line[at..].to_owned()))
        .expect("the child reports its sandbox");
    let mut parts = line.split_whitespace().skip(1);
    let pid = parts.next().unwrap().parse().unwrap();
    let root = PathBuf::from(parts.next().unwrap());
    (child, pid, root)
}

#[test]
fn a_failing_test_binary_stops_its_process_wide_sandbox_at_exit() {
    let (mut child, pid, root) = spawn_child("panic");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child test failed as intended");
    assert!(
        wait_until_gone(pid),
        "the server stopped when the failing test binary exited"
    );
    assert!(!root.exists(), "its directory is gone");
}

#[test]
fn a_killed_owner_takes_the_server_down_and_the_next_start_sweeps_its_directory() {
    let (mut child, pid, root) = spawn_child("hang");
    child.kill().unwrap(); // SIGKILL: no destructor, no atexit
    child.wait().unwrap();
    assert!(
        wait_until_gone(pid),
        "the kernel stopped the server with its parent"
    );
    // The directory outlives a killed owner; the next sandbox start (here, or
    // in a test running beside this one) sweeps it.
    sweep_stale(root.parent().unwrap());
    assert!(!root.exists(), "the sweep removed it");
}

#[test]
fn harness_gives_each_test_its_own_database() {
    let first = support::TestDb::new();
    let second = support::TestDb::new();
    assert_ne!(first.name, second.name);
    let current: String = first
        .connect()
        .query_one("SELECT current_database()::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(current, first.name);
}

/// The server's environment is cleared; `server_env` is what goes in on
/// purpose. (Only the postmaster's is readable: each backend writes its
/// process title over the memory /proc shows as its environment.)
#[test]
fn server_env_reaches_the_server() {
    let sandbox = Sandbox::start_with(&SandboxOptions {
        server_env: vec![("PGM_SANDBOX_PROBE".into(), "present".into())],
        ..SandboxOptions::default()
    })
    .unwrap_or_else(|error| panic!("{error}"));
    let environ = std::fs::read(format!("/proc/{}/environ", sandbox.server_pid())).unwrap();
    assert!(
        environ
            .split(|byte| *byte == 0)
            .any(|entry| entry == b"PGM_SANDBOX_PROBE=present"),
        "{}",
        String::from_utf8_lossy(&environ)
    );
}

#[test]
fn missing_binaries_fail_the_run_with_what_to_install() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "harness_gives_each_test_its_own_database",
            "--test-threads=1",
        ])
        .env("PGM_PG_BINDIR", "/nonexistent/postgresql/bin")
        .env_remove("PGM_TEST_DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "no binaries: the test fails, it does not skip"
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("PGM_PG_BINDIR=/nonexistent/postgresql/bin holds no initdb and postgres"),
        "{stdout}"
    );
    assert!(stdout.contains("apt-get install postgresql"), "{stdout}");
}
