//! Parsing of connection strings in libpq's two forms, URL and `key=value`,
//! into parameter pairs. Values are never echoed in errors: any of them may be
//! a password.

use std::collections::BTreeMap;

use thiserror::Error;

/// The parameters pgm understands, with libpq's names.
pub const KNOWN_PARAMETERS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
    "fallback_application_name",
    "options",
];

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConninfoError {
    #[error("the connection URL is malformed: {0}")]
    MalformedUrl(&'static str),
    #[error("the connection string is malformed: {0}")]
    MalformedKeyValue(String),
    #[error("the connection string has an invalid %-escape")]
    BadPercentEscape,
    #[error("unknown connection parameter \"{name}\"{}", suggestion_text(.suggestion))]
    UnknownParameter {
        name: String,
        suggestion: Option<String>,
    },
    #[error("the connection parameter \"{0}\" is given twice")]
    Duplicate(String),
    #[error(
        "several hosts in one connection string are not supported; give pgm the primary's address"
    )]
    SeveralHosts,
}

fn suggestion_text(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(name) => format!(" (did you mean \"{name}\"?)"),
        None => format!("; known parameters: {}", KNOWN_PARAMETERS.join(", ")),
    }
}

/// Parameters named in a connection string, by libpq name.
pub type Parameters = BTreeMap<&'static str, String>;

/// Parses either form: a string starting with `postgres://` or `postgresql://`
/// is a URL, anything else is `key=value` pairs.
pub fn parse(text: &str) -> Result<Parameters, ConninfoError> {
    let trimmed = text.trim();
    match strip_scheme(trimmed) {
        Some(rest) => parse_url(rest),
        None => parse_key_values(trimmed),
    }
}

fn strip_scheme(text: &str) -> Option<&str> {
    ["postgresql://", "postgres://"]
        .iter()
        .find_map(|scheme| text.strip_prefix(scheme))
}

fn insert(params: &mut Parameters, name: &str, value: String) -> Result<(), ConninfoError> {
    let Some(known) = KNOWN_PARAMETERS.iter().find(|known| **known == name) else {
        return Err(ConninfoError::UnknownParameter {
            name: name.to_owned(),
            suggestion: crate::suggest::did_you_mean(name, KNOWN_PARAMETERS).map(str::to_owned),
        });
    };
    if params.insert(known, value).is_some() {
        return Err(ConninfoError::Duplicate(name.to_owned()));
    }
    Ok(())
}

fn parse_url(rest: &str) -> Result<Parameters, ConninfoError> {
    let mut params = Parameters::new();
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (before_query, None),
    };
    // The password may itself hold '@' when percent-encoding was forgotten:
    // split at the last one, as libpq does.
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        if !user.is_empty() {
            insert(&mut params, "user", percent_decode(user)?)?;
        }
        if let Some(password) = password {
            insert(&mut params, "password", percent_decode(password)?)?;
        }
    }
    if hostport.contains(',') {
        return Err(ConninfoError::SeveralHosts);
    }
    let (host, port) = split_host_port(hostport)?;
    if !host.is_empty() {
        insert(&mut params, "host", percent_decode(host)?)?;
    }
    if let Some(port) = port {
        insert(&mut params, "port", percent_decode(port)?)?;
    }
    if path.is_some_and(|path| path.contains('@')) {
        return Err(ConninfoError::MalformedUrl(
            "'@' after the host: percent-encode '/', '@' and '?' in the user name and password (%2F, %40, %3F)",
        ));
    }
    if let Some(path) = path.filter(|path| !path.is_empty()) {
        insert(&mut params, "dbname", percent_decode(path)?)?;
    }
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        let Some((name, value)) = pair.split_once('=') else {
            return Err(ConninfoError::MalformedUrl(
                "a query parameter has no '=' (expected name=value)",
            ));
        };
        let name = percent_decode(name)?;
        let name = if name == "ssl" && value == "true" {
            // JDBC's spelling, which libpq accepts too.
            insert(&mut params, "sslmode", "require".to_owned())?;
            continue;
        } else {
            name
        };
        insert(&mut params, &name, percent_decode(value)?)?;
    }
    Ok(params)
}

fn split_host_port(hostport: &str) -> Result<(&str, Option<&str>), ConninfoError> {
    if let Some(bracketed) = hostport.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(ConninfoError::MalformedUrl(
                "an IPv6 address lacks its closing ']'",
            ));
        };
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(ConninfoError::MalformedUrl(
                    "unexpected text after an IPv6 address (expected :port)",
                )),
            },
        };
    }
    Ok(match hostport.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    })
}

fn percent_decode(text: &str) -> Result<String, ConninfoError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text
                .get(index + 1..index + 3)
                .ok_or(ConninfoError::BadPercentEscape)?;
            let byte = u8::from_str_radix(hex, 16).map_err(|_| ConninfoError::BadPercentEscape)?;
            out.push(byte);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ConninfoError::BadPercentEscape)
}

fn parse_key_values(text: &str) -> Result<Parameters, ConninfoError> {
    let mut params = Parameters::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(params);
        }
        let mut name = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            name.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(ConninfoError::MalformedKeyValue(format!(
                "missing \"=\" after \"{name}\" (expected key=value pairs or a postgres:// URL)"
            )));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(ConninfoError::MalformedKeyValue(format!(
                            "unterminated quoted value for \"{name}\""
                        )));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if name == "host" && value.contains(',') {
            return Err(ConninfoError::SeveralHosts);
        }
        insert(&mut params, &name, value)?;
    }
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
    fn unencoded_at_in_password_splits_at_the_last_at() {
        let p = parse("postgres://u:a@b@h/db").unwrap();
        assert_eq!(get(&p, "password"), Some("a@b"));
        assert_eq!(get(&p, "host"), Some("h"));
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
            format!("postgres://u:{secret}@a,b/db"),
            format!("host=h password={secret} password={secret}"),
            format!("postgres://u:{secret}/x@h/db"),
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
    fn several_hosts_are_refused() {
        assert_eq!(parse("postgres://a,b/db"), Err(ConninfoError::SeveralHosts));
        assert_eq!(parse("host=a,b"), Err(ConninfoError::SeveralHosts));
    }
}
