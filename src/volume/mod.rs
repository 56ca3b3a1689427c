//! Step 4 of a volume's path: the volume itself. Its files ([`files`]), its mount ([`mount`],
//! [`mountinfo`]), what survives a restart ([`state`]) and the operations kubelet asks for
//! ([`manager`]).

pub mod files;
pub mod manager;
pub mod mount;
pub mod mountinfo;
pub mod state;

pub use manager::{ManagerConfig, PublishRequest, VolumeError, VolumeManager, VolumeStatus};
