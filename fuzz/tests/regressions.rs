//! Replays every seed (`corpus/<target>/seed-*`) and every recorded finding
//! (`regressions/<target>/*`) through the same checks the fuzz targets run, on the stable
//! toolchain: `cargo test --manifest-path fuzz/Cargo.toml`. A finding is fixed when its file
//! passes here; it stays, as a regression test.

use std::path::{Path, PathBuf};

fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut v: Vec<PathBuf> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
        .collect();
    v.sort();
    v
}

fn replay(target: &str, subdir: &str, prefix: &str) -> usize {
    let (_, check) = shardcast_fuzz::TARGETS.iter().find(|(t, _)| *t == target).expect("a target");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(subdir).join(target);
    let found = files(&dir, prefix);
    for path in &found {
        let bytes = std::fs::read(path).expect("readable");
        if let Err(e) = std::panic::catch_unwind(|| check(&bytes)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
            panic!("{} fails {target}: {}", path.display(), msg.unwrap_or_default());
        }
    }
    found.len()
}

#[test]
fn committed_seeds_are_what_the_generator_builds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, name, bytes) in shardcast_fuzz::seeds::all() {
        let path = root.join(target).join(format!("seed-{name}"));
        let on_disk = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run the gen_corpus example)", path.display()));
        assert_eq!(on_disk, bytes, "{} is stale: run the gen_corpus example", path.display());
    }
}

/// Known findings (`regressions/known/`, `regressions/KNOWN.md`) still fail their check; when one
/// passes, it was fixed: move it to `regressions/<target>/` and its entry out of KNOWN.md.
#[test]
fn known_findings_still_reproduce() {
    let known = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions/known");
    for (target, check) in shardcast_fuzz::TARGETS {
        for path in files(&known.join(target), "") {
            let bytes = std::fs::read(&path).expect("readable");
            let fixed = std::panic::catch_unwind(|| check(&bytes)).is_ok();
            assert!(!fixed, "{} passes now: move it to regressions/{target}/", path.display());
        }
    }
}

macro_rules! target_tests {
    ($($name:ident),*) => {$(
        mod $name {
            #[test]
            fn seeds_pass() {
                assert!(super::replay(stringify!($name), "corpus", "seed-") > 0, "no seeds");
            }
            #[test]
            fn recorded_findings_pass() {
                super::replay(stringify!($name), "regressions", "");
            }
        }
    )*};
}

target_tests!(rtp_parse_rewrite, rtp_extensions, rtcp_compound, shard_forward, shard_commands, api_request);
