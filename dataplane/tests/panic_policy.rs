//! The panic policy: a panic on a core aborts the whole process (SIGABRT), after naming the core,
//! the location and the message on stderr — never a silently dead core. The `CoreOp::Panic` test
//! hook is refused without `allow_test_hooks`, and a panic on a thread that is not a core's
//! unwinds as usual.
//!
//! The abort is observed from outside: the test runs itself again as a child process (the
//! `CHILD` variable selects the child's role), which starts two cores and panics core 1.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shardcast_core::command::{BatchReply, ErrorKind};
use shardcast_dataplane::plane::PANIC_HOOK_MESSAGE;
use shardcast_dataplane::{CoreBatch, CoreOp, DataPlane, DataPlaneConfig};

const DEADLINE: Duration = Duration::from_secs(10);
const CHILD: &str = "SHARDCAST_PANIC_POLICY_CHILD";

fn two_cores(allow_test_hooks: bool) -> DataPlane {
    let config = DataPlaneConfig { cpus: vec![None; 2], allow_test_hooks, ..Default::default() };
    DataPlane::start(config).expect("data plane starts")
}

/// The child's role: panic core 1 and wait for a reply that never comes.
fn child() -> ! {
    let plane = two_cores(true);
    plane.cores()[1].submit(CoreBatch { seq: 1, ops: vec![CoreOp::Panic] }).expect("ring has room");
    let reply = plane.replies().recv_timeout(DEADLINE);
    // Reached only if the policy failed: the parent sees this exit code, not SIGABRT.
    eprintln!("child: core 1 did not abort the process (reply {reply:?})");
    std::process::exit(3);
}

#[test]
fn a_panicking_core_aborts_the_process_naming_the_core() {
    if std::env::var_os(CHILD).is_some() {
        child();
    }
    let mut proc = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_panicking_core_aborts_the_process_naming_the_core", "--nocapture"])
        .env(CHILD, "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("child starts");
    let mut stderr = proc.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = proc.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = proc.kill();
            panic!("the child did not exit within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stderr = reader.join().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}; stderr:\n{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("shardcast: core 1 (thread shardcast-core-1"))
        .unwrap_or_else(|| panic!("no line naming core 1 in:\n{stderr}"));
    assert!(line.contains(PANIC_HOOK_MESSAGE), "{line}");
    assert!(line.contains("apply.rs"), "the location: {line}");
    assert!(line.contains("aborting"), "{line}");
}

#[test]
fn the_panic_hook_is_refused_without_test_hooks_and_other_threads_unwind() {
    let plane = two_cores(false);
    plane.cores()[0].submit(CoreBatch { seq: 1, ops: vec![CoreOp::Panic] }).expect("ring has room");
    let reply = plane.replies().recv_timeout(DEADLINE).expect("a reply");
    match reply.reply {
        BatchReply::Rejected { index: 0, error, .. } => {
            assert_eq!(error.kind, ErrorKind::InvalidArgument);
            assert_eq!(error.message, "test hooks are disabled");
        }
        other => panic!("{other:?}"),
    }
    // The core is alive: it applies the next batch.
    plane.cores()[0].submit(CoreBatch { seq: 2, ops: vec![] }).expect("ring has room");
    let reply = plane.replies().recv_timeout(DEADLINE).expect("the core still answers");
    assert!(matches!(reply.reply, BatchReply::Applied { seq: 2, .. }), "{reply:?}");
    // With the data plane's hook installed, a panic elsewhere still unwinds to its joiner.
    let other = std::thread::Builder::new()
        .name("not-a-core".into())
        .spawn(|| panic!("an ordinary panic"))
        .unwrap()
        .join();
    assert!(other.is_err(), "the panic unwound and was caught by join");
    plane.shutdown(DEADLINE).expect("cores stop");
}
