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

/// One JSON object describing the session as the server sees it: who, where,
/// how and with which session settings. The same query run through any client
/// tells whether two clients given the same connection settings arrived at
/// the same place.
pub const SESSION_FACTS_SQL: &str = "SELECT json_build_object(\
    'user', current_user, \
    'session_user', session_user, \
    'database', current_database(), \
    'server_port', current_setting('port')::int, \
    'server_address', host(inet_server_addr()), \
    'cluster_name', current_setting('cluster_name'), \
    'tls', coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false), \
    'application_name', current_setting('application_name'), \
    'in_recovery', pg_is_in_recovery(), \
    'read_only', current_setting('transaction_read_only') = 'on', \
    'time_zone', current_setting('TimeZone'), \
    'date_style', current_setting('DateStyle'), \
    'geqo', current_setting('geqo'), \
    'search_path', current_setting('search_path'), \
    'client_encoding', current_setting('client_encoding'))::text";

pub fn session_facts(client: &mut Client) -> Result<serde_json::Value, postgres::Error> {
    let text: String = client.query_one(SESSION_FACTS_SQL, &[])?.get(0);
    // The server wrote it with json_build_object.
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// True on a standby: nothing may be written there.
pub fn in_recovery(client: &mut Client) -> Result<bool, postgres::Error> {
    Ok(client
        .query_typed_one("SELECT pg_is_in_recovery()", &[])?
        .get(0))
}

/// `server_version_num`, such as 150004.
pub fn version_num(client: &mut Client) -> Result<i32, postgres::Error> {
    Ok(client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])?
        .get(0))
}
