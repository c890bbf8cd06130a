//! Wire views (in progress).
