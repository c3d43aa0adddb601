//! `pgm partitions convert` on a real PostgreSQL: the check refuses what
//! cannot be converted before changing anything; prepare, backfill and
//! replay make a partitioned copy that equals the table under concurrent
//! writes, and a run killed anywhere is finished by the next.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use support::{Project, TestDb, column, outcome};

const AT: &str = "2026-11-22T10:00:00Z";

const POLICY: &str = r#"
[defaults]
lock_timeout = "200ms"
lock_retries = 3

[[table]]
name = "public.orders"
key = "created_at"
interval = "monthly"
premake = 2
"#;

/// `orders`: 10 000 rows over 14 months before AT, a serial id, a primary
/// key including the key, a CHECK, a comment and a grant.
const ORDERS: &str = "\
    CREATE ROLE pgm_convert_reader NOLOGIN; \
    CREATE TABLE orders (id bigserial, created_at timestamptz NOT NULL, customer int NOT NULL, \
      amount numeric(10,2) NOT NULL DEFAULT 0 CHECK (amount >= 0), note text, \
      PRIMARY KEY (id, created_at)); \
    CREATE INDEX orders_customer_idx ON orders (customer); \
    COMMENT ON TABLE orders IS 'every order'; \
    GRANT SELECT ON orders TO pgm_convert_reader; \
    INSERT INTO orders (created_at, customer, amount, note) \
      SELECT timestamptz '2025-09-01' + g * interval '1 hour', g % 97, g % 1000, 'n' || g \
      FROM generate_series(0, 9999) g; \
    ANALYZE orders;";

fn setup(db: &TestDb, policy: &str, schema: &str) -> Project {
    let project = Project::new();
    std::fs::write(project.path().join("partman.toml"), policy).unwrap();
    let mut client = db.connect();
    // A role may exist already from another test of the same server.
    let _ = client.batch_execute("DROP ROLE IF EXISTS pgm_convert_reader");
    client
        .batch_execute(&schema.replace(
            "CREATE ROLE pgm_convert_reader NOLOGIN;",
            "DO $$ BEGIN CREATE ROLE pgm_convert_reader NOLOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;",
        ))
        .unwrap();
    project
}

fn convert(project: &Project, db: &TestDb, args: &[&str]) -> (Option<i32>, String, String) {
    let output = project
        .pgm(db)
        .args(["partitions", "convert", "public.orders", "--at", AT])
        .args(args)
        .output()
        .unwrap();
    outcome(&output)
}

/// Every row of a table, in primary key order, as text.
fn content(db: &TestDb, table: &str) -> Vec<String> {
    column(
        &mut db.connect(),
        &format!("SELECT t::text FROM {table} t ORDER BY id, created_at"),
    )
}

/// Relations in the public schema, to show a refusal changed nothing.
fn relations(db: &TestDb) -> Vec<String> {
    column(
        &mut db.connect(),
        "SELECT c.relname || ' ' || c.relkind::text FROM pg_class c \
         WHERE c.relnamespace = 'public'::regnamespace ORDER BY 1",
    )
}

#[test]
fn converts_through_verify_with_partitions_from_the_oldest_row() {
    let db = TestDb::new();
    let project = setup(&db, POLICY, ORDERS);
    let (code, stdout, stderr) = convert(&project, &db, &["--until", "verify"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("check: public.orders can be converted"),
        "{stdout}"
    );
    assert_eq!(content(&db, "orders_partitioned"), content(&db, "orders"));
    let partitions = column(
        &mut db.connect(),
        "SELECT c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'orders_partitioned'::regclass ORDER BY 1",
    );
    // 2025-09 (the oldest row) through 2026-11 (now) and premake 2.
    assert_eq!(partitions.len(), 17, "{partitions:?}");
    assert_eq!(
        partitions[0],
        "orders_p2025_09 FOR VALUES FROM ('2025-09-01 00:00:00+00') TO ('2025-10-01 00:00:00+00')"
    );
    assert!(
        partitions[16].starts_with("orders_p2027_01 "),
        "{partitions:?}"
    );
}

/// A refusal: exit 64, the message, and nothing changed in the database.
fn assert_refused(schema: &str, expected: &[&str]) {
    let db = TestDb::new();
    let project = setup(&db, POLICY, schema);
    let before = relations(&db);
    for args in [&["--dry-run"][..], &[]] {
        let (code, stdout, stderr) = convert(&project, &db, args);
        assert_eq!(code, Some(64), "{stdout}\n{stderr}");
        assert!(
            stderr.contains("public.orders cannot be converted; nothing was changed:"),
            "{stderr}"
        );
        for text in expected {
            assert!(stderr.contains(text), "missing {text:?} in:\n{stderr}");
        }
    }
    assert_eq!(relations(&db), before);
}

#[test]
fn a_primary_key_without_the_partition_key_is_refused_with_what_it_should_become() {
    assert_refused(
        &ORDERS.replace(
            "PRIMARY KEY (id, created_at)",
            "PRIMARY KEY (id), UNIQUE (note)",
        ),
        &[
            "PRIMARY KEY orders_pkey of public.orders is (id), without the key created_at: a partitioned \
             table's unique constraints must include it; make it PRIMARY KEY (id, created_at)",
            "UNIQUE orders_note_key of public.orders is (note), without the key created_at: a partitioned \
             table's unique constraints must include it; make it UNIQUE (note, created_at)",
        ],
    );
}

#[test]
fn a_table_without_a_primary_key_is_refused() {
    assert_refused(
        &ORDERS.replace(", PRIMARY KEY (id, created_at)", ""),
        &[
            "public.orders has no primary key: the change capture logs each written row by its primary key; \
           add PRIMARY KEY (…, created_at) first",
        ],
    );
}

#[test]
fn a_key_holding_nulls_is_refused_with_their_count() {
    assert_refused(
        &format!(
            "{} ALTER TABLE orders DROP CONSTRAINT orders_pkey, ALTER COLUMN created_at DROP NOT NULL, \
             ADD PRIMARY KEY (id); UPDATE orders SET created_at = NULL WHERE id <= 3;",
            ORDERS
        ),
        &[
            "public.orders.created_at may hold NULL (3 row(s) do): a range-partitioned table has no place \
             for a NULL key",
            "PRIMARY KEY orders_pkey of public.orders is (id)",
        ],
    );
}

#[test]
fn dependents_that_cannot_be_carried_over_are_refused_in_a_list() {
    assert_refused(
        &format!(
            "{ORDERS} CREATE MATERIALIZED VIEW order_totals AS SELECT customer, sum(amount) FROM orders GROUP BY 1; \
             CREATE PUBLICATION orders_out FOR TABLE orders; \
             CREATE STATISTICS orders_stats (dependencies) ON customer, amount FROM orders; \
             CREATE PUBLICATION everything FOR ALL TABLES; \
             CREATE PUBLICATION rooted FOR ALL TABLES WITH (publish_via_partition_root = true);"
        ),
        &[
            "materialized view public.order_totals cannot be carried over to the partitioned table: a materialized \
             view cannot be pointed at another table without being rebuilt",
            "publication of table orders in publication orders_out cannot be carried over",
            "statistics object orders_stats cannot be carried over",
            "publication everything (FOR ALL TABLES) cannot be carried over to the partitioned table: after the \
             swap it would publish the partitions under their own names, which its subscribers do not have: \
             ALTER PUBLICATION … SET (publish_via_partition_root = true) first",
        ],
    );
}

/// A publication of every table that publishes partitions as their root
/// goes on publishing the table's changes under its name: nothing to do.
#[test]
fn a_publication_of_every_table_via_the_partition_root_does_not_stop_the_conversion() {
    let db = TestDb::new();
    let project = setup(
        &db,
        POLICY,
        &format!(
            "{ORDERS} CREATE PUBLICATION rooted FOR ALL TABLES WITH (publish_via_partition_root = true);"
        ),
    );
    let (code, stdout, stderr) = convert(&project, &db, &["--until", "check"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(!stdout.contains("rooted"), "{stdout}");
}

#[test]
fn a_key_column_that_does_not_exist_is_refused_where_the_policy_names_it() {
    assert_refused(
        &ORDERS.replace("created_at", "created"),
        &["partman.toml:8:7: key = \"created_at\", but public.orders has no column created_at"],
    );
}

#[test]
fn an_unsupported_key_type_and_a_missing_table_are_refused() {
    assert_refused(
        &format!(
            "{} ALTER TABLE orders ADD COLUMN region text NOT NULL DEFAULT 'eu', DROP CONSTRAINT orders_pkey, \
             ADD PRIMARY KEY (id, region);",
            ORDERS
        )
        .replace("'eu'", "'eu'"),
        &[],
    );
    let db = TestDb::new();
    let project = setup(
        &db,
        &POLICY.replace("created_at", "region"),
        "CREATE TABLE orders (id int PRIMARY KEY, region text NOT NULL)",
    );
    let (code, _, stderr) = convert(&project, &db, &[]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("public.orders.region is of type text: pgm partitions timestamptz"),
        "{stderr}"
    );
    let project = setup(&TestDb::new(), POLICY, "SELECT 1");
    let (code, _, stderr) = convert(&project, &db, &["--until", "check"]);
    assert_eq!(code, Some(64), "{stderr}");
}

#[test]
fn a_table_not_in_the_policy_is_a_usage_error() {
    let db = TestDb::new();
    let project = setup(&db, POLICY, ORDERS);
    let output = project
        .pgm(&db)
        .args(["partitions", "convert", "public.order"])
        .output()
        .unwrap();
    let (code, _, stderr) = outcome(&output);
    assert_eq!(code, Some(64));
    assert!(
        stderr.contains("public.order is not in partman.toml (did you mean public.orders?)"),
        "{stderr}"
    );
}

#[test]
fn the_check_lists_what_is_carried_over_and_how() {
    let db = TestDb::new();
    let schema = format!(
        "{ORDERS} CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 500; \
         CREATE TABLE refunds (id int PRIMARY KEY, order_id bigint, order_created_at timestamptz, \
           FOREIGN KEY (order_id, order_created_at) REFERENCES orders); \
         CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$; \
         CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch(); \
         ALTER TABLE orders ENABLE ROW LEVEL SECURITY; \
         CREATE POLICY orders_mine ON orders USING (customer > 0); \
         GRANT UPDATE (note) ON orders TO pgm_convert_reader; \
         ALTER TABLE orders SET (fillfactor = 70); ALTER TABLE orders ALTER COLUMN customer SET STATISTICS 300;"
    );
    let project = setup(&db, POLICY, &schema);
    let before = relations(&db);
    let (code, stdout, stderr) = convert(&project, &db, &["--until", "check"]);
    assert_eq!(code, Some(0), "{stderr}");
    for line in [
        "  view public.big_orders — at the swap: recreated from its definition in the swap's transaction",
        "  constraint refunds_order_id_order_created_at_fkey on table refunds — at the swap: dropped and added \
         again NOT VALID against the new table in the swap's transaction, validated after it",
        "  trigger orders_touch on table orders — at the swap: created on the new table at the swap",
        "  policy orders_mine on table orders — at the swap: created on the new table at the swap",
        "  sequence public.orders_id_seq — at the swap: owned by the new table's column",
        "  row level security — at the swap",
        "  grants (SELECT to pgm_convert_reader, UPDATE (note) to pgm_convert_reader) — at the prepare: granted \
         again on the new table",
        "  storage parameters (fillfactor=70) — at the prepare: set on each partition the prepare creates",
        "  statistics targets (customer 300) — at the prepare: set on the new table's columns and its partitions",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert_eq!(relations(&db), before, "the check changes nothing");
}

/// Random writes to `orders` and the same writes to `orders_twin`, one
/// transaction each: inserts, updates of other columns and of the key, and
/// deletes, until `stop`.
fn writer(db: &TestDb, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let mut client = db.connect();
    std::thread::spawn(move || {
        let mut writes = 0;
        while !stop.load(Ordering::Relaxed) {
            let id = i64::from(fastrand::u32(1..12_000));
            // Within the partitions made for the table's rows.
            let moved = format!(
                "timestamptz '2025-09-01' + interval '{} hours'",
                fastrand::u32(0..10_000)
            );
            let sql = match fastrand::u8(0..4) {
                0 => format!(
                    "WITH i AS (INSERT INTO orders (created_at, customer, amount, note) \
                     VALUES (timestamptz '2025-09-01' + {id} * interval '37 minutes', {id} % 97, 1, 'w') RETURNING *) \
                     INSERT INTO orders_twin SELECT * FROM i"
                ),
                1 => format!(
                    "UPDATE orders SET amount = amount + 1, note = note || 'u' WHERE id = {id}; \
                     UPDATE orders_twin SET amount = amount + 1, note = note || 'u' WHERE id = {id}"
                ),
                2 => format!(
                    "UPDATE orders SET created_at = {moved} WHERE id = {id}; \
                     UPDATE orders_twin SET created_at = {moved} WHERE id = {id}"
                ),
                _ => format!(
                    "DELETE FROM orders WHERE id = {id}; DELETE FROM orders_twin WHERE id = {id}"
                ),
            };
            client
                .batch_execute(&format!("BEGIN; {sql}; COMMIT"))
                .expect("a write");
            writes += 1;
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        writes
    })
}

const TWIN: &str = "CREATE TABLE orders_twin AS SELECT * FROM orders; ALTER TABLE orders_twin ADD PRIMARY KEY (id, created_at);";

#[test]
fn writes_during_the_whole_run_all_reach_the_partitioned_table() {
    let db = TestDb::new();
    let project = setup(&db, POLICY, &format!("{ORDERS} {TWIN}"));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = writer(&db, Arc::clone(&stop));
    let (code, stdout, stderr) =
        convert(&project, &db, &["--batch-size", "200", "--pause", "10ms"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "swap: public.orders is partitioned; the old table is kept as orders_unpartitioned"
        ),
        "{stdout}"
    );
    // The writer goes on against the partitioned table for a while.
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > 0);
    assert_eq!(
        column(
            &mut db.connect(),
            "SELECT relkind::text FROM pg_class WHERE oid = 'orders'::regclass"
        ),
        ["p"]
    );
    assert_eq!(content(&db, "orders"), content(&db, "orders_twin"));
}

/// A killed run's server session, which holds the table's advisory lock,
/// ends when the server notices its client is gone (within a second): the
/// next run would otherwise find the lock held and do nothing.
fn wait_until_killed_runs_are_gone(db: &TestDb) {
    assert!(support::wait_for(
        &mut db.connect(),
        "SELECT NOT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'pgm')",
        30
    ));
}

#[test]
fn killed_anywhere_with_writers_the_next_runs_converge() {
    let db = TestDb::new();
    let project = setup(&db, POLICY, &format!("{ORDERS} {TWIN}"));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = writer(&db, Arc::clone(&stop));
    let mut kills = 0;
    for _ in 0..40 {
        let mut child = project.spawn(
            &db,
            &[
                "partitions",
                "convert",
                "public.orders",
                "--at",
                AT,
                "--batch-size",
                "50",
                "--pause",
                "20ms",
            ],
        );
        std::thread::sleep(std::time::Duration::from_millis(fastrand::u64(20..400)));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    wait_until_killed_runs_are_gone(&db);
    let (code, stdout, stderr) = convert(&project, &db, &[]);
    assert_eq!(code, Some(0), "after {kills} kills: {stdout}\n{stderr}");
    assert_eq!(
        content(&db, "orders"),
        content(&db, "orders_twin"),
        "after {kills} kills"
    );
    assert!(kills >= 5, "killed only {kills} times");
    let journal = column(&mut db.connect(), "SELECT phase FROM pgm_convert");
    assert_eq!(journal, ["swapped"]);
    assert_eq!(
        column(
            &mut db.connect(),
            "SELECT relkind::text FROM pg_class WHERE oid = 'orders'::regclass"
        ),
        ["p"]
    );
}

#[test]
fn verify_names_each_partition_that_differs_and_stops() {
    let db = TestDb::new();
    let project = setup(&db, POLICY, ORDERS);
    let (code, stdout, stderr) = convert(&project, &db, &["--until", "verify"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("verify: 10000 row(s) equal in 14 partition(s); 0 key(s) still in the log"),
        "{stdout}"
    );
    // Writes to the partitioned table are not captured: the copy drifts.
    db.connect()
        .batch_execute(
            "UPDATE orders_partitioned SET note = 'changed' WHERE id = 5; \
             DELETE FROM orders_partitioned WHERE id = 9000;",
        )
        .unwrap();
    let (code, stdout, stderr) = convert(&project, &db, &["--until", "verify"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "public.orders: the partitioned table differs from the table; nothing will be swapped:\n  \
             - orders_p2025_09: the same number of rows with different contents\n  \
             - orders_p2026_09: 720 row(s) in the table, 719 in the partitioned table"
        ),
        "{stderr}"
    );
}

#[test]
fn dry_run_shows_every_phase_and_changes_nothing() {
    let db = TestDb::new();
    let project = setup(&db, POLICY, ORDERS);
    let before = relations(&db);
    let (code, stdout, stderr) = convert(&project, &db, &["--dry-run", "--batch-size", "500"]);
    assert_eq!(code, Some(0), "{stderr}");
    for text in [
        "-- ===== prepare",
        "-- lock on parent: SHARE ROW EXCLUSIVE",
        "CREATE TRIGGER pgm_convert_capture AFTER INSERT OR UPDATE OR DELETE ON \"public\".\"orders\" FOR EACH ROW",
        "CREATE TABLE \"public\".\"orders_p2025_09\" PARTITION OF \"public\".\"orders_partitioned\" FOR VALUES \
         FROM ('2025-09-01 00:00:00+00') TO ('2025-10-01 00:00:00+00');",
        "-- ===== backfill: batches of $1 = 500 rows",
        "-- ===== replay",
        "-- ===== verify",
    ] {
        assert!(stdout.contains(text), "missing {text:?} in:\n{stdout}");
    }
    assert_eq!(relations(&db), before);
}

const DEPENDENTS: &str = "\
    CREATE TABLE customers (id int PRIMARY KEY); INSERT INTO customers SELECT generate_series(0, 96); \
    ALTER TABLE orders ADD CONSTRAINT orders_customer_fkey FOREIGN KEY (customer) REFERENCES customers; \
    CREATE VIEW big_orders WITH (security_barrier, check_option = local) AS \
      SELECT id, created_at, amount FROM orders WHERE amount > 500; \
    CREATE TABLE refunds (id int PRIMARY KEY, order_id bigint NOT NULL, order_created_at timestamptz NOT NULL, \
      FOREIGN KEY (order_id, order_created_at) REFERENCES orders ON DELETE CASCADE); \
    INSERT INTO refunds SELECT g, g, timestamptz '2025-09-01' + (g - 1) * interval '1 hour' FROM generate_series(1, 50) g; \
    CREATE TABLE touched (id bigint); \
    CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO touched VALUES (NEW.id); \
      RETURN NEW; END$$; \
    CREATE TRIGGER orders_touch AFTER UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch(); \
    CREATE TRIGGER orders_quiet AFTER INSERT ON orders FOR EACH ROW EXECUTE FUNCTION touch(); \
    ALTER TABLE orders DISABLE TRIGGER orders_quiet; \
    ALTER TABLE orders SET (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.01); \
    ALTER TABLE orders ALTER COLUMN note SET STATISTICS 500; \
    GRANT UPDATE (note) ON orders TO pgm_convert_reader; \
    ALTER TABLE orders ENABLE ROW LEVEL SECURITY; \
    CREATE POLICY orders_positive ON orders USING (amount >= 0);";

fn one(db: &TestDb, sql: &str) -> String {
    column(&mut db.connect(), sql).join(",")
}

#[test]
fn the_swap_carries_dependents_over_and_unswap_and_drop_old_finish_it() {
    let db = TestDb::new();
    let policy = format!(
        "{POLICY}\n[[table.index]]\nname = \"orders_customer_created_idx\"\ncolumns = [\"customer\", \"created_at DESC\"]\n"
    );
    let project = setup(&db, &policy, &format!("{ORDERS} {DEPENDENTS}"));
    let (code, stdout, stderr) = convert(&project, &db, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout
            .contains("validate: validates the foreign key refunds_order_id_order_created_at_fkey"),
        "{stdout}"
    );
    let facts = "SELECT (SELECT relkind::text FROM pg_class WHERE oid = 'orders'::regclass) || ' ' || \
         (SELECT confrelid::regclass::text || ' ' || convalidated FROM pg_constraint \
          WHERE conname = 'refunds_order_id_order_created_at_fkey') || ' ' || \
         pg_get_serial_sequence('orders', 'id') || ' ' || \
         (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass AND tgname = 'orders_touch') || ' ' || \
         (SELECT count(*) FROM pg_policy WHERE polrelid = 'orders'::regclass) || ' ' || \
         (SELECT relrowsecurity FROM pg_class WHERE oid = 'orders'::regclass)";
    assert_eq!(
        one(&db, facts),
        "p orders true public.orders_id_seq 1 1 true"
    );
    // Storage parameters on each partition, the statistics target, the
    // column's grant.
    assert_eq!(
        one(
            &db,
            "SELECT array_to_string(reloptions, ',') || ' ' || \
               (SELECT attstattarget FROM pg_attribute WHERE attrelid = c.oid AND attname = 'note') || ' ' || \
               has_column_privilege('pgm_convert_reader', 'orders', 'note', 'UPDATE') || ' ' || \
               has_column_privilege('pgm_convert_reader', 'orders', 'amount', 'UPDATE') \
             FROM pg_class c WHERE relname = 'orders_p2026_03'"
        ),
        "fillfactor=90,autovacuum_vacuum_scale_factor=0.01 500 true false"
    );
    // The view keeps its options: a security barrier stays one.
    assert_eq!(
        one(
            &db,
            "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = 'big_orders'::regclass"
        ),
        "security_barrier=true,check_option=local"
    );
    let index_names = "SELECT string_agg(c.relname || ' on ' || t.relname, ', ' ORDER BY c.relname) \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid \
         WHERE t.relname IN ('orders', 'orders_unpartitioned', 'orders_partitioned')";
    assert_eq!(
        one(&db, index_names),
        "orders_customer_created_idx on orders, orders_customer_idx on orders, \
         orders_customer_idx_unpartitioned on orders_unpartitioned, orders_pkey on orders, \
         orders_pkey_unpartitioned on orders_unpartitioned"
    );
    // The partitioned parent has statistics (autovacuum never makes them).
    assert_eq!(
        one(
            &db,
            "SELECT EXISTS (SELECT FROM pg_stats WHERE schemaname = 'public' AND tablename = 'orders' AND inherited)"
        ),
        "t"
    );
    // The view reads the partitioned table; the trigger fires on it; the
    // foreign key cascades from it; the sequence goes on.
    db.connect()
        .batch_execute(
            "INSERT INTO orders (created_at, customer, amount) VALUES ('2026-11-20', 1, 1234.5); \
             UPDATE orders SET note = 'seen' WHERE id = 2; DELETE FROM orders WHERE id = 1;",
        )
        .unwrap();
    assert_eq!(
        one(&db, "SELECT count(*) FROM big_orders WHERE amount = 1234.5"),
        "1"
    );
    assert_eq!(one(&db, "SELECT max(id) FROM orders"), "10001");
    // Only the update was recorded: the disabled trigger stayed disabled.
    assert_eq!(
        one(&db, "SELECT string_agg(id::text, ',') FROM touched"),
        "2"
    );
    assert_eq!(one(&db, "SELECT count(*) FROM refunds"), "49");
    // The foreign key to customers came along.
    assert!(
        db.connect()
            .batch_execute("INSERT INTO orders (created_at, customer) VALUES ('2026-11-20', 5000)")
            .is_err()
    );

    // Unswap: the old table takes the name back with those writes.
    let (code, stdout, stderr) = convert(&project, &db, &["--unswap"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        one(
            &db,
            "SELECT relkind::text FROM pg_class WHERE oid = 'orders'::regclass"
        ),
        "r"
    );
    assert_eq!(content(&db, "orders"), content(&db, "orders_partitioned"));
    assert_eq!(
        one(&db, "SELECT count(*) FROM big_orders WHERE amount = 1234.5"),
        "1"
    );
    assert_eq!(
        one(
            &db,
            "SELECT confrelid::regclass::text FROM pg_constraint WHERE conname = 'refunds_order_id_order_created_at_fkey'"
        ),
        "orders"
    );
    assert_eq!(one(&db, "SELECT count(*) FROM orders WHERE id = 1"), "0");
    assert_eq!(
        one(&db, index_names),
        "orders_customer_created_idx on orders_partitioned, orders_customer_idx on orders, \
         orders_customer_idx_partitioned on orders_partitioned, orders_pkey on orders, \
         orders_pkey_partitioned on orders_partitioned"
    );

    // Swap again, then drop the old table: pgm maintains it as any other.
    let (code, stdout, stderr) = convert(&project, &db, &["--drop-old"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "drop-old: public.orders_unpartitioned holds 10000 row(s), public.orders holds 10000"
        ),
        "{stdout}"
    );
    assert_eq!(
        one(
            &db,
            "SELECT count(*) FROM pg_class WHERE relname IN ('orders_unpartitioned', 'orders_pgm_log', 'orders_partitioned')"
        ),
        "0"
    );
    assert_eq!(one(&db, "SELECT count(*) FROM pgm_convert"), "0");
    assert_eq!(
        one(
            &db,
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'pgm_convert%'"
        ),
        "0"
    );
    for command in ["maintain", "check"] {
        let output = project
            .pgm(&db)
            .args(["partitions", command, "--at", AT])
            .output()
            .unwrap();
        let (code, stdout, stderr) = outcome(&output);
        assert_eq!(code, Some(0), "{command}: {stdout}\n{stderr}");
    }
    // The declared index was built with the empty partitioned table:
    // maintenance found every partition indexed and built nothing.
    assert_eq!(
        one(
            &db,
            "SELECT count(*) FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indexrelid \
                  WHERE h.inhparent = 'orders_customer_created_idx'::regclass AND i.indisvalid"
        ),
        "17"
    );
    assert_eq!(
        one(
            &db,
            "SELECT count(*) FROM pg_class WHERE relname LIKE '%_orders_customer_created_idx'"
        ),
        "0"
    );
}

#[test]
fn the_run_sends_no_change_the_dry_run_does_not_show() {
    let sandbox = support::statement_logging_sandbox("%a|");
    let mut app = pgm::db::connect(&sandbox.settings("app")).unwrap();
    app.batch_execute(&format!(
        "{} CREATE TABLE refunds (id int PRIMARY KEY, order_id bigint, order_created_at timestamptz, \
         FOREIGN KEY (order_id, order_created_at) REFERENCES orders);",
        ORDERS.replace(
            "CREATE ROLE pgm_convert_reader NOLOGIN;",
            "DO $$ BEGIN CREATE ROLE pgm_convert_reader NOLOGIN; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;"
        )
    ))
    .unwrap();
    let project = Project::new();
    std::fs::write(project.path().join("partman.toml"), POLICY).unwrap();
    let run = |args: &[&str]| {
        let output = support::pgm()
            .current_dir(project.path())
            .env("DATABASE_URL", sandbox.url("app"))
            .args([
                "partitions",
                "convert",
                "public.orders",
                "--at",
                AT,
                "--batch-size",
                "3000",
            ])
            .args(args)
            .output()
            .unwrap();
        let (code, stdout, stderr) = outcome(&output);
        assert_eq!(code, Some(0), "{args:?}: {stdout}\n{stderr}");
        stdout
    };
    let log_path = sandbox.root().join("server.log");
    // Runs the dry run of `args`, then `args`: returns the plan and what
    // the run changed, after checking each change is in the plan.
    let planned_and_sent = |args: &[&str]| -> Vec<String> {
        let mut dry = args.to_vec();
        dry.push("--dry-run");
        let plan = run(&dry);
        let before = std::fs::read_to_string(&log_path).unwrap().len();
        run(args);
        let log = std::fs::read_to_string(&log_path).unwrap();
        let planned: Vec<&str> = plan
            .lines()
            .filter_map(|line| line.strip_suffix(';'))
            .filter(|line| !line.starts_with("--"))
            .collect();
        let changes: Vec<String> = support::logged_statements(&log[before..])
            .into_iter()
            .filter(|s| !support::changes_nothing(s))
            .collect();
        for statement in &changes {
            assert!(
                planned.contains(&statement.as_str()),
                "{args:?} sent but not in the plan: {statement}\n\nthe plan:\n{plan}"
            );
        }
        changes
    };
    let changes = planned_and_sent(&[]);
    for kind in [
        "CREATE TABLE",
        "CREATE TRIGGER",
        "WITH batch",
        "LOCK TABLE",
        "ALTER TABLE \"public\".\"refunds\" VALIDATE",
    ] {
        assert!(
            changes.iter().any(|c| c.starts_with(kind)),
            "no {kind} sent: {changes:#?}"
        );
    }
    let unswapped = planned_and_sent(&["--unswap"]);
    assert!(
        unswapped.iter().any(|c| c.starts_with("LOCK TABLE")),
        "{unswapped:#?}"
    );
    planned_and_sent(&[]);
    let dropped = planned_and_sent(&["--drop-old"]);
    assert!(
        dropped.iter().any(|c| c.starts_with("DROP TABLE")),
        "{dropped:#?}"
    );
}

#[test]
fn a_swap_that_cannot_get_its_lock_gives_up_and_changes_nothing() {
    let db = TestDb::new();
    let project = setup(&db, POLICY, ORDERS);
    let (code, stdout, stderr) = convert(&project, &db, &["--until", "verify"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let mut reader = db.connect();
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM orders;")
        .unwrap();
    let (code, stdout, stderr) = convert(&project, &db, &[]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("swapping public.orders_partitioned failed after 4 attempts: 55P03"),
        "{stderr}"
    );
    assert_eq!(
        column(
            &mut db.connect(),
            "SELECT relkind::text || ' ' || (SELECT phase FROM pgm_convert) FROM pg_class WHERE oid = 'orders'::regclass"
        ),
        ["r backfilled"]
    );
    reader.batch_execute("COMMIT").unwrap();
    let (code, stdout, stderr) = convert(&project, &db, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("swap: public.orders is partitioned"),
        "{stdout}"
    );
}

#[test]
fn names_needing_quotes_and_identity_columns_convert_and_the_identity_goes_on() {
    let db = TestDb::new();
    let policy = r#"
[defaults]
lock_timeout = "200ms"

[[table]]
name = '"Sales"."Order Lines"'
key = "Placed On"
interval = "weekly"
premake = 1
"#;
    let project = setup(
        &db,
        policy,
        "CREATE SCHEMA \"Sales\"; \
         CREATE TABLE \"Sales\".\"Order Lines\" (id int GENERATED ALWAYS AS IDENTITY, \"Placed On\" date NOT NULL, \
           \"it's\" text, PRIMARY KEY (id, \"Placed On\")); \
         INSERT INTO \"Sales\".\"Order Lines\" (\"Placed On\", \"it's\") \
           SELECT date '2026-10-01' + g % 50, 'x' || g FROM generate_series(1, 500) g;",
    );
    let output = project
        .pgm(&db)
        .args([
            "partitions",
            "convert",
            "\"Sales\".\"Order Lines\"",
            "--at",
            AT,
            "--batch-size",
            "70",
        ])
        .args(["--keep-as", "Order Lines (2019)"])
        .output()
        .unwrap();
    let (code, stdout, stderr) = outcome(&output);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let mut client = db.connect();
    client
        .batch_execute(
            "INSERT INTO \"Sales\".\"Order Lines\" (\"Placed On\") VALUES ('2026-11-20')",
        )
        .unwrap();
    assert_eq!(
        column(
            &mut client,
            "SELECT c.relkind::text || ' ' || (SELECT max(id) FROM \"Sales\".\"Order Lines\") || ' ' || \
             (SELECT count(*) FROM \"Sales\".\"Order Lines\") || ' ' || \
             (SELECT count(*) FROM pg_inherits WHERE inhparent = c.oid) \
             FROM pg_class c WHERE c.oid = '\"Sales\".\"Order Lines\"'::regclass"
        ),
        // Weeks from the one holding 2026-10-01 (Monday 2026-09-28) through
        // the one holding now, 2026-11-22, and one more: 9. The identity
        // goes on past the old table's (its last value was taken once).
        ["p 502 501 9"]
    );
    assert_eq!(
        column(
            &mut client,
            "SELECT count(*) FROM \"Sales\".\"Order Lines (2019)\""
        ),
        ["500"]
    );
}

#[test]
fn rows_written_outside_the_prepared_partitions_get_partitions_before_the_swap() {
    let db = TestDb::new();
    let project = setup(&db, POLICY, ORDERS);
    let (code, stdout, stderr) = convert(&project, &db, &["--until", "backfill"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    db.connect()
        .batch_execute(
            "INSERT INTO orders (created_at, customer) VALUES ('2024-01-15', 1), ('2027-06-01', 2); \
             UPDATE orders SET created_at = '2023-12-31 23:00' WHERE id = 3;",
        )
        .unwrap();
    let (code, stdout, stderr) = convert(&project, &db, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    // Every month from 2023-12 up to the first prepared one, and from the
    // last prepared one through 2027-06 and premake 2: 21 + 7.
    assert!(
        stdout.contains(
            "prepare: 28 partition(s) the table's keys need that the partitioned table lacks (keys written \
             since the prepare outside its partitions"
        ),
        "{stdout}"
    );
    assert_eq!(
        column(
            &mut db.connect(),
            "SELECT count(*) FILTER (WHERE created_at < '2025-01-01') || ' ' || count(*) FROM orders"
        ),
        ["2 10002"]
    );
    assert_eq!(content(&db, "orders"), content(&db, "orders_unpartitioned"));
}

#[test]
fn drop_old_before_the_swap_and_unswap_before_any_swap_are_usage_errors() {
    let db = TestDb::new();
    let project = setup(&db, POLICY, ORDERS);
    let (code, _, stderr) = convert(&project, &db, &["--drop-old", "--until", "verify"]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("--drop-old comes after the swap"),
        "{stderr}"
    );
    let (code, _, stderr) = convert(&project, &db, &["--unswap"]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains(
            "public.orders was not swapped: --unswap reverses a swap while the old table is kept"
        ),
        "{stderr}"
    );
    assert_eq!(
        column(
            &mut db.connect(),
            "SELECT to_regclass('pgm_convert') IS NULL"
        ),
        ["t"]
    );
}

#[test]
fn a_column_added_during_the_conversion_stops_the_run_with_the_fix() {
    let db = TestDb::new();
    let project = setup(&db, POLICY, ORDERS);
    let (code, stdout, stderr) = convert(&project, &db, &["--until", "backfill"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    db.connect()
        .batch_execute("ALTER TABLE orders ADD COLUMN channel text")
        .unwrap();
    let (code, _, stderr) = convert(&project, &db, &[]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains(
            "public.orders and public.orders_partitioned no longer have the same columns (channel text only \
             in public.orders): a migration changed the table during the conversion; make the same change \
             to public.orders_partitioned, then run again"
        ),
        "{stderr}"
    );
    db.connect()
        .batch_execute("ALTER TABLE orders_partitioned ADD COLUMN channel text")
        .unwrap();
    let (code, stdout, stderr) = convert(&project, &db, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("swap: public.orders is partitioned"),
        "{stdout}"
    );
}

#[test]
fn killed_during_replay_verify_and_swap_with_writers_the_next_run_converges() {
    let db = TestDb::new();
    let project = setup(&db, POLICY, &format!("{ORDERS} {TWIN}"));
    let (code, stdout, stderr) = convert(&project, &db, &["--until", "backfill"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = writer(&db, Arc::clone(&stop));
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let mut kills = 0;
    for attempt in 0..30 {
        let mut child = project.spawn(
            &db,
            &[
                "partitions",
                "convert",
                "public.orders",
                "--at",
                AT,
                "--batch-size",
                "5",
            ],
        );
        // Killed later and later: the first runs die while starting, the
        // next ones in the replay, verify or the swap.
        let delay = fastrand::u64(5..40) + 25 * attempt;
        std::thread::sleep(std::time::Duration::from_millis(delay));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    wait_until_killed_runs_are_gone(&db);
    let (code, stdout, stderr) = convert(&project, &db, &[]);
    assert_eq!(code, Some(0), "after {kills} kills: {stdout}\n{stderr}");
    assert!(kills >= 2, "killed only {kills} times");
    assert_eq!(
        content(&db, "orders"),
        content(&db, "orders_twin"),
        "after {kills} kills"
    );
    assert_eq!(
        column(
            &mut db.connect(),
            "SELECT relkind::text FROM pg_class WHERE oid = 'orders'::regclass"
        ),
        ["p"]
    );
}

#[test]
fn a_deferrable_primary_key_is_refused_before_anything_changes() {
    assert_refused(
        &ORDERS.replace(
            "PRIMARY KEY (id, created_at))",
            "PRIMARY KEY (id, created_at) DEFERRABLE INITIALLY DEFERRED)",
        ),
        &[
            "deferrable constraint orders_pkey",
            "recreate it NOT DEFERRABLE",
        ],
    );
}

/// Row-level security that would hide rows from pgm's role (the owner of
/// a table with FORCE ROW LEVEL SECURITY) stops the copy with PostgreSQL's
/// error: a filtered copy would pass the comparison and lose the rows.
#[test]
fn row_security_hiding_rows_stops_the_copy_instead_of_filtering_it() {
    let db = TestDb::new();
    let project = setup(&db, POLICY, ORDERS);
    let owner = format!("pgm_owner_{}", std::process::id());
    let mut client = db.connect();
    client
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {owner} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
             GRANT CREATE ON SCHEMA public TO {owner}; \
             ALTER TABLE orders OWNER TO {owner}; \
             ALTER SEQUENCE orders_id_seq OWNER TO {owner}; \
             CREATE POLICY small_orders ON orders USING (amount < 10); \
             ALTER TABLE orders ENABLE ROW LEVEL SECURITY; \
             ALTER TABLE orders FORCE ROW LEVEL SECURITY;"
        ))
        .unwrap();
    let output = project
        .pgm(&db)
        .env("DATABASE_URL", format!("{} user={owner}", db.url()))
        .args(["partitions", "convert", "public.orders", "--at", AT])
        .args(["--until", "verify"])
        .output()
        .unwrap();
    let (code, stdout, stderr) = outcome(&output);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("row-level security"),
        "the server's refusal is shown: {stderr}"
    );
    let copied = column(
        &mut db.connect(),
        "SELECT count(*)::text FROM orders_partitioned",
    );
    assert_eq!(copied, ["0"], "nothing was copied through the policy");
}

/// A value of a second unique constraint moved from a key logged after a
/// replay batch to a key in it: the batch's copy meets the stale row and
/// runs again over the whole log instead of failing on every run.
#[test]
fn a_unique_value_moved_between_keys_across_a_replay_batch_is_applied() {
    let db = TestDb::new();
    let schema = "\
        CREATE TABLE orders (id bigint, created_at timestamptz NOT NULL, email text NOT NULL, note text, \
          PRIMARY KEY (id, created_at), UNIQUE (email, created_at)); \
        INSERT INTO orders VALUES (1, '2026-10-01', 'x', 'a'), (2, '2026-10-01', 'z', 'b'), \
          (3, '2026-10-02', 'w', 'c');";
    let project = setup(&db, POLICY, schema);
    let (code, stdout, stderr) = convert(&project, &db, &["--until", "backfill"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    // Logged in this order: 2 (unrelated), 1 gives up x, 2 takes x.
    db.connect()
        .batch_execute(
            "UPDATE orders SET note = 'b2' WHERE id = 2; \
             UPDATE orders SET email = 'y' WHERE id = 1; \
             UPDATE orders SET email = 'x' WHERE id = 2;",
        )
        .unwrap();
    let (code, stdout, stderr) =
        convert(&project, &db, &["--until", "replay", "--batch-size", "1"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("replay: 3 logged change(s) applied"),
        "{stdout}"
    );
    assert_eq!(content(&db, "orders_partitioned"), content(&db, "orders"));
    let (code, stdout, stderr) = convert(&project, &db, &["--batch-size", "1"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        content(&db, "orders"),
        [
            "(1,\"2026-10-01 00:00:00+00\",y,a)",
            "(2,\"2026-10-01 00:00:00+00\",x,b2)",
            "(3,\"2026-10-02 00:00:00+00\",w,c)"
        ]
    );
}

/// `--abort` before the swap leaves the table as it was, with nothing of
/// the conversion around it (only the journal table, for the schema's next
/// conversion); a conversion started again from scratch then goes through.
#[test]
fn abort_before_the_swap_removes_the_conversion_and_after_it_says_to_unswap_first() {
    let db = TestDb::new();
    let project = setup(&db, POLICY, ORDERS);
    let (code, stdout, stderr) = convert(&project, &db, &["--abort"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("abort: no conversion of public.orders is journaled; nothing to do"),
        "{stdout}"
    );
    let before = relations(&db);
    let (code, stdout, stderr) = convert(&project, &db, &["--until", "backfill"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    db.connect()
        .batch_execute("UPDATE orders SET note = 'after the copy' WHERE id <= 10")
        .unwrap();
    let prepared = relations(&db);
    let (code, plan, stderr) = convert(&project, &db, &["--abort", "--dry-run"]);
    assert_eq!(code, Some(0), "{plan}\n{stderr}");
    assert!(
        plan.contains("DROP TRIGGER IF EXISTS pgm_convert_capture ON \"public\".\"orders\";")
            && plan.contains("DROP TABLE IF EXISTS \"public\".\"orders_partitioned\";"),
        "{plan}"
    );
    assert_eq!(relations(&db), prepared, "a dry run changes nothing");
    let (code, stdout, stderr) = convert(&project, &db, &["--abort"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let mut after = relations(&db);
    after.retain(|relation| !relation.starts_with("pgm_convert"));
    assert_eq!(after, before);
    let leftovers = column(
        &mut db.connect(),
        "SELECT count(*)::text FROM pg_trigger WHERE tgrelid = 'orders'::regclass \
         UNION ALL SELECT count(*)::text FROM pg_proc WHERE proname LIKE 'pgm_convert%' \
         UNION ALL SELECT count(*)::text FROM pgm_convert",
    );
    assert_eq!(leftovers, ["0", "0", "0"]);

    let (code, stdout, stderr) = convert(&project, &db, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let (code, _, stderr) = convert(&project, &db, &["--abort"]);
    assert_eq!(code, Some(64), "{stderr}");
    assert!(
        stderr.contains("public.orders is swapped: --abort drops the partitioned copy before the swap; run --unswap first"),
        "{stderr}"
    );
}

/// While a conversion runs, `check` says so with what to do and `maintain`
/// plans nothing for the table; after the swap, until `--drop-old`,
/// retention waits (an unswap would give back retired rows).
#[test]
fn check_and_maintain_report_an_unfinished_conversion_and_retention_waits_for_its_end() {
    let db = TestDb::new();
    let policy = POLICY.replace("premake = 2", "premake = 2\nretention = \"12 months\"");
    let project = setup(&db, &policy, ORDERS);
    let partitions = |project: &Project, args: &[&str]| {
        let output = project
            .pgm(&db)
            .arg("partitions")
            .args(args)
            .args(["--at", AT])
            .output()
            .unwrap();
        outcome(&output)
    };
    let (code, stdout, stderr) = convert(&project, &db, &["--until", "backfill"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let (code, stdout, stderr) = partitions(&project, &["check"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "public.orders: being converted (journal: backfilled); every write is logged until it ends (log: "
        ) && stdout.contains("run `pgm partitions convert public.orders` to finish it, or `--abort`"),
        "{stdout}"
    );
    let (code, stdout, stderr) = partitions(&project, &["maintain"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("being converted"), "{stdout}\n{stderr}");

    let (code, stdout, stderr) = convert(&project, &db, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let (code, stdout, stderr) = partitions(&project, &["maintain"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(
            "the old table public.orders_unpartitioned is kept and every write is still logged"
        ) && stdout.contains("retention waits"),
        "{stdout}\n{stderr}"
    );
    let oldest = || {
        column(
            &mut db.connect(),
            "SELECT min(c.relname)::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'orders'::regclass",
        )
    };
    assert_eq!(oldest(), ["orders_p2025_09"], "nothing retired");
    let (code, stdout, stderr) = partitions(&project, &["check"]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("--drop-old` when the new table has proved itself"),
        "{stdout}"
    );

    let (code, stdout, stderr) = convert(&project, &db, &["--drop-old"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let (code, stdout, stderr) = partitions(&project, &["maintain"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(oldest(), ["orders_p2025_11"], "retention ran: {stdout}");
    let (code, stdout, stderr) = partitions(&project, &["check"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
}

/// A view created on the table while the run copies it: the swap planned
/// before it would leave the view on the old table, so under its lock the
/// swap finds the table changed and stops; the next run carries it over.
#[test]
fn an_object_added_during_the_run_stops_the_swap_and_the_next_run_carries_it_over() {
    let db = TestDb::new();
    let project = setup(&db, POLICY, ORDERS);
    let child = project.spawn(
        &db,
        &[
            "partitions",
            "convert",
            "public.orders",
            "--at",
            AT,
            "--batch-size",
            "4000",
            "--pause",
            "3s",
        ],
    );
    let mut watcher = db.connect();
    assert!(support::wait_for(
        &mut watcher,
        "SELECT EXISTS (SELECT FROM pgm_convert WHERE copied > 0)",
        60
    ));
    watcher
        .batch_execute(
            "CREATE VIEW late_orders AS SELECT id, created_at FROM orders WHERE id > 9990",
        )
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let (code, stdout, stderr) = outcome(&output);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "\"public\".\"orders\" changed since this run read it (an index, a constraint, a column, a grant, \
             or an object depending on it was added, changed or removed): nothing was swapped; run the same \
             command again"
        ),
        "{stderr}"
    );
    assert_eq!(
        one(
            &db,
            "SELECT relkind::text FROM pg_class WHERE oid = 'orders'::regclass"
        ),
        "r"
    );
    let (code, stdout, stderr) = convert(&project, &db, &[]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        one(
            &db,
            "SELECT string_agg(DISTINCT d.refobjid::regclass::text, ',') FROM pg_rewrite r \
             JOIN pg_depend d ON d.objid = r.oid AND d.classid = 'pg_rewrite'::regclass \
             AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class \
             WHERE r.ev_class = 'late_orders'::regclass"
        ),
        "orders",
        "the view reads the partitioned table"
    );
    assert_eq!(one(&db, "SELECT count(*) FROM late_orders"), "10");
}

/// A table whose keys span hundreds of daily periods is prepared in
/// transactions of at most 100 partitions; a run stopped between them is
/// finished by the next, which creates only the partitions still missing.
#[test]
fn hundreds_of_partitions_are_prepared_a_hundred_per_transaction() {
    let db = TestDb::new();
    let policy = POLICY.replace("interval = \"monthly\"", "interval = \"daily\"");
    let schema = "\
        CREATE TABLE orders (id bigint, created_at timestamptz NOT NULL, note text, \
          PRIMARY KEY (id, created_at)); \
        ALTER TABLE orders ALTER COLUMN note SET STATISTICS 321; \
        INSERT INTO orders SELECT g, timestamptz '2026-03-01' + g * interval '1 day', 'n' || g \
          FROM generate_series(0, 249) g;";
    let project = setup(&db, &policy, schema);
    let (code, plan, stderr) = convert(&project, &db, &["--until", "prepare", "--dry-run"]);
    assert_eq!(code, Some(0), "{plan}\n{stderr}");
    // 2026-03-01 through 2026-11-22 (now) plus 2 days: 269 partitions.
    assert_eq!(plan.matches("PARTITION OF").count(), 269, "{plan}");
    assert_eq!(
        plan.matches("\nBEGIN;").count(),
        4,
        "3 transactions of partitions, then the capture: {plan}"
    );
    assert!(
        plan.contains("100 more partition(s) of the prepare, from orders_p2026_06_09"),
        "{plan}"
    );

    // As if a run had stopped after its first transaction: the next run
    // creates the 169 partitions still missing, a hundred at a time.
    let first: String = plan
        .split("\nBEGIN;\n")
        .nth(1)
        .and_then(|t| t.split("\nCOMMIT;").next())
        .unwrap()
        .to_owned();
    db.connect()
        .batch_execute(&format!("BEGIN; {}; COMMIT;", first.trim_end_matches(';')))
        .unwrap();
    let (code, plan, stderr) = convert(&project, &db, &["--until", "prepare", "--dry-run"]);
    assert_eq!(code, Some(0), "{plan}\n{stderr}");
    assert_eq!(plan.matches("PARTITION OF").count(), 169, "{plan}");
    let (code, stdout, stderr) = convert(&project, &db, &["--until", "verify"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        one(
            &db,
            "SELECT count(*) || ' ' || min(a.attstattarget) || ' ' || max(a.attstattarget) FROM pg_inherits i \
             JOIN pg_attribute a ON a.attrelid = i.inhrelid AND a.attname = 'note' \
             WHERE i.inhparent = 'orders_partitioned'::regclass"
        ),
        "269 321 321"
    );
}

/// Writes made while the swap waits for its lock and backs off are applied
/// before its next attempt, without the lock, not all by the swap's own
/// replay under it.
#[test]
fn writes_made_while_the_swap_retries_are_replayed_before_its_next_attempt() {
    let db = TestDb::new();
    let project = setup(&db, POLICY, ORDERS);
    let (code, stdout, stderr) = convert(&project, &db, &["--until", "verify"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let replayed = || one(&db, "SELECT replayed FROM pgm_convert");
    let before = replayed();
    let mut reader = db.connect();
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM orders;")
        .unwrap();
    let child = project.spawn(&db, &["partitions", "convert", "public.orders", "--at", AT]);
    let mut watcher = db.connect();
    assert!(support::wait_for(
        &mut watcher,
        "SELECT EXISTS (SELECT FROM pg_locks WHERE relation = 'orders'::regclass AND mode = 'AccessExclusiveLock' \
         AND NOT granted)",
        30
    ));
    // Between the swap's attempts: the lock it waits for is not queued.
    std::thread::sleep(std::time::Duration::from_millis(250));
    watcher
        .batch_execute("UPDATE orders SET note = 'while the swap waited' WHERE id <= 50")
        .unwrap();
    reader.batch_execute("COMMIT").unwrap();
    let output = child.wait_with_output().unwrap();
    let (code, stdout, stderr) = outcome(&output);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        replayed().parse::<i64>().unwrap() - before.parse::<i64>().unwrap(),
        50,
        "the 50 updates were replayed before the swap's last attempt: {stderr}"
    );
    assert_eq!(content(&db, "orders"), content(&db, "orders_unpartitioned"));
}

/// The prepared partitions take the table's storage parameters, and the
/// policy's `[table.partition]` ones over them: the same as the partitions
/// `maintain` creates later.
#[test]
fn prepared_partitions_take_the_policys_partition_storage_parameters_first() {
    let db = TestDb::new();
    let policy = format!("{POLICY}\n[table.partition]\nwith = {{ fillfactor = 70 }}\n");
    let schema = format!(
        "{ORDERS} ALTER TABLE orders SET (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.01);"
    );
    let project = setup(&db, &policy, &schema);
    let (code, stdout, stderr) = convert(&project, &db, &["--until", "prepare"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert_eq!(
        one(
            &db,
            "SELECT DISTINCT array_to_string(c.reloptions, ',') FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'orders_partitioned'::regclass"
        ),
        "autovacuum_vacuum_scale_factor=0.01,fillfactor=70"
    );
}
