//! The carriers' side of the chaos scenario, for the HTTP simulators and for SMSCs
//! over SMPP alike: how a carrier is put in trouble and brought back, and what the
//! carriers took and reported — the ground truth RNS's final states are checked
//! against.
//!
//! | trouble | HTTP simulator | SMSC |
//! |---|---|---|
//! | outage (KT) | `outage` (503 to everything) | binds refused, every session dropped |
//! | slow (SKT) | 3 s per submit | submits answered after 3 s (smpp34) |
//! | throttled (LG U+) | 30 submits/s, then 429 | half the submits answered `ESME_RTHROTTLED` |
//!
//! Receipts: over HTTP LG U+ alone reports delivery in receipts; over SMPP every SMSC
//! does. Either way they come a second late, and some are lost, duplicated, early
//! (node-smpp's SMSCs and the simulator) or say `undeliverable`. Over SMPP an SMSC may
//! also be killed and started again, losing what it had not reported.
use std::collections::{BTreeMap, HashMap, HashSet};

use rns_testkit::SmscImplementation;
use serde_json::{json, Value};

use crate::{System, CARRIERS, SMPP_CARRIERS};

/// The carrier that reports delivery in receipts when the carriers are simulators.
pub const ASYNCHRONOUS_CARRIER: &str = CARRIERS[2].0;

/// How a carrier is troubled for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    Outage,
    /// Slower than the test system's 2 s submit timeout: every submit goes unanswered.
    Slow,
    Throttled,
}

/// The carriers of a chaos run.
pub struct CarrierSide {
    smpp: bool,
    /// Each carrier's knobs when it is not in trouble.
    usual: HashMap<&'static str, Value>,
    /// What SMSCs took before they were restarted (a restart loses their records).
    taken_before_restarts: Vec<Value>,
}

/// What the carriers took and reported, by RNS message id.
#[derive(Debug, Default)]
pub struct GroundTruth {
    /// How many times a carrier took each message (more than once: a handset got it
    /// twice).
    pub taken: BTreeMap<String, usize>,
    /// Messages a carrier delivered and reported (synchronously, or in a receipt it
    /// sent): RNS must record them delivered.
    pub delivered: HashSet<String>,
    /// Per message a carrier reported in a receipt: the final state the receipt
    /// says (`unknown` when it was lost), and the carrier's record for a diagnosis.
    pub receipts: Vec<(String, &'static str, Value)>,
    /// Whether `unknown` is true for any message, whatever the carrier recorded: over
    /// SMPP the answer to a submit can go with a dropped session, and the carrier's id
    /// for the message (that its receipt names) with it.
    pub unknown_always_possible: bool,
    pub throttled: u64,
    /// Repeated submits a simulator recognised by their client reference.
    pub resubmissions_absorbed: u64,
    /// Receipts sent (each copy of a duplicate counts), and those never sent.
    pub receipts_sent: u64,
    pub receipts_lost: u64,
}

impl CarrierSide {
    /// Sets every carrier's usual knobs: receipts as the scenario has them.
    pub async fn prepare(system: &System, smpp: bool) -> Self {
        let mut usual = HashMap::new();
        if smpp {
            for (carrier, implementation) in SMPP_CARRIERS {
                // Every trouble's knob at rest too: an SMSC keeps a knob it is not given.
                let mut knobs = json!({
                    "receipt_delay_milliseconds": 1_000,
                    "loss_rate": 0.005,
                    "duplicate_rate": 0.05,
                    "undeliverable_rate": 0.01,
                    "answer_delay_milliseconds": 0,
                    "throttle_rate": 0.0,
                });
                if implementation == SmscImplementation::NodeSmpp {
                    knobs["early_rate"] = json!(0.05);
                    knobs["refuse_binds"] = json!(false);
                }
                usual.insert(carrier, knobs);
            }
        } else {
            let asynchronous = system.receipts_knobs(
                ASYNCHRONOUS_CARRIER,
                json!({
                    "delay_milliseconds": 1_000,
                    "loss_rate": 0.005,
                    "duplicate_rate": 0.05,
                    "early_rate": 0.05,
                    "undeliverable_rate": 0.01,
                }),
            );
            usual.insert(ASYNCHRONOUS_CARRIER, asynchronous);
        }
        let side = Self {
            smpp,
            usual,
            taken_before_restarts: Vec::new(),
        };
        for carrier in side.usual.keys() {
            side.restore(system, carrier).await;
        }
        side
    }

    fn usual(&self, carrier: &str) -> Value {
        self.usual
            .get(carrier)
            .cloned()
            .unwrap_or_else(|| json!({}))
    }

    async fn set(&self, system: &System, carrier: &str, knobs: Value) {
        if self.smpp {
            system.smsc(carrier).set_knobs(&knobs.to_string()).await;
        } else {
            system.set_knobs(carrier, knobs).await;
        }
    }

    /// Puts `carrier` in `trouble` until [`Self::restore`].
    pub async fn trouble(&self, system: &System, carrier: &str, trouble: Trouble) {
        let mut knobs = self.usual(carrier);
        match (self.smpp, trouble) {
            (false, Trouble::Outage) => knobs["outage"] = json!(true),
            (false, Trouble::Slow) => knobs["latency_milliseconds"] = json!(3_000),
            (false, Trouble::Throttled) => knobs["tps_cap"] = json!(30),
            (true, Trouble::Outage) => knobs["refuse_binds"] = json!(true),
            (true, Trouble::Slow) => knobs["answer_delay_milliseconds"] = json!(3_000),
            (true, Trouble::Throttled) => knobs["throttle_rate"] = json!(0.5),
        }
        self.set(system, carrier, knobs).await;
        if self.smpp && trouble == Trouble::Outage {
            system.smsc(carrier).drop_sessions().await;
        }
    }

    /// Gives `carrier` its usual knobs back.
    pub async fn restore(&self, system: &System, carrier: &str) {
        self.set(system, carrier, self.usual(carrier)).await;
    }

    /// The SMSCs that can be killed and started again (none with simulators).
    pub fn restartable(&self) -> Vec<&'static str> {
        if self.smpp {
            SMPP_CARRIERS.iter().map(|(carrier, _)| *carrier).collect()
        } else {
            Vec::new()
        }
    }

    /// Kills `carrier`'s SMSC and starts it again with its usual knobs, keeping what
    /// it took first.
    pub async fn restart(&mut self, system: &mut System, carrier: &str) {
        self.taken_before_restarts
            .extend(smsc_records(system, carrier).await);
        system.smsc_mut(carrier).restart().await;
        self.restore(system, carrier).await;
    }

    /// What the carriers took and reported. Over SMPP the SMSCs know destinations,
    /// not message ids: each destination is one message's (the scenario never sends
    /// two messages to one number), found in ClickHouse.
    pub async fn ground_truth(&self, system: &System) -> GroundTruth {
        if self.smpp {
            self.smsc_truth(system).await
        } else {
            simulator_truth(system).await
        }
    }

    async fn smsc_truth(&self, system: &System) -> GroundTruth {
        let mut records = self.taken_before_restarts.clone();
        let mut truth = GroundTruth {
            unknown_always_possible: true,
            ..GroundTruth::default()
        };
        for (carrier, _) in SMPP_CARRIERS {
            records.extend(smsc_records(system, carrier).await);
            let counts: Value = serde_json::from_str(&system.smsc(carrier).counts().await)
                .expect("SMSC counts are JSON");
            eprintln!("chaos: {carrier}'s SMSC (since its last start): {counts}");
            let counted = |name: &str| counts[name].as_u64().unwrap_or(0);
            truth.throttled += counted("throttled");
            truth.receipts_sent += counted("receipts_sent");
            truth.receipts_lost += counted("receipts_lost");
        }
        let metrics = system.metrics(crate::Service::Carriers).await;
        let receipts_taken: Vec<&str> = metrics
            .lines()
            .filter(|line| line.starts_with("rns_receipts_total"))
            .collect();
        eprintln!(
            "chaos: receipts RNS took (since the carriers service's last start):\n{}",
            receipts_taken.join("\n")
        );
        let by_number = messages_by_number(system).await;
        for record in records {
            let destination = record["destination"].as_str().unwrap_or_default();
            let Some(message) = by_number.get(destination) else {
                eprintln!("chaos: an SMSC took a message for {destination}, which RNS never sent: {record}");
                truth
                    .taken
                    .insert(format!("unknown destination {destination}"), 2);
                continue;
            };
            *truth.taken.entry(message.clone()).or_default() += 1;
            let lost = record["receipt_lost"].as_bool().unwrap_or(false);
            let said = match (lost, record["state"].as_str()) {
                (true, _) => "unknown",
                (false, Some("DELIVRD")) => "delivered",
                (false, _) => "undeliverable",
            };
            if said == "delivered" {
                truth.delivered.insert(message.clone());
            }
            truth.receipts.push((message.clone(), said, record));
        }
        truth
    }
}

async fn simulator_truth(system: &System) -> GroundTruth {
    let mut truth = GroundTruth::default();
    for (carrier, _) in CARRIERS {
        let counts = system.simulator_counts(carrier).await;
        truth.throttled += counts["rate_limited"].as_u64().unwrap_or(0);
        truth.resubmissions_absorbed += counts["duplicates"].as_u64().unwrap_or(0);
        for id in system.simulator_delivered(carrier).await {
            *truth.taken.entry(id.clone()).or_insert(0) += 1;
            truth.delivered.insert(id);
        }
    }
    for fate in system.simulator_receipts(ASYNCHRONOUS_CARRIER).await {
        let id = fate["client_reference"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let lost = fate["lost"].as_bool().unwrap_or(false);
        let said = match (lost, fate["state"].as_str()) {
            (true, _) => "unknown",
            (false, Some("delivered")) => "delivered",
            (false, Some("undeliverable")) => "undeliverable",
            (false, Some("expired")) => "expired",
            (false, _) => "?",
        };
        if lost {
            // Delivered as far as the carrier knows, but never reported: `unknown`
            // is the truth RNS can tell.
            truth.delivered.remove(&id);
        }
        truth.receipts.push((id, said, fate));
    }
    let counts = system.simulator_counts(ASYNCHRONOUS_CARRIER).await;
    truth.receipts_sent = counts["receipts_posted"].as_u64().unwrap_or(0);
    truth.receipts_lost = counts["receipts_lost"].as_u64().unwrap_or(0);
    truth
}

/// Every part `carrier`'s SMSC took.
async fn smsc_records(system: &System, carrier: &str) -> Vec<Value> {
    let mut records: Vec<Value> = serde_json::from_str(&system.smsc(carrier).messages().await)
        .expect("SMSC records are JSON");
    for record in &mut records {
        // What a diagnosis needs to find the message's correlation.
        record["carrier"] = json!(carrier);
        record["carrier_reference"] = record["id"].clone();
    }
    records
}

/// Every message RNS accepted, by its recipient's number.
async fn messages_by_number(system: &System) -> HashMap<String, String> {
    let rows = system
        .clickhouse
        .query("SELECT DISTINCT to_number, message_id FROM rns.messages FORMAT TabSeparated")
        .await;
    rows.lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(number, message)| (number.to_owned(), message.to_owned()))
        .collect()
}
