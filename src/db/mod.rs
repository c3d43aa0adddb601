//! Everything that touches a server connection.

pub mod blocking;
pub mod connect;
pub mod conninfo;
pub mod ident;
pub mod lock;
pub mod passfile;
pub mod retry;
pub mod server;
pub mod settings;
pub mod tls;

pub use connect::{ConnectError, connect};
pub use ident::{quote_ident, quote_literal};
pub use settings::{ConnectionSettings, Environment, SettingsError, resolve};
