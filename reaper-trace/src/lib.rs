//! reaper-trace: which reaper adopted each orphan, how long each zombie lived, and whether the
//! kernel's choices match `find_new_reaper`.

pub mod btf_offsets;
pub mod check;
pub mod clock;
pub mod container;
pub mod daemon;
pub mod dashboard;
pub mod decode;
#[cfg(test)]
mod doc_links;
pub mod doctor;
pub mod escape;
pub mod event;
pub mod exit;
pub mod identity;
pub mod jsonl;
pub mod metrics;
pub mod model;
pub mod preflight;
pub mod procfs;
pub mod reaper;
pub mod record;
pub mod repeats;
pub mod ring;
pub mod scenario;
#[cfg(test)]
mod schema_doc;
pub mod session;
pub mod state;
pub mod tracer;
pub mod tree;
pub mod validate;
pub mod view;
