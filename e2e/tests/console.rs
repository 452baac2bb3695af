//! The web console in a real browser, against the real binaries: Debian's Chromium
//! driven by playwright-core runs `console/tests/browser.mjs` — sign up, prove the
//! phone with the texted code, the home page, a mobile sender number verified by its
//! code, an API key shown once, an invitation link, the operator's top-up on the
//! points page, contacts imported from CSV into a group (progress bar, the bad row
//! reported), a first message to the group with each name filled in (previewed, then
//! its results arriving, delivered, with a timeline), the points it spent, a new ratio
//! previewed and saved, a recurring send scheduled and cancelled, a confidential code
//! sent (on the handset, shown `[withheld]` in the results), a template, a
//! blocklisted number, the webhook's secret shown once, the operator's pages entered
//! with the operator key (a top-up, the queues, the carriers), English, sign out,
//! sign in by keyboard, and the invited person joining as a member; a screenshot and
//! an axe-core check of every page. Screenshots are kept in
//! `target/console-screenshots/`.
use std::path::PathBuf;
use std::process::Command;

use rns_e2e::System;

fn console_directory() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../console")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_signs_up_verifies_their_phone_and_finds_home_in_a_real_browser() {
    rns_testkit::require_program("node", "apt-get install nodejs npm");
    rns_testkit::require_program("/usr/bin/chromium", "apt-get install chromium");
    let console = console_directory();
    assert!(
        console.join("node_modules/playwright-core").is_dir()
            && console.join("dist/index.html").is_file(),
        "the console is not built: run `npm ci && npm run build` in console/ (./scripts/test does)"
    );
    let system = System::start().await;
    let screenshots =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    let url = system.gateway_url();
    let simulators = system.simulator_urls().join(",");
    let run = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("tests/browser.mjs")
            .current_dir(console_directory())
            .env("RNS_URL", url)
            .env("SIMULATOR_URLS", simulators)
            .env("ADMIN_KEY", rns_e2e::ADMIN_KEY)
            .env("SCREENSHOTS", screenshots)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "the browser test failed:\n{said}");
    for page in [
        "01-sign-in",
        "02-sign-up",
        "03-verify-phone",
        "04-home",
        "05-home-english",
        "10-contacts",
        "11-send",
        "12-results",
        "13-routing",
        "14-schedules",
        "15-templates",
        "16-blocklist",
        "17-webhook",
        "18-operator-customers",
        "19-operator-queues",
        "20-operator-carriers",
    ] {
        assert!(
            said.contains(&format!("ok: {page}")),
            "{page} was not examined:\n{said}"
        );
    }
    assert!(said.contains("keyboard alone"), "{said}");
    assert!(said.contains("an invited member joined"), "{said}");
    assert!(said.contains("the points moved by the send"), "{said}");
    assert!(said.contains("scheduled and cancelled"), "{said}");
    assert!(
        said.contains("the operator topped the company up"),
        "{said}"
    );
}
