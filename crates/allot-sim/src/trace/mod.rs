//! Trace readers. Each turns one public trace format (or allot's own) into a `Trace`
//! or a cluster `Config`; every bad row is an error naming file, line, column and
//! why, or is skipped and counted when `ReadOptions::skip_bad_rows` is set.

pub mod openb;

/// How readers treat bad rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Skip malformed rows (counted in `Trace::skipped_rows`) instead of failing.
    pub skip_bad_rows: bool,
}
