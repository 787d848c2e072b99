//! The job's own types — the leaf of the crate: it imports nothing of offload, and every other
//! layer speaks in its terms.
//!
//! - [`status`]: [`JobStatus`], the closed set of states and who moves a job between them;
//! - [`steps`]: checkpointed [`Step`]s and the runner's own (`publish`, `notify`);
//! - [`job`]: the stored [`JobRecord`] (decoded once, typed), [`InputFile`], [`ResultFile`],
//!   [`AttemptError`], an attempt's [`Lease`], a [`NewJob`] to create;
//! - [`codes`]: job error codes as constants ([`ErrorCode`]);
//! - [`formats`]: what an export may produce ([`formats::OutputFormat`]) from which document
//!   [`formats::Family`];
//! - [`options`]: what a user may tune in an export ([`ExportOptions`]);
//! - [`tenant`]: whose job a job is ([`Tenant`]); [`priority`]: which waiting job goes first;
//!   [`metadata`]: the caller's own labels ([`Metadata`]);
//! - [`batch`]: jobs submitted together and followed as one ([`batch::Batch`]);
//! - [`view`]: the public Job JSON (HTTP answers, SSE events and webhook bodies alike).

pub mod batch;
pub mod codes;
pub mod formats;
pub mod job;
pub mod metadata;
pub mod options;
pub mod priority;
pub mod status;
pub mod steps;
pub mod tenant;
pub mod view;

pub use codes::ErrorCode;
pub use job::{
    AttemptError, InputFile, JobRecord, Lease, NewJob, PartFile, ResultFile, ResultParts, Sealed,
    now_micros,
};
pub use metadata::Metadata;
pub use options::ExportOptions;
pub use priority::Priority;
pub use status::JobStatus;
pub use steps::{Step, StepStatus};
pub use tenant::Tenant;
