//! `pgm partitions convert TABLE`: turns a plain table named in the policy
//! (its entry names the key column with `key = "…"`) into a
//! range-partitioned one while the application keeps reading and writing
//! it.
//!
//! # Phases
//!
//! Each phase is planned from the policy, a catalog snapshot of the source
//! table, the journal and now (pure functions, like the partition planner),
//! shown by `--dry-run` as the exact SQL with the lock each step takes, and
//! run by an executor that runs nothing else (a test compares the server's
//! statement log with the dry run). `--until PHASE` stops after a phase.
//!
//! | phase    | what it does | locks on the source |
//! |----------|--------------|---------------------|
//! | check    | reads the catalog; refuses with a located reason, before anything changes (exit 64) | ACCESS SHARE (catalog reads) |
//! | prepare  | transaction 1: journal row; `TABLE_partitioned` (`LIKE` the source: columns, defaults, NOT NULL and CHECK constraints, identity, comments; the source's indexes and PRIMARY KEY / UNIQUE constraints from their definitions, named `…_partitioned` until the swap gives them the source's names; grants and owner), its partitions from the period holding `min(key)` through the one holding `max(key, now)` plus premake (bounds and names from the partition planner's periods), the policy's declared indexes (built while it is empty), the change log. Transaction 2: the capture triggers and the backfill's bound, the largest primary key read under the trigger's lock | ACCESS SHARE, then SHARE ROW EXCLUSIVE for `CREATE TRIGGER`, under `lock_timeout`, retried |
//! | backfill | key-ordered batches `INSERT INTO target SELECT … WHERE pk > last AND pk <= bound ORDER BY pk LIMIT n ON CONFLICT DO NOTHING`, each with its journal progress in one transaction; rows above the bound come through the log, so the copy never chases inserts | ACCESS SHARE (a plain read) |
//! | replay   | batches of the log, each in one REPEATABLE READ transaction, until a batch is not full; again after verify, right before the swap, so the swap's own replay is short | ACCESS SHARE |
//! | verify   | per partition, `count(*)` and an order-independent content hash of source and target in one REPEATABLE READ snapshot, leaving out the keys still in the log | ACCESS SHARE |
//! | swap     | one transaction under `lock_timeout`, retried: `LOCK … IN ACCESS EXCLUSIVE MODE`, replay what is left of the log (written since the replay just before), move the capture triggers to the partitioned table, rename the source to `TABLE_unpartitioned` and the partitioned table to `TABLE` (and their indexes and constraints likewise), move owned sequences, set identity sequences past the old ones, recreate views, user triggers, row security and policies, re-point foreign keys of other tables `NOT VALID`; each validated after, in its own transaction | ACCESS EXCLUSIVE, for the transaction |
//! | unswap   | `--unswap`: the same transaction the other way; the partitioned table loses the triggers and policies the swap gave it | ACCESS EXCLUSIVE, for the transaction |
//! | cleanup  | `--drop-old`: prints both row counts, ends the capture, drops the old table, the log, the capture's functions and the journal row | ACCESS EXCLUSIVE on the table for `DROP TRIGGER` |
//!
//! # The journal
//!
//! `pgm_convert` (in the source's schema, created by the first prepare)
//! holds one row per conversion, keyed by the source's quoted name: the
//! phase reached (`prepared`, `capturing`, `backfilled`, `swapped`), the
//! backfill's bound and last copied primary key (text per column), counts,
//! the old table's name after the swap, timestamps. Every step writes its
//! progress in the same transaction as the work it records, so a kill at
//! any instant leaves the journal and the database in agreement, and the
//! next run plans from the journal what is left. One run at a time per
//! table: the run holds the session advisory lock `pgm partitions maintain`
//! takes for the same table, so neither works on it while the other does.
//!
//! # Change capture: a key log filled by a row trigger
//!
//! An `AFTER INSERT OR UPDATE OR DELETE … FOR EACH ROW` trigger on the
//! source writes the primary key of each touched row (for an UPDATE both the
//! old and the new key when they differ) into the log table
//! `TABLE_pgm_log` (`seq bigint identity, <pk columns>`), in the writer's
//! own transaction: a write and its log entry commit or vanish together. A
//! `BEFORE TRUNCATE` statement trigger refuses TRUNCATE on the source while
//! the conversion is under way (row triggers do not see it).
//!
//! A replay batch runs in one REPEATABLE READ transaction: it takes the
//! largest `seq` among the oldest N entries, deletes those keys from the
//! target, inserts the source's current rows for them, if any, and deletes
//! the entries up to that `seq`, all in one snapshot, so an entry committed
//! after the snapshot stays for the next batch (even one whose `seq` is
//! lower: identity values can commit out of order). Hash and merge joins
//! are off for the transaction (`SET LOCAL`, shown in the plan), so each
//! key is an index probe: a hash join would read the whole table, and the
//! planner picks one while its statistics lag behind the copy; the swap's
//! last replay, under its lock, does the same. Why this converges
//! whatever the interleaving of batches and application writes:
//!
//! * every committed write to key k leaves an entry committed with it;
//! * an entry is removed only by a replay transaction whose snapshot shows
//!   it, hence shows the write that logged it, and so copies k's state as
//!   of that write or later;
//! * a backfill batch never overwrites (`ON CONFLICT DO NOTHING`) and reads
//!   a snapshot taken after any replay already finished (phases never run
//!   at the same time; the advisory lock keeps a second run out), so it
//!   cannot bring back a row a replay deleted: no resurrected deletes, and
//!   an old version it copies is corrected by the entry of the write that
//!   replaced it: no lost updates;
//! * the swap holds ACCESS EXCLUSIVE on the source while it replays the
//!   last entries: no write is in flight, so the target then equals the
//!   source exactly.
//!
//! A kill anywhere loses at most an uncommitted batch; running again
//! replays entries twice at worst, which the delete-then-insert makes
//! harmless. After the swap the same triggers log writes to the
//! partitioned table, so `--unswap` replays them into the old table and
//! loses nothing; `--drop-old` ends the capture. The capture functions run
//! as their owner (SECURITY DEFINER, `search_path` fixed), so writers need
//! no privilege on the log.
//!
//! Why not the alternatives:
//! * a trigger that mirrors each write into the target at once would make
//!   every application write also write the partitioned table (twice the
//!   write latency, and an error in the target, such as a missing
//!   partition, fails the application's statement); the log costs one small
//!   insert and cannot fail on the target's account;
//! * logical decoding needs `wal_level = logical` and the REPLICATION
//!   attribute, which managed services often withhold, and a slot left
//!   behind by a killed run holds WAL forever;
//! * copying without capture (pgslice `fill`) loses updates and deletes
//!   made during the copy (pgslice #56).
//!
//! Statement-level triggers with transition tables would log a bulk write
//! with one insert instead of one per row; the row trigger is kept for now
//! because it handles key changes plainly and its cost is one small insert
//! per written row.
//!
//! # What the check refuses, and what is carried over
//!
//! The check refuses, before anything changes: a table missing, already
//! partitioned, inheriting or inherited from; a key column missing, of a
//! type the policy's planner does not support, or nullable (with the
//! count of NULLs); a table without a primary key (the capture needs it);
//! a PRIMARY KEY or UNIQUE constraint without the key (saying what it
//! should become, such as `PRIMARY KEY (id, created_at)`); and anything
//! depending on the table that the swap cannot carry over: materialized
//! views, rules, publications, extended statistics, functions whose body
//! names the table, and any other dependency it does not know.
//!
//! Carried over: columns, defaults, identity, NOT NULL and CHECK
//! constraints, comments, grants (also on columns), statistics targets,
//! storage parameters (on each partition) and owner (prepare); views
//! (recreated from their definition and options at the swap), foreign
//! keys from other tables (added `NOT VALID` at the swap, validated after
//! it: the referenced unique constraint includes the key, as the check
//! demands), user triggers (in their enabled state) and row-level security
//! policies (recreated at the swap, so they do not fire on the backfill),
//! sequences owned by the table's columns (ownership moved at the swap),
//! identity sequences (set past the old ones). The swap checks under its
//! lock that all of this is as it was when the run read it.
//!
//! Rows written after the prepare with keys outside its partitions (a
//! backdated insert, an update moving a key far) get their partitions from
//! the next run, which reads `min(key)` and `max(key)` again and adds the
//! missing periods to the partitioned table before the backfill, replay and
//! swap (a batch meeting such a row in the same run fails, saying so).
//!
//! # Not built yet
//!
//! Exclusion constraints, extended statistics and self-referencing foreign
//! keys (refused by the check); carrying a publication over; a statement-
//! level capture for bulk writes; replica identity.

pub mod check;
pub mod journal;
pub mod plan;
mod progress;
mod render;
pub mod run;
pub mod source;
mod swap;
mod verify;

pub use check::{Carry, CheckError, Checked, Dependent, Refusal, check};
pub use run::{ConvertError, Options, Request, run};
pub use source::{SourceTable, read_source};

/// The phases built so far, in order; `--until` names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Check,
    Prepare,
    Backfill,
    Replay,
    Verify,
    Swap,
}

impl Phase {
    /// The last phase built: where a run without `--until` stops.
    pub const LAST: Phase = Phase::Swap;
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::Check => "check",
            Phase::Prepare => "prepare",
            Phase::Backfill => "backfill",
            Phase::Replay => "replay",
            Phase::Verify => "verify",
            Phase::Swap => "swap",
        })
    }
}
