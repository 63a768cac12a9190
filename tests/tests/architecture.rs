//! ARCHITECTURE.md's invariants that are absences in the source, checked on the source itself.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the workspace").to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Source lines of `crate_dir/src`, without comments and without `#[cfg(test)]` modules' tails.
fn code_lines(crate_dir: &str) -> Vec<(PathBuf, usize, String)> {
    let mut files = Vec::new();
    rust_files(&root().join(crate_dir).join("src"), &mut files);
    let mut lines = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).expect("readable source");
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("#[cfg(test)]") {
                break;
            }
            let code = line.split("//").next().unwrap_or("").to_string();
            lines.push((f.clone(), i + 1, code));
        }
    }
    lines
}

fn offenders(crate_dir: &str, needles: &[&str]) -> Vec<String> {
    code_lines(crate_dir)
        .into_iter()
        .filter(|(_, _, l)| needles.iter().any(|n| l.contains(n)))
        .map(|(f, n, l)| format!("{}:{n}: {}", f.display(), l.trim()))
        .collect()
}

#[test]
fn core_is_sans_io_no_sockets_no_clock_no_threads_no_unsafe() {
    let bad = offenders(
        "core",
        &[
            "UdpSocket",
            "TcpStream",
            "Instant",
            "SystemTime",
            "std::thread",
            "std::fs",
            "unsafe {",
            "unsafe fn",
            "unsafe impl",
            "Mutex",
        ],
    );
    assert!(bad.is_empty(), "core must stay sans-IO:\n{}", bad.join("\n"));
}

#[test]
fn unsafe_lives_only_in_named_modules_with_safety_notes() {
    let allowed = ["dataplane/src/io/"];
    for krate in ["core", "dataplane", "control"] {
        let lines = code_lines(krate);
        for (idx, (f, n, l)) in lines.iter().enumerate() {
            if !l.contains("unsafe {") && !l.contains("unsafe impl") {
                continue;
            }
            let path = f.to_string_lossy();
            assert!(allowed.iter().any(|a| path.contains(a)), "unsafe outside dataplane/src/io/: {path}:{n}");
            let text = fs::read_to_string(f).unwrap();
            let all: Vec<&str> = text.lines().collect();
            let window = &all[n.saturating_sub(6)..*n];
            assert!(window.iter().any(|w| w.contains("SAFETY:")), "{path}:{n} lacks a // SAFETY: note");
            let _ = idx;
        }
    }
}

#[test]
fn the_data_plane_takes_no_lock_and_uses_no_unbounded_queue() {
    let bad = offenders("dataplane", &["Mutex", "RwLock", "unbounded", "std::sync::mpsc"]);
    assert!(bad.is_empty(), "locks or unbounded queues in the data plane:\n{}", bad.join("\n"));
}

#[test]
fn no_unbounded_channels_anywhere() {
    let mut bad = Vec::new();
    for krate in ["core", "dataplane", "control"] {
        bad.extend(offenders(krate, &["unbounded(", "unbounded_channel"]));
    }
    assert!(bad.is_empty(), "every queue is bounded:\n{}", bad.join("\n"));
}
