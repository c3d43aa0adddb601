//! What a connected server is: its version, role and session.

use postgres::Client;

/// The server and session as `pgm ping` describes them.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub version: String,
    pub user: String,
    pub database: String,
    pub in_recovery: bool,
    /// The TLS version, or "off".
    pub tls: String,
    pub application_name: String,
}

pub fn describe(client: &mut Client) -> Result<ServerInfo, postgres::Error> {
    let row = client.query_one(
        "SELECT current_setting('server_version'), current_user::text, current_database()::text, pg_is_in_recovery(), \
                coalesce((SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl), 'off'), \
                current_setting('application_name')",
        &[],
    )?;
    Ok(ServerInfo {
        version: row.get(0),
        user: row.get(1),
        database: row.get(2),
        in_recovery: row.get(3),
        tls: row.get(4),
        application_name: row.get(5),
    })
}

/// True on a standby: nothing may be written there.
pub fn in_recovery(client: &mut Client) -> Result<bool, postgres::Error> {
    Ok(client.query_one("SELECT pg_is_in_recovery()", &[])?.get(0))
}

/// `server_version_num`, such as 150004.
pub fn version_num(client: &mut Client) -> Result<i32, postgres::Error> {
    Ok(client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])?
        .get(0))
}
