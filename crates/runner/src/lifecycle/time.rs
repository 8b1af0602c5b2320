//! Timestamps of container state and log lines: nanoseconds since the Unix epoch, written as
//! RFC 3339 with nanoseconds as docker's state and json-file logs do (see [`rbuild_oci::time`]).

pub use rbuild_oci::time::{now_ns, parse_rfc3339, rfc3339_nano};
