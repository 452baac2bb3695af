//! Every Grafana panel query ships working: each ClickHouse panel of
//! `deploy/grafana/dashboards` has its macros expanded as the Altinity ClickHouse
//! plugin expands them and runs against a real ClickHouse holding a little traffic,
//! and must answer rows; each Prometheus panel may only name metrics the services
//! define.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rns_service::ClickHouseSettings;
use rns_testkit::{on_every_clickhouse_release, ClickHouseRelease, ClickHouseServer};
use serde_json::Value;

const CLICKHOUSE_PLUGIN: &str = "vertamedia-clickhouse-datasource";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the analytics crate is in the workspace")
        .to_path_buf()
}

fn dashboards() -> Vec<(String, Value)> {
    let directory = workspace().join("deploy/grafana/dashboards");
    let mut dashboards: Vec<(String, Value)> = std::fs::read_dir(&directory)
        .expect("deploy/grafana/dashboards exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let dashboard = serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("{name} is not JSON: {error}"));
            (name, dashboard)
        })
        .collect();
    dashboards.sort_by(|left, right| left.0.cmp(&right.0));
    assert!(dashboards.len() >= 2, "the traffic and services dashboards");
    dashboards
}

/// (dashboard, panel title, plugin type, query) of every panel target.
fn queries() -> Vec<(String, String, String, String)> {
    let mut queries = Vec::new();
    for (name, dashboard) in dashboards() {
        for panel in dashboard["panels"].as_array().expect("panels") {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            for target in panel["targets"].as_array().expect("targets") {
                let plugin = target["datasource"]["type"]
                    .as_str()
                    .or(panel["datasource"]["type"].as_str())
                    .expect("every target names its data source")
                    .to_owned();
                let query = target["query"]
                    .as_str()
                    .or(target["expr"].as_str())
                    .unwrap_or_else(|| panic!("{name} / {title} has no query"))
                    .to_owned();
                queries.push((name.clone(), title.clone(), plugin, query));
            }
        }
    }
    queries
}

/// The Altinity plugin's expansion of the macros the dashboards use.
fn expand(query: &str, from: u64, to: u64, interval: u64) -> String {
    let mut expanded = String::new();
    let mut rest = query;
    while let Some(at) = rest.find("$timeFilterByColumn(") {
        expanded.push_str(&rest[..at]);
        let after = &rest[at + "$timeFilterByColumn(".len()..];
        let close = after.find(')').expect("a closed macro");
        let column = &after[..close];
        expanded.push_str(&format!(
            "{column} >= toDateTime({from}) AND {column} <= toDateTime({to})"
        ));
        rest = &after[close + 1..];
    }
    expanded.push_str(rest);
    expanded
        .replace("$interval", &interval.to_string())
        .replace("$from", &from.to_string())
        .replace("$to", &to.to_string())
}

/// A little traffic: one message delivered by kt, one that failed over from skt.
async fn traffic(clickhouse: &ClickHouseServer, now: u64) {
    let row = |message: &str,
               offset: u64,
               ordinal: u64,
               kind: &str,
               status: &str,
               carrier: &str,
               hop: u8,
               detail: &str,
               spent: u8| {
        let at_ms = now * 1_000 + offset;
        format!(
            "('acme', 'r1', '{message}', toDateTime({}), {at_ms}, {ordinal}, '{kind}', '{status}', '{carrier}', {hop}, 1, '{detail}', {}, 1, {spent})",
            at_ms / 1_000,
            now * 1_000 - 2_000
        )
    };
    let rows = [
        row("r1-0", 0, 1_000_001, "routed", "queued", "kt", 1, "", 0),
        row(
            "r1-0",
            100,
            1_000_013,
            "submitted",
            "submitted",
            "kt",
            1,
            "",
            0,
        ),
        row(
            "r1-0",
            200,
            4_294_967_295,
            "delivered",
            "delivered",
            "kt",
            1,
            "",
            1,
        ),
        row("r1-1", 0, 1_000_001, "routed", "queued", "skt", 1, "", 0),
        row(
            "r1-1",
            100,
            1_000_012,
            "attempt_failed",
            "queued",
            "skt",
            1,
            "skt: 503 outage",
            0,
        ),
        row(
            "r1-1",
            150,
            1_000_016,
            "failed_over",
            "queued",
            "skt",
            1,
            "skt: 503 outage; moving to kt",
            0,
        ),
        row("r1-1", 200, 2_000_001, "routed", "queued", "kt", 2, "", 0),
        row(
            "r1-1",
            300,
            4_294_967_295,
            "delivered",
            "delivered",
            "kt",
            2,
            "",
            1,
        ),
    ];
    clickhouse
        .query(&format!(
            "INSERT INTO rns.events (customer_id, request_id, message_id, at, at_ms, ordinal, kind, status, carrier, hop, attempt, detail, accepted_at_ms, points_reserved, points_spent) VALUES {}",
            rows.join(", ")
        ))
        .await;
    clickhouse
        .query(&format!(
            "INSERT INTO rns.routing_targets (customer_id, channel, carrier, weight, share, revision, updated_at) VALUES \
             ('acme', 'sms', 'kt', 1, 0.33, 1, toDateTime({now})), ('acme', 'sms', 'kt', 50, 0.5, 2, toDateTime({now})), \
             ('acme', 'sms', 'skt', 30, 0.3, 2, toDateTime({now}))"
        ))
        .await;
}

async fn every_clickhouse_panel_query_runs_and_answers_rows(release: ClickHouseRelease) {
    let clickhouse = ClickHouseServer::start_release(release).await;
    rns_analytics::prepare(&ClickHouseSettings {
        url: clickhouse.url(),
        ..Default::default()
    })
    .await
    .unwrap();
    let now = rns_types::time::now_milliseconds() / 1_000;
    traffic(&clickhouse, now).await;

    let mut checked = 0;
    for (dashboard, title, plugin, query) in queries() {
        if plugin != CLICKHOUSE_PLUGIN {
            continue;
        }
        let expanded = expand(&query, now - 6 * 3_600, now + 60, 60);
        assert!(
            !expanded.contains('$'),
            "{dashboard} / {title}: a macro the test does not know: {expanded}"
        );
        let answer = clickhouse.query(&format!("{expanded} FORMAT JSON")).await;
        let answer: Value = serde_json::from_str(&answer).unwrap();
        let rows = answer["data"].as_array().cloned().unwrap_or_default();
        assert!(
            !rows.is_empty(),
            "{dashboard} / {title} answered no rows: {expanded}"
        );
        if title.starts_with("Split by carrier") {
            let kt = rows
                .iter()
                .find(|row| row["carrier"] == "kt")
                .expect("kt's split");
            assert_eq!(kt["target_share"], serde_json::json!(0.5), "{rows:?}");
            assert_eq!(kt["actual_share"], serde_json::json!(0.5), "{rows:?}");
        }
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} ClickHouse panels");
}

on_every_clickhouse_release!(every_clickhouse_panel_query_runs_and_answers_rows);

#[test]
fn every_prometheus_panel_names_metrics_the_services_define() {
    let mut sources = String::new();
    for crate_directory in [
        "gateway",
        "dispatcher",
        "carriers",
        "analytics",
        "points",
        "service",
    ] {
        let mut stack = vec![workspace().join(crate_directory).join("src")];
        while let Some(directory) = stack.pop() {
            for entry in std::fs::read_dir(directory).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|extension| extension == "rs") {
                    sources.push_str(&std::fs::read_to_string(path).unwrap());
                }
            }
        }
    }
    let mut metrics = BTreeSet::new();
    for (dashboard, title, plugin, expression) in queries() {
        if plugin != "prometheus" {
            continue;
        }
        for word in expression
            .split(|character: char| !(character.is_ascii_alphanumeric() || character == '_'))
        {
            if !word.starts_with("rns_") {
                continue;
            }
            let metric = word.trim_end_matches("_bucket");
            assert!(
                sources.contains(&format!("\"{metric}\"")),
                "{dashboard} / {title} uses {metric}, which no service defines"
            );
            metrics.insert(metric.to_owned());
        }
    }
    assert!(metrics.len() >= 10, "{metrics:?}");
}
