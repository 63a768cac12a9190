//! Writes the seed corpora: `cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus`.
//! Seeds are named by what they are; libFuzzer's own additions (hash names) are not committed.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, name, bytes) in shardcast_fuzz::seeds::all() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
    }
    let known = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions/known");
    for (target, name, bytes) in shardcast_fuzz::seeds::known_findings() {
        std::fs::create_dir_all(known.join(target))?;
        std::fs::write(known.join(target).join(name), bytes)?;
    }
    for (target, _) in shardcast_fuzz::TARGETS {
        let n = std::fs::read_dir(root.join(target))?.count();
        println!("corpus/{target}: {n} files");
    }
    Ok(())
}
