//! Parsing of connection strings in libpq's two forms, URL and `key=value`,
//! with libpq's rules: a parameter given twice keeps its later value, empty
//! URL parts are left unset, query parameters override the URL's authority.
//! Errors never quote a value or any text that could hold a password.

use std::collections::BTreeMap;

use thiserror::Error;

/// A parameter libpq knows, the variable it falls back to, and the libpq
/// release that introduced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyword {
    pub name: &'static str,
    pub variable: Option<&'static str>,
    pub since: u8,
}

const fn keyword(name: &'static str, variable: Option<&'static str>, since: u8) -> Keyword {
    Keyword {
        name,
        variable,
        since,
    }
}

/// Every connection parameter of libpq up to release 18, in libpq's order.
pub const KEYWORDS: &[Keyword] = &[
    keyword("service", Some("PGSERVICE"), 9),
    keyword("user", Some("PGUSER"), 9),
    keyword("password", Some("PGPASSWORD"), 9),
    keyword("passfile", Some("PGPASSFILE"), 10),
    keyword("channel_binding", Some("PGCHANNELBINDING"), 13),
    keyword("connect_timeout", Some("PGCONNECT_TIMEOUT"), 9),
    keyword("dbname", Some("PGDATABASE"), 9),
    keyword("host", Some("PGHOST"), 9),
    keyword("hostaddr", Some("PGHOSTADDR"), 9),
    keyword("port", Some("PGPORT"), 9),
    keyword("client_encoding", Some("PGCLIENTENCODING"), 9),
    keyword("options", Some("PGOPTIONS"), 9),
    keyword("application_name", Some("PGAPPNAME"), 9),
    keyword("fallback_application_name", None, 9),
    keyword("keepalives", None, 9),
    keyword("keepalives_idle", None, 9),
    keyword("keepalives_interval", None, 9),
    keyword("keepalives_count", None, 9),
    keyword("tcp_user_timeout", None, 12),
    keyword("sslmode", Some("PGSSLMODE"), 9),
    keyword("sslcompression", Some("PGSSLCOMPRESSION"), 9),
    keyword("sslcert", Some("PGSSLCERT"), 9),
    keyword("sslkey", Some("PGSSLKEY"), 9),
    keyword("sslcertmode", Some("PGSSLCERTMODE"), 16),
    keyword("sslpassword", None, 13),
    keyword("sslrootcert", Some("PGSSLROOTCERT"), 9),
    keyword("sslcrl", Some("PGSSLCRL"), 9),
    keyword("sslcrldir", Some("PGSSLCRLDIR"), 14),
    keyword("sslsni", Some("PGSSLSNI"), 14),
    keyword("requirepeer", Some("PGREQUIREPEER"), 9),
    keyword("require_auth", Some("PGREQUIREAUTH"), 16),
    keyword(
        "ssl_min_protocol_version",
        Some("PGSSLMINPROTOCOLVERSION"),
        13,
    ),
    keyword(
        "ssl_max_protocol_version",
        Some("PGSSLMAXPROTOCOLVERSION"),
        13,
    ),
    keyword("sslnegotiation", Some("PGSSLNEGOTIATION"), 17),
    keyword("sslkeylogfile", Some("PGSSLKEYLOGFILE"), 18),
    keyword("min_protocol_version", Some("PGMINPROTOCOLVERSION"), 18),
    keyword("max_protocol_version", Some("PGMAXPROTOCOLVERSION"), 18),
    keyword("gssencmode", Some("PGGSSENCMODE"), 12),
    keyword("krbsrvname", Some("PGKRBSRVNAME"), 9),
    keyword("gsslib", Some("PGGSSLIB"), 9),
    keyword("gssdelegation", Some("PGGSSDELEGATION"), 16),
    keyword("replication", None, 9),
    keyword("target_session_attrs", Some("PGTARGETSESSIONATTRS"), 10),
    keyword("load_balance_hosts", Some("PGLOADBALANCEHOSTS"), 16),
    keyword("scram_client_key", None, 18),
    keyword("scram_server_key", None, 18),
    keyword("oauth_issuer", None, 18),
    keyword("oauth_client_id", None, 18),
    keyword("oauth_client_secret", None, 18),
    keyword("oauth_scope", None, 18),
];

/// The keyword called `name`.
pub fn find_keyword(name: &str) -> Option<&'static Keyword> {
    KEYWORDS.iter().find(|keyword| keyword.name == name)
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConninfoError {
    #[error("the connection URL is malformed: {0}")]
    MalformedUrl(String),
    #[error("the connection string is malformed: {0}")]
    MalformedKeyValue(String),
    #[error(
        "the connection string is neither a postgresql:// URL nor key=value pairs; \
         check the URL's scheme (postgresql:// or postgres://), or write dbname=NAME to name only a database"
    )]
    Unrecognised,
    #[error(
        "the connection URL has an invalid %-escape in its {0}: write %XX with two hex digits, and never %00"
    )]
    BadPercentEscape(&'static str),
    #[error("the connection URL's {0} is not valid UTF-8 once %-escapes are decoded")]
    NotUtf8(&'static str),
    #[error("unknown connection parameter {}{}", shown_name(.name), suggestion_text(.suggestion))]
    UnknownParameter {
        name: String,
        suggestion: Option<&'static str>,
    },
}

/// A parameter name is shown only when it looks like one (lower-case
/// letters and underscores, as all of libpq's): a misplaced fragment of a
/// URL could be part of a password.
fn shown_name(name: &str) -> String {
    let looks_like_a_name = !name.is_empty()
        && name.len() <= 40
        && name.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    if looks_like_a_name {
        format!("\"{name}\"")
    } else {
        "(its name is not shown: it does not look like a parameter name and may hold a secret)"
            .to_owned()
    }
}

fn suggestion_text(suggestion: &Option<&'static str>) -> String {
    match suggestion {
        Some(name) => format!(" (did you mean \"{name}\"?)"),
        None => "; the parameters are libpq's, listed in README \"Connecting\"".to_owned(),
    }
}

/// A fragment of connection text made safe to print: what follows
/// `password` is cut, and the password of anything shaped like
/// `user:password@host` is hidden.
pub fn redact(text: &str) -> String {
    let cut = match text.to_ascii_lowercase().find("password") {
        Some(at) => format!("{}password…", &text[..at]),
        None => text.to_owned(),
    };
    let Some(at) = cut.find('@') else {
        return cut;
    };
    let before = &cut[..at];
    let userinfo_start = before.rfind(['/', ' ', '\t']).map_or(0, |i| i + 1);
    match before[userinfo_start..].find(':') {
        Some(colon) => format!("{}:…{}", &cut[..userinfo_start + colon], &cut[at..]),
        None => cut,
    }
}

/// Parameters named in a connection string, by libpq name; a later value
/// replaced an earlier one.
pub type Parameters = BTreeMap<&'static str, String>;

const URL_SCHEMES: [&str; 2] = ["postgresql://", "postgres://"];

/// Parses either form: a string starting with `postgresql://` or
/// `postgres://` is a URL; a string holding `=` is `key=value` pairs.
pub fn parse(text: &str) -> Result<Parameters, ConninfoError> {
    if let Some(rest) = strip_scheme(text) {
        return parse_url(rest);
    }
    if !text.contains('=') {
        return Err(ConninfoError::Unrecognised);
    }
    parse_key_values(text)
}

fn strip_scheme(text: &str) -> Option<&str> {
    URL_SCHEMES
        .iter()
        .find_map(|scheme| text.strip_prefix(scheme))
}

/// Stores a value under its keyword, as libpq's conninfo_storeval:
/// `requiressl` is the old spelling of `sslmode`.
fn store(params: &mut Parameters, name: &str, value: String) -> Result<(), ConninfoError> {
    let (name, value) = match name {
        "requiressl" if value.starts_with('1') => ("sslmode", "require".to_owned()),
        "requiressl" => ("sslmode", "prefer".to_owned()),
        other => (other, value),
    };
    let Some(keyword) = find_keyword(name) else {
        let names: Vec<&str> = KEYWORDS.iter().map(|keyword| keyword.name).collect();
        return Err(ConninfoError::UnknownParameter {
            name: name.to_owned(),
            suggestion: crate::suggest::did_you_mean(name, &names),
        });
    };
    params.insert(keyword.name, value);
    Ok(())
}

fn parse_key_values(text: &str) -> Result<Parameters, ConninfoError> {
    let mut params = Parameters::new();
    let mut chars = text.chars().peekable();
    let is_space = |c: &char| c.is_ascii_whitespace() || *c == '\x0b';
    loop {
        while chars.next_if(is_space).is_some() {}
        if chars.peek().is_none() {
            return Ok(params);
        }
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !is_space(c)) {
            name.push(c);
        }
        while chars.next_if(is_space).is_some() {}
        if chars.next() != Some('=') {
            return Err(ConninfoError::MalformedKeyValue(format!(
                "{} is not followed by \"=\" (expected key=value pairs or a postgresql:// URL)",
                match shown_name(&name) {
                    shown if shown.starts_with('"') => format!("the word {shown}"),
                    _ => "a word".to_owned(),
                }
            )));
        }
        while chars.next_if(is_space).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(ConninfoError::MalformedKeyValue(format!(
                            "the quoted value of {} has no closing quote",
                            shown_name(&name)
                        )));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !is_space(c)) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        store(&mut params, &name, value)?;
    }
}

/// `[user[:password]@][host][:port][,host[:port]...][/dbname][?name=value&...]`,
/// split the way libpq splits it: the user info ends at the first `@`.
fn parse_url(rest: &str) -> Result<Parameters, ConninfoError> {
    let mut params = Parameters::new();
    let after_userinfo = parse_userinfo(rest, &mut params)?;
    // An '@' that did not end a user info (a password holding '/' or '?'
    // unencoded): what follows may be part of that password.
    let misplaced_at = after_userinfo.len() == rest.len() && rest.contains('@');
    let (hosts, ports, after_hosts) = split_host_list(after_userinfo)?;
    if !hosts.is_empty() {
        params.insert("host", decode(&hosts, "host")?);
    }
    if !ports.is_empty() {
        params.insert("port", decode(&ports, "port")?);
    }
    let query = match after_hosts.strip_prefix('/') {
        // libpq would read "user:pa/ss@host" as host "user", port "pa" and
        // database "ss@host", then print them in its errors: refused, so no
        // part of a password reaches a message.
        Some(path)
            if path
                .split('?')
                .next()
                .is_some_and(|path| path.contains('@')) =>
        {
            return Err(ConninfoError::MalformedUrl(
                "an \"@\" follows the host: percent-encode '/', '@' and '?' in the user name and password (%2F, %40, %3F)".to_owned(),
            ));
        }
        Some(path) => {
            let (dbname, query) = match path.split_once('?') {
                Some((dbname, query)) => (dbname, Some(query)),
                None => (path, None),
            };
            // Empty leaves it unset, so that PGDATABASE still applies.
            if !dbname.is_empty() {
                params.insert("dbname", decode(dbname, "database name")?);
            }
            query
        }
        None => after_hosts.strip_prefix('?'),
    };
    if let Some(query) = query {
        parse_query(query, &mut params, misplaced_at)?;
    }
    Ok(params)
}

/// `user[:password]@`, when an '@' comes before any '/': the user name
/// ends at the first ':' or '@', the password at the first '@'. Empty parts
/// stay unset. Returns the text after the '@'.
fn parse_userinfo<'a>(rest: &'a str, params: &mut Parameters) -> Result<&'a str, ConninfoError> {
    let Some(at) = rest
        .find(['@', '/'])
        .filter(|at| rest.as_bytes()[*at] == b'@')
    else {
        return Ok(rest);
    };
    let userinfo = &rest[..at];
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (user, Some(password)),
        None => (userinfo, None),
    };
    if !user.is_empty() {
        params.insert("user", decode(user, "user name")?);
    }
    if let Some(password) = password.filter(|password| !password.is_empty()) {
        params.insert("password", decode(password, "password")?);
    }
    Ok(&rest[at + 1..])
}

/// `name=value&...`, stored after the URL's other parts, so that they
/// override them. As libpq: one trailing '&' ends the query; an empty pair
/// elsewhere is a parameter with no "=".
fn parse_query(
    query: &str,
    params: &mut Parameters,
    hide_names: bool,
) -> Result<(), ConninfoError> {
    let query = query.strip_suffix('&').unwrap_or(query);
    if query.is_empty() {
        return Ok(());
    }
    for pair in query.split('&') {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(ConninfoError::MalformedUrl(
                "a query parameter has no \"=\" (expected name=value)".to_owned(),
            ));
        };
        let name = decode(name, "query")?;
        if value.contains('=') {
            return Err(ConninfoError::MalformedUrl(format!(
                "the query parameter {} has a second \"=\": write it as %3D",
                shown_name(&name)
            )));
        }
        let value = decode(value, "query")?;
        let stored = if name == "ssl" && value == "true" {
            // JDBC's spelling, which libpq accepts too.
            store(params, "sslmode", "require".to_owned())
        } else {
            store(params, &name, value)
        };
        match stored {
            Err(ConninfoError::UnknownParameter { .. }) if hide_names => {
                return Err(ConninfoError::MalformedUrl(
                    "an unknown query parameter follows an \"@\" that ends no user name: percent-encode '/', '@' and '?' in the user name and password (%2F, %40, %3F)".to_owned(),
                ));
            }
            other => other?,
        }
    }
    Ok(())
}

/// The comma-separated `host[:port]` list, joined back into libpq's `host`
/// and `port` values (empty when no host or no port was written), and the
/// text after it.
fn split_host_list(text: &str) -> Result<(String, String, &str), ConninfoError> {
    let (mut hosts, mut ports) = (String::new(), String::new());
    let mut rest = text;
    loop {
        let host_end;
        if let Some(bracketed) = rest.strip_prefix('[') {
            let Some(close) = bracketed.find(']') else {
                return Err(ConninfoError::MalformedUrl(
                    "an IPv6 address has no closing \"]\"".to_owned(),
                ));
            };
            if close == 0 {
                return Err(ConninfoError::MalformedUrl(
                    "an IPv6 address between \"[\" and \"]\" is empty".to_owned(),
                ));
            }
            hosts.push_str(&bracketed[..close]);
            rest = &bracketed[close + 1..];
            if !rest.is_empty() && !rest.starts_with([':', '/', '?', ',']) {
                return Err(ConninfoError::MalformedUrl(
                    "unexpected text after an IPv6 address (expected \":\" or \"/\")".to_owned(),
                ));
            }
            host_end = 0;
        } else {
            host_end = rest.find([':', '/', '?', ',']).unwrap_or(rest.len());
            hosts.push_str(&rest[..host_end]);
        }
        rest = &rest[host_end..];
        if let Some(after_colon) = rest.strip_prefix(':') {
            let port_end = after_colon
                .find(['/', '?', ','])
                .unwrap_or(after_colon.len());
            ports.push_str(&after_colon[..port_end]);
            rest = &after_colon[port_end..];
        }
        match rest.strip_prefix(',') {
            Some(next) => {
                hosts.push(',');
                ports.push(',');
                rest = next;
            }
            None => return Ok((hosts, ports, rest)),
        }
    }
}

/// Percent-decoding with libpq's strictness: `%` must be followed by two hex
/// digits, and `%00` is refused.
fn decode(text: &str, part: &'static str) -> Result<String, ConninfoError> {
    let bytes = text.as_bytes();
    for (index, _) in text.match_indices('%') {
        let hex = bytes.get(index + 1..index + 3);
        let valid = hex.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit) && hex != b"00");
        if !valid {
            return Err(ConninfoError::BadPercentEscape(part));
        }
    }
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|decoded| decoded.into_owned())
        .map_err(|_| ConninfoError::NotUtf8(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(params: &'a Parameters, key: &str) -> Option<&'a str> {
        params.get(key).map(String::as_str)
    }

    #[test]
    fn full_url() {
        let p = parse("postgresql://app:p%40ss@db.example.com:6432/shop?sslmode=verify-full&application_name=x").unwrap();
        assert_eq!(get(&p, "user"), Some("app"));
        assert_eq!(get(&p, "password"), Some("p@ss"));
        assert_eq!(get(&p, "host"), Some("db.example.com"));
        assert_eq!(get(&p, "port"), Some("6432"));
        assert_eq!(get(&p, "dbname"), Some("shop"));
        assert_eq!(get(&p, "sslmode"), Some("verify-full"));
        assert_eq!(get(&p, "application_name"), Some("x"));
    }

    #[test]
    fn url_with_socket_and_ipv6() {
        let p = parse("postgres://%2Fvar%2Frun%2Fpostgresql:5433/db").unwrap();
        assert_eq!(get(&p, "host"), Some("/var/run/postgresql"));
        let p = parse("postgres://u@[::1]:5432").unwrap();
        assert_eq!(get(&p, "host"), Some("::1"));
        assert_eq!(get(&p, "dbname"), None);
        let p = parse("postgres:///db?host=/tmp&port=5499").unwrap();
        assert_eq!(get(&p, "host"), Some("/tmp"));
        assert_eq!(get(&p, "port"), Some("5499"));
    }

    #[test]
    fn several_hosts_keep_their_ports_in_order() {
        let p = parse("postgresql://a:1,[::1]:2,c/db").unwrap();
        assert_eq!(get(&p, "host"), Some("a,::1,c"));
        assert_eq!(get(&p, "port"), Some("1,2,"));
        let p = parse("host=a,b port=1,2").unwrap();
        assert_eq!(get(&p, "host"), Some("a,b"));
    }

    #[test]
    fn the_user_info_ends_at_the_first_at_sign() {
        let p = parse("postgres://u:a@b@h/db").unwrap();
        assert_eq!(get(&p, "password"), Some("a"));
        assert_eq!(get(&p, "host"), Some("b@h"));
    }

    #[test]
    fn empty_url_parts_stay_unset() {
        let p = parse("postgresql://alice:@host:/").unwrap();
        assert_eq!(get(&p, "user"), Some("alice"));
        assert_eq!(get(&p, "password"), None);
        assert_eq!(get(&p, "port"), None);
        assert_eq!(get(&p, "dbname"), None);
    }

    #[test]
    fn later_values_win_and_query_overrides_the_authority() {
        let p = parse("dbname=a dbname=b").unwrap();
        assert_eq!(get(&p, "dbname"), Some("b"));
        let p = parse("postgresql://u@localhost/db?host=/cloudsql/x&user=v&dbname=e").unwrap();
        assert_eq!(get(&p, "host"), Some("/cloudsql/x"));
        assert_eq!(get(&p, "user"), Some("v"));
        assert_eq!(get(&p, "dbname"), Some("e"));
    }

    #[test]
    fn key_values_with_quotes_and_escapes() {
        let p =
            parse(r"host=/tmp  port = 5432 user='my user' password='it\'s' dbname=a\ b").unwrap();
        assert_eq!(get(&p, "host"), Some("/tmp"));
        assert_eq!(get(&p, "port"), Some("5432"));
        assert_eq!(get(&p, "user"), Some("my user"));
        assert_eq!(get(&p, "password"), Some("it's"));
        assert_eq!(get(&p, "dbname"), Some("a b"));
        let p = parse("host='' port=''").unwrap();
        assert_eq!(get(&p, "host"), Some(""));
        assert_eq!(get(&p, "port"), Some(""));
        // As libpq: blanks after "=" are skipped, so the next pair is the value.
        let p = parse("host= port=5").unwrap();
        assert_eq!(get(&p, "host"), Some("port=5"));
    }

    #[test]
    fn old_and_jdbc_spellings_of_sslmode() {
        assert_eq!(
            get(&parse("requiressl=1").unwrap(), "sslmode"),
            Some("require")
        );
        let p = parse("postgres://h/db?ssl=true").unwrap();
        assert_eq!(get(&p, "sslmode"), Some("require"));
    }

    #[test]
    fn errors_never_echo_values() {
        let secret = "hunter2-secret";
        for text in [
            format!("postgres://u:{secret}@h/db?passwrd={secret}"),
            format!("host=h passwd={secret}"),
            format!("host=h password='{secret}"),
            format!("postgres://u:{secret}@h/db?password"),
            format!("postgres://u:{secret}%zz@h/db"),
            format!("postgress://alice:{secret}@host/db"),
            format!("postgresql//alice:{secret}@host/db?sslmode=require"),
            format!("postgres://u:{secret}@h/db?{secret}=x"),
            format!("postgres://u@h/db?password={secret}=x"),
            format!("postgres://u:{secret}/x@h/db"),
            format!("postgres://user:abc?{secret}=foo/bar@host/db"),
        ] {
            let err = parse(&text).unwrap_err().to_string();
            assert!(!err.contains(secret), "{err}");
        }
    }

    #[test]
    fn unknown_parameter_suggests_the_near_one() {
        let err = parse("postgres://h/db?sslmdoe=require").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown connection parameter \"sslmdoe\" (did you mean \"sslmode\"?)"
        );
    }

    #[test]
    fn a_password_read_as_a_query_parameter_name_is_not_shown() {
        let err = parse("postgres://user:abc?secretpart=foo/bar@host/db").unwrap_err();
        assert!(!err.to_string().contains("secretpart"), "{err}");
        let p = parse("postgresql://host/db?user=alice@myserver").unwrap();
        assert_eq!(get(&p, "user"), Some("alice@myserver"));
    }

    #[test]
    fn redaction_hides_passwords_in_fragments() {
        assert_eq!(redact("5432password=s3cret"), "5432password…");
        assert_eq!(
            redact("postgresql//alice:s3cret@host/db"),
            "postgresql//alice:…@host/db"
        );
        assert_eq!(redact("x PASSWORD y"), "x password…");
        assert_eq!(redact("verify-full"), "verify-full");
    }

    #[test]
    fn a_bare_word_is_refused() {
        assert_eq!(parse("mydb"), Err(ConninfoError::Unrecognised));
        assert_eq!(
            parse("postgress://alice:x@host/db"),
            Err(ConninfoError::Unrecognised)
        );
    }
}
