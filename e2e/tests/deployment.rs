//! The deployment files against the code they deploy: every Nomad job (HCL) and
//! `compose.yaml` must run binaries the Dockerfile builds from the image it names,
//! give each service only environment variables that land in its settings (loaded
//! the way the service loads them, with any ignored key an error), probe the port
//! the service listens on at the health path it serves, and allow a stop longer
//! than the services' shutdown grace period.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use figment::providers::Env;
use figment::Figment;
use hcl::eval::{Context, FuncArgs, FuncDef, ParamType};
use rns_service::health::READY_PATH;
use rns_service::shutdown::GRACE_PERIOD;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The image every RNS job and compose service runs.
const IMAGE: &str = "rns:latest";

/// Each service: its binary, its Nomad job file and compose service, and the
/// settings key of the address its health endpoint listens on.
const SERVICES: [(&str, &str, &str, &str); 4] = [
    (
        "rns-gateway",
        "rns-gateway.nomad.hcl",
        "gateway",
        "gateway.listen",
    ),
    (
        "rns-dispatcher",
        "rns-dispatcher.nomad.hcl",
        "dispatcher",
        "dispatcher.health_listen",
    ),
    (
        "rns-carriers",
        "rns-carriers.nomad.hcl",
        "carriers",
        "carrier_workers.health_listen",
    ),
    (
        "rns-analytics",
        "rns-analytics.nomad.hcl",
        "analytics",
        "analytics.health_listen",
    ),
];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds e2e")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(workspace().join(path))
        .unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Nomad's `file(path)`, relative to the repository root (where jobs are run from).
fn file_function(arguments: FuncArgs) -> Result<hcl::Value, String> {
    let path = arguments[0].as_str().ok_or("file() takes a path")?;
    std::fs::read_to_string(workspace().join(path))
        .map(hcl::Value::from)
        .map_err(|error| format!("file({path}): {error}"))
}

/// Nomad's `replace(string, search, replacement)`.
fn replace_function(arguments: FuncArgs) -> Result<hcl::Value, String> {
    let text = |index: usize| arguments[index].as_str().unwrap_or_default().to_owned();
    Ok(hcl::Value::from(text(0).replace(&text(1), &text(2))))
}

/// A Nomad job file evaluated as Nomad would (variables at their defaults), as JSON.
fn nomad_job(file: &str) -> Value {
    let text = read(&format!("deploy/nomad/{file}"));
    let body: hcl::Body = hcl::from_str(&text).unwrap_or_else(|error| panic!("{file}: {error}"));
    let mut context = Context::new();
    for type_name in ["string", "number", "bool"] {
        context.declare_var(type_name, type_name);
    }
    let mut defaults = hcl::Map::new();
    for block in body
        .blocks()
        .filter(|block| block.identifier() == "variable")
    {
        let name = block.labels()[0].as_str().to_owned();
        let default = block
            .body()
            .attributes()
            .find(|attribute| attribute.key() == "default")
            .unwrap_or_else(|| panic!("{file}: variable {name} needs a default"));
        let value: hcl::Value = hcl::eval::Evaluate::evaluate(default.expr(), &context)
            .unwrap_or_else(|error| panic!("{file}: {error}"));
        defaults.insert(name, value);
    }
    context.declare_var("var", hcl::Value::Object(defaults));
    let string = ParamType::String;
    context.declare_func(
        "file",
        FuncDef::builder()
            .param(string.clone())
            .build(file_function),
    );
    context.declare_func(
        "replace",
        FuncDef::builder()
            .param(string.clone())
            .param(string.clone())
            .param(string)
            .build(replace_function),
    );
    let value: hcl::Value =
        hcl::eval::from_str(&text, &context).unwrap_or_else(|error| panic!("{file}: {error}"));
    serde_json::to_value(value).expect("HCL values are JSON")
}

/// A block that may appear once (an object) or repeated (an array).
fn each(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        single => vec![single],
    }
}

/// Labelled blocks (`group "name" {}`): each with its label.
fn labelled(value: &Value) -> Vec<(&str, &Value)> {
    value
        .as_object()
        .map(|blocks| {
            blocks
                .iter()
                .flat_map(|(label, block)| {
                    each(block)
                        .into_iter()
                        .map(move |block| (label.as_str(), block))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn duration(text: &str) -> Duration {
    let seconds = text
        .strip_suffix('s')
        .and_then(|seconds| seconds.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("a duration in seconds: {text}"));
    Duration::from_secs(seconds)
}

fn environment(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .expect("an environment is a map")
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            (name.clone(), value)
        })
        .collect()
}

/// Loads `T` from `environment` exactly as the services do (figment, `RNS_`, `__`
/// between levels), failing on a value of the wrong type; returns the settings as
/// JSON and every key that `T` ignored.
// figment::Jail's closure must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
fn settings_from<T: DeserializeOwned + 'static>(
    environment: &BTreeMap<String, String>,
) -> (Value, Vec<String>) {
    let mut loaded = None;
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        for (name, value) in environment {
            jail.set_env(name, value);
        }
        let figment = Figment::from(Env::prefixed("RNS_").split("__"));
        let raw: figment::value::Dict = figment.extract()?;
        // The service's own load, which also checks the value types.
        let _: T = figment.extract()?;
        let raw = serde_json::to_value(raw).expect("settings are JSON");
        let mut ignored = Vec::new();
        let _: T = serde_ignored::deserialize(raw.clone(), |path| ignored.push(path.to_string()))
            .expect("the settings load");
        // `[nats]` flattens the topology settings into itself, and a flattened struct
        // drops unknown keys unseen: check those against the topology on its own.
        if let Some(Value::Object(nats)) = raw.get("nats") {
            let mut topology = nats.clone();
            topology.remove("url");
            let _: rns_nats::TopologySettings =
                serde_ignored::deserialize(Value::Object(topology), |path| {
                    ignored.push(format!("nats.{path}"))
                })
                .expect("the topology settings load");
        }
        loaded = Some((raw, ignored));
        Ok(())
    });
    loaded.expect("the jail ran")
}

/// Checks a service's environment against its settings; returns the port its health
/// endpoint listens on.
fn check_environment(
    binary: &str,
    listen_key: &str,
    environment: &BTreeMap<String, String>,
    origin: &str,
) -> u16 {
    let (raw, ignored) = match binary {
        "rns-gateway" => settings_from::<rns_gateway::Settings>(environment),
        "rns-dispatcher" => settings_from::<rns_dispatcher::Settings>(environment),
        "rns-carriers" => settings_from::<rns_carriers::Settings>(environment),
        "rns-analytics" => settings_from::<rns_analytics::Settings>(environment),
        other => panic!("unknown service {other}"),
    };
    // Every service reads the carrier catalogue's ids and channels; only the
    // carriers service reads the rest of each entry, which is checked there.
    let ignored: Vec<&String> = ignored
        .iter()
        .filter(|path| binary == "rns-carriers" || !path.starts_with("carriers."))
        .collect();
    assert!(
        ignored.is_empty(),
        "{origin}: {binary} does not read {ignored:?}"
    );
    let (section, key) = listen_key.split_once('.').expect("section.key");
    let listen = raw[section][key].as_str().unwrap_or_else(|| {
        panic!(
            "{origin}: {binary} needs RNS_{}",
            listen_key.to_uppercase().replace('.', "__")
        )
    });
    assert!(
        listen.starts_with("0.0.0.0:"),
        "{origin}: {binary} must listen on every interface in a container, not {listen}"
    );
    listen
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or_else(|| panic!("{origin}: {listen} has no port"))
}

#[test]
fn the_dockerfile_builds_every_binary_the_deployments_run() {
    let dockerfile = read("Dockerfile");
    for binary in [
        "rns-gateway",
        "rns-dispatcher",
        "rns-carriers",
        "rns-analytics",
        "rns-carrier-simulator",
    ] {
        assert!(
            dockerfile.contains(&format!("--bin {binary}")),
            "the Dockerfile does not build {binary}"
        );
        let manifests = ["gateway", "dispatcher", "carriers", "analytics"]
            .iter()
            .map(|crate_directory| read(&format!("{crate_directory}/Cargo.toml")))
            .collect::<String>();
        assert!(
            manifests.contains(&format!("name = \"{binary}\"")),
            "no crate builds a binary named {binary}"
        );
    }
    assert!(
        dockerfile.contains("USER 10001"),
        "the runtime image runs as a non-root user"
    );
}

#[test]
fn each_nomad_service_job_matches_what_its_service_reads_and_serves() {
    for (binary, file, _, listen_key) in SERVICES {
        let job = nomad_job(file);
        let jobs = labelled(&job["job"]);
        assert_eq!(jobs.len(), 1, "{file}: one job per file");
        let (_, job) = jobs[0];
        assert!(
            job["update"].is_object(),
            "{file}: an update stanza for rolling deploys"
        );
        for (group_name, group) in labelled(&job["group"]) {
            let origin = format!("{file} group {group_name}");
            assert!(group["count"].as_u64().unwrap_or(0) >= 1, "{origin}: count");
            let ports = &group["network"]["port"];
            let tasks = labelled(&group["task"]);
            assert_eq!(tasks.len(), 1, "{origin}: one task");
            let (_, task) = tasks[0];
            assert_eq!(task["config"]["image"], IMAGE, "{origin}: image");
            assert_eq!(task["config"]["command"], binary, "{origin}: command");
            assert!(
                duration(task["kill_timeout"].as_str().unwrap_or("0s")) > GRACE_PERIOD,
                "{origin}: kill_timeout must exceed the {GRACE_PERIOD:?} shutdown grace period"
            );
            assert!(
                task["resources"]["cpu"].is_number() && task["resources"]["memory"].is_number()
            );
            let env = environment(&task["env"]);
            let listen_port = check_environment(binary, listen_key, &env, &origin);
            if binary == "rns-carriers" {
                // Carriers post delivery receipts to a port of its own.
                let receipts_port = env
                    .get("RNS_CARRIER_WORKERS__RECEIPTS_LISTEN")
                    .and_then(|listen| listen.rsplit(':').next())
                    .and_then(|port| port.parse::<u64>().ok());
                assert_eq!(
                    ports["receipts"]["to"].as_u64(),
                    receipts_port,
                    "{origin}: the receipts port maps to where receipts are taken"
                );
            }
            let services = each(&group["service"]);
            assert!(
                !services.is_empty(),
                "{origin}: a service with a health check"
            );
            for service in services {
                let label = service["port"].as_str().expect("a service port label");
                assert_eq!(
                    ports[label]["to"].as_u64(),
                    Some(u64::from(listen_port)),
                    "{origin}: port {label} must map to where {binary} listens"
                );
                let checks = each(&service["check"]);
                assert!(!checks.is_empty(), "{origin}: a check");
                for check in checks {
                    assert_eq!(check["type"], "http", "{origin}");
                    assert_eq!(check["path"], READY_PATH, "{origin}: checks readiness");
                }
            }
        }
    }
}

#[test]
fn the_infrastructure_jobs_parse_and_the_nats_cluster_has_three_nodes_with_volumes() {
    let nats = nomad_job("nats.nomad.hcl");
    let (_, job) = labelled(&nats["job"])[0];
    let groups = labelled(&job["group"]);
    assert_eq!(groups.len(), 3, "three NATS nodes");
    for (name, group) in groups {
        assert_eq!(
            group["volume"]["data"]["type"], "host",
            "{name}: a persistent volume"
        );
        let (_, task) = labelled(&group["task"])[0];
        assert_eq!(task["env"]["NATS_SERVER_NAME"], name);
        let config = task["template"]["data"]
            .as_str()
            .expect("the server config");
        assert_eq!(config, read("nats/config/production.conf"));
        assert!(duration(task["kill_timeout"].as_str().unwrap_or("0s")) >= Duration::from_secs(30));
    }
    for file in ["redis.nomad.hcl", "clickhouse.nomad.hcl"] {
        let job = nomad_job(file);
        let (_, job) = labelled(&job["job"])[0];
        for (name, group) in labelled(&job["group"]) {
            assert_eq!(
                group["volume"]["data"]["type"], "host",
                "{file} {name}: data on a volume"
            );
        }
    }
    let grafana = nomad_job("grafana.nomad.hcl");
    let (_, job) = labelled(&grafana["job"])[0];
    let (_, group) = labelled(&job["group"])[0];
    let (_, task) = labelled(&group["task"])[0];
    let templates: Vec<&str> = each(&task["template"])
        .iter()
        .filter_map(|template| template["destination"].as_str())
        .collect();
    for dashboard in std::fs::read_dir(workspace().join("deploy/grafana/dashboards")).unwrap() {
        let name = dashboard.unwrap().file_name().into_string().unwrap();
        assert!(
            templates.contains(&format!("local/dashboards/{name}").as_str()),
            "grafana.nomad.hcl must provision {name}"
        );
    }
}

#[test]
fn compose_runs_the_same_services_with_what_they_read_and_serve() {
    let mut compose: serde_yaml::Value =
        serde_yaml::from_str(&read("compose.yaml")).expect("compose.yaml parses");
    compose.apply_merge().expect("merge keys resolve");
    let compose = serde_json::to_value(compose).expect("compose is JSON");
    let services = &compose["services"];
    for (binary, _, name, listen_key) in SERVICES {
        let service = &services[name];
        let origin = format!("compose.yaml service {name}");
        assert_eq!(service["image"], IMAGE, "{origin}: image");
        assert_eq!(service["command"][0], binary, "{origin}: command");
        let grace = duration(service["stop_grace_period"].as_str().unwrap_or("0s"));
        assert!(
            grace > GRACE_PERIOD,
            "{origin}: stop_grace_period must exceed {GRACE_PERIOD:?}"
        );
        let listen_port = check_environment(
            binary,
            listen_key,
            &environment(&service["environment"]),
            &origin,
        );
        let probe = service["healthcheck"]["test"]
            .as_array()
            .and_then(|test| test.last())
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert_eq!(
            probe,
            format!("http://127.0.0.1:{listen_port}{READY_PATH}"),
            "{origin}: the health check probes readiness where the service listens"
        );
        for published in each(&service["ports"]) {
            let container_port = published
                .as_str()
                .and_then(|ports| ports.rsplit(':').next());
            assert_eq!(
                container_port,
                Some(listen_port.to_string().as_str()),
                "{origin}: published port"
            );
        }
    }
    // The carrier endpoints point at simulators compose runs, on the ports they listen on.
    let carriers = &services["carriers"]["environment"]["RNS_CARRIERS"];
    for (name, service) in services.as_object().unwrap() {
        if let Some(carrier) = name.strip_prefix("simulator-") {
            let command = service["command"].as_array().unwrap();
            assert_eq!(command[0], "rns-carrier-simulator");
            let listen = command.last().and_then(Value::as_str).unwrap();
            let port = listen.rsplit(':').next().unwrap();
            let endpoint = format!("endpoint=\"http://{name}:{port}\"");
            assert!(
                carriers.as_str().unwrap_or_default().contains(&endpoint),
                "carrier {carrier} must be reached at {endpoint}"
            );
        }
    }
    for node in ["nats-1", "nats-2", "nats-3"] {
        let service = &services[node];
        assert_eq!(service["environment"]["NATS_SERVER_NAME"], node);
        let mounts: Vec<&str> = each(&service["volumes"])
            .iter()
            .filter_map(|mount| mount.as_str())
            .collect();
        assert!(mounts.contains(&"./nats/config/production.conf:/etc/nats/production.conf:ro"));
        assert!(
            mounts.contains(&format!("{node}:/data").as_str()),
            "{node}: a volume"
        );
    }
}
