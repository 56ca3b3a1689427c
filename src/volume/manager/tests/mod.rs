//! Unit tests of the manager that run as any user: no mounts, no sockets, no cluster.

mod classification;
mod fixtures;
mod scenarios;
