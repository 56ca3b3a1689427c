//! Step 5 of a volume's path: the volume itself. Its files ([`files`]), its mount ([`mount`],
//! [`mountinfo`]), where both live ([`layout`]: this driver's own, or the Go driver's for the
//! volumes adopted from it, [`csi_lib`]), what survives a restart ([`state`]) and the operations
//! kubelet asks for ([`manager`]).

pub mod csi_lib;
pub mod files;
pub mod id;
pub mod layout;
pub mod manager;
pub mod mount;
pub mod mountinfo;
pub mod state;

pub use id::VolumeId;
pub use manager::{
    ManagerConfig, PublishCall, Readiness, RequestMode, VolumeError, VolumeManager, VolumeSnapshot,
};
