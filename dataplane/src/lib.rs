//! shardcast-dataplane: the per-core executors. Sockets, batched UDP I/O and the run loop that
//! applies command batches and forwards packets. All `unsafe` lives in [`io`], each block with a
//! `// SAFETY:` note.

pub mod io;
pub mod plane;
pub mod ring;
pub mod runtime;
pub mod socket;
pub mod steering;
mod sync;

pub use plane::{CoreBatch, CoreEvent, CoreHandle, CoreOp, CoreReply, CoreStatsSnapshot, DataPlaneConfig};
pub use runtime::DataPlane;
