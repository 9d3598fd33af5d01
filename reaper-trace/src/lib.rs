//! reaper-trace: which reaper adopted each orphan, how long each zombie lived, and whether the
//! kernel's choices match `find_new_reaper`.

mod btf_offsets;
pub mod check;
pub mod clock;
mod container;
pub mod daemon;
pub mod dashboard;
pub mod decode;
#[cfg(test)]
mod doc_links;
pub mod doctor;
pub mod escape;
pub mod event;
pub mod exit;
mod hand_offs;
pub mod identity;
pub mod jsonl;
pub mod late_records;
pub mod live;
pub mod metrics;
pub mod model;
pub mod preflight;
pub mod procfs;
mod reaper;
pub mod record;
mod repeats;
mod ring;
pub mod scenario;
#[cfg(test)]
mod schema_doc;
pub mod session;
mod state;
pub mod tracer;
pub mod tree;
pub mod validate;
pub mod view;
