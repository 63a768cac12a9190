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

/// Net `{` minus `}` on a line of code (string and char literals are not parsed: the production
/// code this scans has no unbalanced braces inside literals on a `#[cfg(test)]` item's lines).
fn brace_delta(code: &str) -> i64 {
    code.chars()
        .map(|c| match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        })
        .sum()
}

/// The file a `mod NAME;` declared in `file` refers to.
fn module_file(file: &Path, name: &str) -> Vec<PathBuf> {
    let dir = file.parent().expect("a source file is in a directory");
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let base = if matches!(stem, "mod" | "lib" | "main") { dir.to_path_buf() } else { dir.join(stem) };
    vec![base.join(format!("{name}.rs")), base.join(name).join("mod.rs")]
}

/// The production lines of one file's text, without comments and without the items under
/// `#[cfg(test)]` (inline `mod tests { .. }` blocks, test-only functions), plus the names of the
/// modules declared `#[cfg(test)] mod x;` (whose files are test-only). Every other line is kept,
/// wherever in the file it stands.
fn production_lines(text: &str) -> (Vec<(usize, String)>, Vec<String>) {
    let mut lines = Vec::new();
    let mut test_mods = Vec::new();
    // None: production code. Some(depth): inside a #[cfg(test)] item, braces still open.
    let mut skipping: Option<i64> = None;
    let mut pending_cfg_test = false;
    for (i, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("").to_string();
        let trimmed = code.trim();
        if let Some(depth) = skipping {
            let depth = depth + brace_delta(&code);
            skipping = if depth <= 0 { None } else { Some(depth) };
            continue;
        }
        if pending_cfg_test {
            if trimmed.is_empty() || trimmed.starts_with("#[") {
                continue;
            }
            pending_cfg_test = false;
            let decl = trimmed.strip_prefix("pub ").unwrap_or(trimmed);
            if let Some(name) = decl.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                test_mods.push(name.trim().to_string());
                continue;
            }
            let depth = brace_delta(&code);
            if depth > 0 || !(trimmed.ends_with(';') || trimmed.ends_with('}')) {
                skipping = Some(depth);
            }
            continue;
        }
        if trimmed.starts_with("#[cfg(test)]") {
            pending_cfg_test = true;
            continue;
        }
        lines.push((i + 1, code));
    }
    (lines, test_mods)
}

/// Production lines of every file of `crate_dir/src` (see [`production_lines`]).
fn code_lines(crate_dir: &str) -> Vec<(PathBuf, usize, String)> {
    let mut files = Vec::new();
    rust_files(&root().join(crate_dir).join("src"), &mut files);
    let mut test_only: Vec<PathBuf> = Vec::new();
    let mut lines = Vec::new();
    for f in &files {
        let text = fs::read_to_string(f).expect("readable source");
        let (kept, test_mods) = production_lines(&text);
        for m in test_mods {
            test_only.extend(module_file(f, &m));
        }
        lines.extend(kept.into_iter().map(|(n, l)| (f.clone(), n, l)));
    }
    lines.retain(|(f, _, _)| !test_only.iter().any(|t| t == f));
    lines
}

#[test]
fn the_scan_reads_every_production_line_and_skips_only_test_items() {
    let text = "use a;\n#[cfg(test)]\nmod proptests;\nfn after_decl() { Mutex }\n#[cfg(test)]\n\
                mod tests {\n    fn t() {\n        x();\n    }\n}\nfn after_block() {}\n\
                #[cfg(test)]\nfn helper() -> u8 {\n    1\n}\nfn last() {}\n";
    let (lines, mods) = production_lines(text);
    let kept: Vec<&str> = lines.iter().map(|(_, l)| l.trim()).filter(|l| !l.is_empty()).collect();
    assert_eq!(kept, ["use a;", "fn after_decl() { Mutex }", "fn after_block() {}", "fn last() {}"]);
    assert_eq!(mods, ["proptests"]);
    // The real tree: files declared `#[cfg(test)] mod x;` are left out, nothing else is.
    let core = code_lines("core");
    assert!(!core.iter().any(|(f, _, _)| f.ends_with("rtcp/proptests.rs")), "proptests.rs is test-only");
    assert!(core.iter().any(|(f, _, _)| f.ends_with("rtcp/mod.rs")));
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

#[test]
fn control_reaches_the_data_plane_only_through_its_boundary() {
    // ARCHITECTURE.md, "API boundaries": plane.rs's types (re-exported at the crate root), the
    // DataPlane itself, socket binding, kernel-steering figures and the process set-up helpers of io.
    let roots = [
        "CoreBatch",
        "CoreOp",
        "CoreReply",
        "CoreHandle",
        "CoreEvent",
        "CoreStatsSnapshot",
        "DataPlaneConfig",
        "DataPlane",
        "plane",
        "socket",
        "steering",
        "io",
    ];
    let io_items = [
        "memlock_limit",
        "raise_memlock",
        "nofile_limit",
        "raise_nofile",
        "allowed_cpus",
        "pin_current_thread",
        "set_current_thread_policy",
        "current_thread_policy",
        "SchedPolicy",
    ];
    let mut bad = Vec::new();
    for (f, n, line) in code_lines("control") {
        let mut rest = line.as_str();
        while let Some(i) = rest.find("shardcast_dataplane::") {
            rest = &rest[i + "shardcast_dataplane::".len()..];
            let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                group.split('}').next().unwrap_or("").split(',').map(str::trim).collect()
            } else {
                vec![rest
                    .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .next()
                    .unwrap_or("")]
            };
            for name in names.into_iter().filter(|s| !s.is_empty()) {
                let root = name.split("::").next().unwrap_or("");
                let io_ok = root != "io" || {
                    let item = name.trim_start_matches("io::").trim_start_matches('{');
                    item.is_empty() || io_items.iter().any(|i| item.starts_with(i))
                };
                if !roots.contains(&root) || !io_ok {
                    bad.push(format!("{}:{n}: shardcast_dataplane::{name}", f.display()));
                }
            }
        }
    }
    assert!(bad.is_empty(), "control reaches past the data plane's boundary:\n{}", bad.join("\n"));
}
