//! Everything that touches a server connection.

pub(crate) mod blocking;
pub mod connect;
mod conninfo;
pub mod ident;
pub(crate) mod lock;
mod passfile;
pub mod pooler;
pub(crate) mod retry;
pub mod server;
pub(crate) mod service;
pub mod settings;
pub mod template;
mod tls;

pub use connect::{ConnectError, Connected, connect, open, open_for};
pub use conninfo::redact;
pub use ident::{quote_ident, quote_literal};
pub use settings::TargetSessionAttrs;
pub use settings::{ConnectionSettings, Environment, resolve};
pub use template::ConnectionTemplate;
