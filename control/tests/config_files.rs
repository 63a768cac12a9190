//! Config files say only what they change; invalid pinning is refused naming the field and the
//! fix; the shipped profiles parse; a reload applies only what is safe.

use std::path::Path;

use shardcast::config::{Config, CpuChoice, LogFormat, Policy};
use shardcast::pinning::Severity;
use shardcast::tune::host::HostFacts;

fn host(name: &str) -> HostFacts {
    HostFacts::read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hosts").join(name))
}

#[test]
fn one_key_per_section_is_a_whole_config() {
    let text = r#"
        log_format = "json"
        [cores]
        control = "none"
        [media]
        listen = "127.0.0.1:5004"
        [api]
        token = "s3cret"
        [rebalancer]
        threshold = 0.5
    "#;
    let c = Config::parse(text).unwrap();
    let d = Config::default();
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.cores.control, CpuChoice::Unpinned);
    assert_eq!(c.media.listen.to_string(), "127.0.0.1:5004");
    assert_eq!((c.media.recv_buffer, c.media.port_range), (d.media.recv_buffer, d.media.port_range));
    assert_eq!(c.api.token.as_deref(), Some("s3cret"));
    assert_eq!(c.api.core_deadline_ms, d.api.core_deadline_ms);
    assert_eq!((c.rebalancer.threshold, c.rebalancer.interval_ms), (0.5, d.rebalancer.interval_ms));
    assert_eq!(Config::parse("").unwrap(), d, "an empty file is the default");
    assert!(
        Config::parse("[media]\nbogus = 1\n").unwrap_err().contains("bogus"),
        "unknown keys are still refused"
    );
}

#[test]
fn policies_and_cpu_choices_parse_with_clear_errors() {
    let c =
        Config::parse("[cores]\ndata_plane_policy = { fifo = 20 }\ncontrol = 3\napi = \"first\"\n").unwrap();
    assert_eq!(c.cores.data_plane_policy, Policy::Fifo(20));
    assert_eq!((c.cores.control, c.cores.api), (CpuChoice::Cpu(3), CpuChoice::First));
    let err = Config::parse("[cores]\ncontrol = \"last\"\n").unwrap_err();
    assert!(err.contains("\"first\"") && err.contains("\"none\""), "{err}");
    let bad = Config::parse("[cores]\ndata_plane_policy = { fifo = 0 }\n").unwrap();
    let err = bad.validate_on(&host("this-machine")).unwrap_err();
    assert!(err.contains("cores.data_plane_policy") && err.contains("1..=99"), "{err}");
}

#[test]
fn invalid_pinning_names_the_field_and_the_fix() {
    let h = host("this-machine");
    let check = |text: &str| Config::parse(text).unwrap().validate_on(&h).unwrap_err();
    let err = check("[cores]\ndata_plane = [1, 1]\n");
    assert!(err.contains("cores.data_plane: cpu 1 is listed twice; fix: list each CPU once"), "{err}");
    let err = check("[cores]\ndata_plane = [0, 1]\ncontrol = 0\n");
    assert!(err.contains("cores.control: cpu 0 is also a data-plane CPU"), "{err}");
    assert!(err.contains("cores.control_on_data_plane = true"), "{err}");
    let ok =
        Config::parse("[cores]\ndata_plane = [0, 1]\ncontrol = 0\napi = 0\ncontrol_on_data_plane = true\n")
            .unwrap();
    assert!(ok.validate_on(&h).is_ok(), "said so: accepted");
    let err = check("[cores]\ncontrol = 7\n");
    assert!(err.contains("cores.control: cpu 7 does not exist on this machine (online CPUs: 0-1)"), "{err}");
    let err = check("[media]\nport_range = [500, 10]\n");
    assert!(err.contains("media.port_range") && err.contains("fix:"), "{err}");
}

#[test]
fn a_buffer_the_kernel_will_clamp_is_named() {
    let h = host("numa2-smt"); // rmem_max 212992, no CAP_NET_ADMIN
    let c = Config::default();
    let f = c.check(&h).into_iter().find(|f| f.field == "media.recv_buffer").expect("clamp finding");
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        f.problem.contains("clamps it to 212992") && f.fix.contains("sysctl -w net.core.rmem_max=4194304"),
        "{f}"
    );
    let strict = Config::parse("[media]\nrequire_buffers = true\n").unwrap();
    let err = strict.validate_on(&h).unwrap_err();
    assert!(err.contains("media.recv_buffer") && err.contains("media.send_buffer"), "{err}");
    let small =
        Config::parse("[media]\nrequire_buffers = true\nrecv_buffer = 200000\nsend_buffer = 200000\n")
            .unwrap();
    assert!(small.check(&h).iter().all(|f| !f.field.starts_with("media.")));
}

#[test]
fn shipped_profiles_parse_and_are_explained() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning");
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for name in ["default.toml", "dedicated.toml", "shared-host.toml", "benchmark.toml"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let c = Config::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.starts_with('#'), "{name} opens with what it is for");
        assert!(readme.contains(name), "tuning/README.md explains {name}");
        // On the 2-socket host every profile is valid (it has the CPUs they name).
        let h = host("numa2-smt");
        c.validate_on(&HostFacts { cap_eff: Some(u64::MAX), ..h }).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn reload_applies_log_level_and_rebalancer_and_refuses_the_rest() {
    let old = Config::default();
    let mut new = old.clone();
    new.log_level = "debug".into();
    new.rebalancer.threshold = 0.4;
    assert_eq!(old.reload_to(&new).unwrap(), vec!["log_level", "rebalancer"]);
    assert!(old.reload_to(&old).unwrap().is_empty());
    new.media.listen = "127.0.0.1:9".parse().unwrap();
    new.cores.data_plane = vec![1];
    let err = old.reload_to(&new).unwrap_err();
    assert!(err.starts_with("cores.data_plane, media.listen changed: these need a restart"), "{err}");
}
