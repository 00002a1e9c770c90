//! netkit: the library behind the `nk` binary.
//!
//! The binary is a thin `main`; everything it runs lives here so that integration tests,
//! benchmarks and fuzz targets reach the same code: `cmd/` (one module per subcommand), `net/`
//! (socket machinery), `wire/` (pure protocol encoding), and the shared `cli`, `exit`, `log`,
//! `signals` and `stdio` pieces.

pub mod cli;
pub mod cmd;
pub mod exit;
pub mod log;
pub mod net;
pub mod signals;
pub mod stdio;
pub mod wire;
