//! The panic policy through the real daemon: with test hooks enabled, `POST /cores/1/panic`
//! panics core 1 and the process dies by SIGABRT within the deadline, its stderr naming the core
//! and the panic message (so the supervisor restarts it; never a silently dead core). Without
//! test hooks the route is refused and the daemon goes on.

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Daemon;
use reqwest::blocking::Client;
use shardcast_dataplane::plane::PANIC_HOOK_MESSAGE;

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

/// The embedded configuration with `allow_test_hooks = true`, in a file of its own.
fn config_with_test_hooks() -> std::path::PathBuf {
    let out = Command::new(common::bin()).arg("--print-config").output().expect("--print-config runs");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("allow_test_hooks = false"), "{text}");
    let path = std::env::temp_dir().join(format!("shardcast-panic-abort-{}.toml", std::process::id()));
    std::fs::write(&path, text.replace("allow_test_hooks = false", "allow_test_hooks = true")).unwrap();
    path
}

#[test]
fn a_core_panic_aborts_the_daemon_naming_the_core() {
    let config = config_with_test_hooks();
    let mut cmd = Command::new(common::bin());
    cmd.args(common::LOCAL).args(["--cores", "2", "--config"]).arg(&config).stderr(Stdio::piped());
    let mut d = Daemon::spawn(cmd, Duration::from_secs(20)).expect("daemon starts");
    let mut stderr = d.child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // The call may or may not see its answer before the process is gone.
    let _ = client().post(format!("{}/cores/1/panic", d.api)).send();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = d.child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = d.child.kill();
            panic!("the daemon did not abort within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = std::fs::remove_file(&config);
    let stderr = reader.join().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}; stderr:\n{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("shardcast: core 1 (thread shardcast-core-1"))
        .unwrap_or_else(|| panic!("no line naming core 1 in:\n{stderr}"));
    assert!(line.contains(PANIC_HOOK_MESSAGE), "{line}");
}

#[test]
fn the_panic_route_is_refused_without_test_hooks() {
    let d = Daemon::start(&[]);
    let r = client().post(format!("{}/cores/1/panic", d.api)).send().unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = client().get(format!("{}/stats", d.api)).send().unwrap();
    assert_eq!(r.status().as_u16(), 200, "the daemon goes on");
    assert!(d.stop(), "stops cleanly");
}
