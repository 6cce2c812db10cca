use super::*;
use clap::Parser;

fn args(v: &[&str]) -> Args {
    Args::try_parse_from(std::iter::once("shardcast").chain(v.iter().copied())).unwrap()
}

#[test]
fn example_parses() {
    let c = Config::from_toml_str(EXAMPLE_TOML).unwrap();
    assert_eq!(c.shards, 2);
    assert_eq!(c.max_frame, 65536);
    assert_eq!(c.outbox_bytes, 1 << 20);
    assert_eq!(c.origins.len(), 2);
    let v = c.namespace("vehicle");
    assert_eq!(
        (v.history_size, v.history_ttl, v.policy),
        (500, Some(Duration::from_secs(600)), Policy::Drop)
    );
    let o = c.namespace("orders");
    assert!(!o.client_publish && o.client_subscribe && o.policy == Policy::Disconnect);
    // Tracking (issue 11).
    let f = c.namespace("fleet");
    assert_eq!(f.geo, Some(GeoFields { lat: "lat".into(), lon: "lon".into() }));
    assert_eq!(f.status, ["status", "stopped", "state"]);
    assert_eq!(c.namespace("sensor").liveness_ttl, Some(Duration::from_secs(30)));
    let chat = c.namespace("chat");
    assert!(chat.presence && chat.presence_members == 1000 && chat.presence_window == Duration::from_secs(1));
}

#[test]
fn tracking_settings_are_validated() {
    for (toml, why) in [
        ("[namespaces.a]\nliveness_ttl = \"30s\"\n", "liveness_ttl requires key"),
        ("[namespaces.a]\nkey = \"id\"\nliveness_ttl = \"10ms\"\n", "at least 1s"),
        ("[namespaces.a]\npresence_window = \"10ms\"\n", "between 50ms and 60s"),
        ("[namespaces.a]\ngeo = { lat = \"x\", lon = \"x\" }\n", "two different"),
        ("[namespaces.a]\ngeo = { lat = \"x\" }\n", "lon"),
        ("[namespaces.a]\nstatus = [\"\"]\n", "non-empty"),
    ] {
        let e = Config::from_toml_str(toml).unwrap_err().to_string();
        assert!(e.contains(why), "{toml}: {e}");
    }
}

#[test]
fn defaults_and_demo_namespaces() {
    let c = Config::from_toml_str("").unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert!(c.shards >= 1);
    let f = c.namespace("fleet");
    assert_eq!((f.key.as_deref(), f.policy, f.history_size), (Some("id"), Policy::Conflate, 100));
    let other = c.namespace("tracker/42");
    assert_eq!(
        (other.key, other.policy, other.history_size, other.client_publish),
        (None, Policy::Drop, 100, true)
    );
    // A user table replaces the built-in one wholesale.
    let c = Config::from_toml_str("[namespaces.fleet]\nhistory_size = 5").unwrap();
    assert_eq!((c.namespace("fleet").key, c.namespace("fleet").policy), (None, Policy::Drop));
}

#[test]
fn precedence_cli_over_file() {
    let dir = std::env::temp_dir().join(format!("shardcast-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.toml");
    std::fs::write(&path, "shards = 3\nmax_frame = 1000\nhistory_ttl = \"5m\"\n").unwrap();
    let p = path.to_str().unwrap();
    let c =
        Config::load(args(&["--config", p, "--shards", "4", "--history-ttl", "off", "--no-demo"])).unwrap();
    assert_eq!((c.shards, c.max_frame, c.history_ttl, c.no_demo), (4, 1000, None, true));
    let c = Config::load(args(&["-c", p, "--max-frame", "2KiB", "--ping-interval", "500ms"])).unwrap();
    assert_eq!((c.shards, c.max_frame, c.ping_interval), (3, 2048, Duration::from_millis(500)));
    assert!(matches!(Config::load(args(&["-c", "/nonexistent.toml"])), Err(ConfigError::Read { .. })));
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn humane_values() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    for bad in ["5", "s", "5x", "-1s", "1.5s", ""] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
    assert_eq!(parse_size("65536"), Ok(65536));
    assert_eq!(parse_size("64KiB"), Ok(65536));
    assert_eq!(parse_size("1MiB"), Ok(1 << 20));
    assert_eq!(parse_size("2 kb"), Ok(2000));
    assert!(parse_size("1TiB").is_err() && parse_size("x").is_err());
    assert!(Config::from_toml_str("handshake_timeout = 5")
        .unwrap_err()
        .to_string()
        .contains("handshake_timeout"));
    assert!(Config::from_toml_str("max_frame = \"64XB\"").unwrap_err().to_string().contains("max_frame"));
    assert!(Config::from_toml_str("shard = 2").unwrap_err().to_string().contains("shard"));
}

#[test]
fn validation_names_the_field() {
    let err = |t: &str| Config::from_toml_str(t).unwrap_err().to_string();
    assert!(err("shards = 0").contains("shards"));
    assert!(err("shards = 300").contains("shards"));
    assert!(err("max_frame = 100").contains("max_frame"));
    assert!(err("max_frame = \"32MiB\"").contains("max_frame"));
    assert!(err("outbox_bytes = 1000").contains("outbox_bytes"));
    assert!(err("idle_timeout = \"10s\"").contains("idle_timeout"));
    assert!(err("jwt_secret = \"short\"").contains("jwt_secret"));
    assert!(err("origins = [\"example.com\"]").contains("origins"));
    assert!(err("log = \"[[[\"").contains("log"));
    assert!(err("policy = \"conflate\"").contains("policy"));
    assert!(err("[namespaces.pos]\npolicy = \"conflate\"").contains("namespaces.pos"));
    assert!(err("[namespaces.pos]\npolicy = \"sometimes\"").contains("policy"));
    assert!(err("[namespaces.\"a:b\"]\nkey = \"id\"").contains("namespaces.a:b"));
    assert!(err("[namespaces.x]\nhistory_ttl = \"0s\"").contains("namespaces.x"));
}

#[test]
fn refuses_open_public_bind() {
    let e = Config::from_toml_str("listen = \"0.0.0.0:8080\"").unwrap_err();
    assert_eq!(
        e.to_string(),
        "refusing to bind non-loopback 0.0.0.0:8080 without --jwt-secret or --allow-anonymous"
    );
    assert!(Config::from_toml_str("listen = \"0.0.0.0:8080\"\nallow_anonymous = true").is_ok());
    assert!(Config::from_toml_str("listen = \"0.0.0.0:8080\"\njwt_secret = \"0123456789abcdef\"").is_ok());
    assert!(Config::from_toml_str("listen = \"[::1]:9000\"").is_ok());
}

#[test]
fn origins() {
    let mut c = Config::default();
    assert!(c.origin_allowed(Some("https://evil.example")));
    c.origins = vec!["https://maps.example.com".into()];
    assert!(c.origin_allowed(Some("https://maps.example.com")));
    assert!(!c.origin_allowed(Some("https://evil.example")));
    assert!(c.origin_allowed(None));
}

#[test]
fn help_documents_every_flag() {
    use clap::CommandFactory;
    let help = Args::command().render_long_help().to_string();
    for flag in
        ["--listen", "--jwt-secret", "--history-ttl", "--policy", "Default: 64KiB", "SHARDCAST_MAX_FRAME"]
    {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    Args::command().debug_assert();
}

#[test]
fn a_listen_address_may_name_a_host() {
    assert_eq!(super::values::parse_listen("localhost:8081").unwrap().to_string(), "127.0.0.1:8081");
    assert_eq!(super::values::parse_listen("[::1]:80").unwrap().to_string(), "[::1]:80");
    assert!(super::values::parse_listen("localhost").is_err(), "a port is required");
    let c = Config::load(args(&["--listen", "localhost:8082"])).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8082");
    let c = Config::from_toml_str("listen = \"localhost:9001\"").unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:9001");
}
