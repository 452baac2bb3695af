//! The gateway's shape, kept by a check: route modules are thin and never reach into
//! one another — what two routes share lives outside `routes/` (the send use case in
//! `sending`, stores in their own modules).
use std::path::Path;

#[test]
fn no_route_module_uses_another() {
    let routes = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes");
    let mut offences = Vec::new();
    let mut read = 0;
    for entry in std::fs::read_dir(&routes).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "mod.rs" {
            continue;
        }
        read += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        for (number, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") || code == "use super::*;" {
                continue;
            }
            if code.contains("routes::") || code.contains("super::") {
                offences.push(format!("{name}:{}: {code}", number + 1));
            }
        }
    }
    assert!(read >= 10, "the route modules were read");
    assert!(
        offences.is_empty(),
        "route modules using another route module:\n{}",
        offences.join("\n")
    );
}
