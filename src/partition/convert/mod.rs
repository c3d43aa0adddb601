//! `pgm partitions convert TABLE`: turns a plain table named in the policy
//! into a range-partitioned one while the application keeps reading and
//! writing it.
//!
//! # Phases
//!
//! Each phase is planned from the policy, a catalog snapshot of the source
//! table and now (pure functions, like the partition planner), shown by
//! `--dry-run` as the exact SQL with the lock each step takes, and run by an
//! executor that runs nothing else. `--until PHASE` stops after a phase.
//!
//! | phase    | what it does | locks on the source |
//! |----------|--------------|---------------------|
//! | check    | reads the catalog; refuses with a located reason, before anything changes | ACCESS SHARE (catalog reads only) |
//! | prepare  | journal row; the partitioned table `TABLE_partitioned` (columns, defaults, NOT NULL and CHECK constraints, identity, comments, grants, owner), its partitions from the period holding `min(key)` through the one holding `max(key, now)` plus premake, indexes (built while it is empty), the change log and the capture trigger | SHARE ROW EXCLUSIVE, for `CREATE TRIGGER` only, under `lock_timeout`, retried |
//! | backfill | key-ordered batches `INSERT INTO target SELECT … FROM source WHERE pk > last AND pk <= batch_end ON CONFLICT DO NOTHING`, each its own transaction with the journal's progress | ACCESS SHARE (a plain read) |
//! | replay   | batches of the change log applied to the target, until it is nearly empty | ACCESS SHARE |
//! | verify   | per partition, `count(*)` and a content hash of source and target in one REPEATABLE READ snapshot, leaving out the keys still in the log (the swap replays those under its lock) | ACCESS SHARE |
//! | swap     | one transaction under `lock_timeout`, retried: `LOCK source IN ACCESS EXCLUSIVE MODE`, replay the rest of the log, drop the trigger, rename the source away (`TABLE_unpartitioned` or `--keep-as`), rename the target in, move owned sequences and defaults, recreate views, triggers and policies, re-point foreign keys `NOT VALID` (validated after the commit) | ACCESS EXCLUSIVE, for milliseconds |
//! | cleanup  | only with `--drop-old`: prints the old table's row count, then drops it and the log | ACCESS EXCLUSIVE on the old table, which nothing uses any more |
//!
//! `--unswap` runs the swap backwards while the old table is kept. Writes
//! made to the partitioned table after the swap are not captured back, so
//! `--unswap` is refused once the target's content no longer equals the old
//! table's (checked as verify does) unless nothing wrote since the swap.
//!
//! # The journal
//!
//! `pgm_convert` (in the source's schema, created on first use) holds one
//! row per conversion, keyed by the source's qualified name: the phase
//! reached, the target and log names, the backfill's last copied primary
//! key (as text, per column) and counts, and timestamps. Every phase reads
//! it first, skips what is done, and writes its progress in the same
//! transaction as the work it records, so a kill at any instant leaves the
//! journal and the database in agreement. DDL whose `IF NOT EXISTS` form
//! exists uses it; the rest is guarded by catalog checks planned into the
//! step (the step's SQL shows the guard query). One conversion runs at a
//! time per table: the run holds a session advisory lock derived from the
//! table's name.
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
//! Replaying an entry deletes that key from the target and inserts the
//! source's current row for it, if any, in one transaction that also
//! deletes the entries it read (by `seq`, never by key, so an entry written
//! meanwhile stays for the next batch). Why this converges whatever the
//! interleaving of batches and application writes:
//!
//! * every committed write to key k leaves an entry committed with it;
//! * an entry is removed only by a replay transaction that read it, hence
//!   whose later statements (READ COMMITTED) see the write that logged it,
//!   and so copy k's state as of that write or later;
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
//! harmless.
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
//! because it handles key changes plainly and its cost is one index insert
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
//! constraints, comments, grants and owner (prepare); views (recreated from
//! their definition at the swap), foreign keys from other tables (added
//! `NOT VALID` at the swap, validated after it: the referenced unique
//! constraint includes the key, as the check demands), user triggers and
//! row-level security policies (recreated at the swap, so they do not fire
//! on the backfill), sequences owned by the table's columns (ownership
//! moved at the swap).

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
pub use run::{ConvertError, Options, run};
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
