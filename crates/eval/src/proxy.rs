//! The proxy the judge's HTTP client goes through, set explicitly from the environment as curl
//! and huggingface_hub read it: `HTTPS_PROXY` for https URLs, `HTTP_PROXY` for http ones,
//! `ALL_PROXY` for either (upper or lower case), unless `NO_PROXY` names the host — a
//! comma-separated list of host names and domain suffixes, or `*` for every host. ureq's own
//! environment reading knows no `NO_PROXY`, so it is turned off.

use anyhow::{Context, Result};

/// The proxy for requests to `url`, reading variables through `var`; `None` for a direct
/// connection.
pub fn proxy_for(url: &str, var: impl Fn(&str) -> Option<String>) -> Result<Option<ureq::Proxy>> {
    let lookup = |name: &str| var(name).or_else(|| var(&name.to_ascii_lowercase())).filter(|v| !v.is_empty());
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let host = host_of(rest);
    if lookup("NO_PROXY").is_some_and(|list| bypasses(&list, &host)) {
        return Ok(None);
    }
    let chosen = if scheme.eq_ignore_ascii_case("https") { "HTTPS_PROXY" } else { "HTTP_PROXY" };
    let Some((name, proxy)) = [chosen, "ALL_PROXY"].into_iter().find_map(|name| lookup(name).map(|value| (name, value))) else {
        return Ok(None);
    };
    ureq::Proxy::new(&proxy).map(Some).with_context(|| format!("{name}: {proxy:?} is not a proxy address"))
}

/// The host of a URL without its scheme: no user, port or path.
fn host_of(rest: &str) -> String {
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host_port.split(':').next().unwrap_or(host_port),
    };
    host.to_ascii_lowercase()
}

/// Whether `NO_PROXY`'s `list` names `host`: `*`, the host itself, or a domain it is under
/// (`example.com` and `.example.com` both cover `api.example.com`).
fn bypasses(list: &str, host: &str) -> bool {
    list.split(',').map(|entry| entry.trim().trim_start_matches('.').to_ascii_lowercase()).any(|entry| {
        let entry = entry.split(':').next().unwrap_or_default().to_owned();
        !entry.is_empty() && (entry == "*" || host == entry || host.ends_with(&format!(".{entry}")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    }

    /// The proxy `url` goes through, and the expected one at `address`.
    fn proxy(url: &str, vars: &'static [(&'static str, &'static str)]) -> Option<ureq::Proxy> {
        proxy_for(url, with(vars)).unwrap()
    }

    fn at(address: &str) -> Option<ureq::Proxy> {
        Some(ureq::Proxy::new(address).unwrap())
    }

    #[test]
    fn the_scheme_picks_the_variable_and_all_proxy_covers_both() {
        let vars = &[("HTTPS_PROXY", "http://secure.proxy:3128"), ("http_proxy", "http://plain.proxy:8080")];
        assert_eq!(proxy("https://api.openai.com/v1", vars), at("http://secure.proxy:3128"));
        assert_eq!(proxy("http://judge.local:8000/v1", vars), at("http://plain.proxy:8080"));
        assert_eq!(proxy("https://x.org", &[("ALL_PROXY", "http://all:1")]), at("http://all:1"));
        assert_eq!(proxy("https://x.org", &[]), None, "no variable: a direct connection");
    }

    #[test]
    fn no_proxy_names_hosts_and_domains() {
        let vars = &[("HTTPS_PROXY", "http://p:1"), ("HTTP_PROXY", "http://p:1"), ("NO_PROXY", "localhost, .internal.net,10.0.0.5:8000")];
        assert_eq!(proxy("http://localhost:8000/v1", vars), None);
        assert_eq!(proxy("https://judge.internal.net/v1", vars), None);
        assert_eq!(proxy("https://internal.net", vars), None);
        assert_eq!(proxy("http://10.0.0.5:8000/v1", vars), None);
        assert_eq!(proxy("https://user:pw@notinternal.net/v1", vars), at("http://p:1"));
        assert_eq!(proxy("https://api.openai.com", &[("HTTPS_PROXY", "http://p:1"), ("no_proxy", "*")]), None);
    }

    #[test]
    fn a_bad_proxy_address_names_its_variable() {
        let err = format!("{:#}", proxy_for("https://x.org", with(&[("HTTPS_PROXY", "ftp://p:1")])).unwrap_err());
        assert!(err.starts_with("HTTPS_PROXY: \"ftp://p:1\" is not a proxy address"), "{err}");
    }
}
