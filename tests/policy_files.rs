//! The policy files shipped in the repository parse.

use std::path::Path;

use pgm::partition::policy;

#[test]
fn the_reference_policy_parses_with_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/partman.reference.toml");
    let parsed = policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\n[lint]\n"));
    pgm::lint::config::parse(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    let table = &parsed.tables[0];
    assert_eq!(table.qualified_name(), "public.events");
    assert_eq!(table.indexes[0].include, ["event_type"]);
    assert_eq!(
        table.indexes[0].predicate.as_deref(),
        Some("user_id IS NOT NULL")
    );
}

#[test]
fn the_bundled_policy_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("partman.toml");
    let parsed = policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = parsed.tables.iter().map(|t| t.qualified_name()).collect();
    assert_eq!(
        names,
        ["public.events", "public.audit_log", "public.products"]
    );
}
