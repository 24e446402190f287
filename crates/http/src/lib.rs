//! The HTTP agent of every network client of ours: the Hugging Face hub client
//! (entangle-checkpoint, for models and datasets) and the LLM judge (entangle-eval). Clusters
//! reach the internet through a proxy, and reach their own services (a hub mirror, a judge
//! served in-house) without one, so each agent's proxy is set explicitly from the environment as
//! curl, requests and huggingface_hub read it: `HTTPS_PROXY` for https URLs, `HTTP_PROXY` for
//! http ones, `ALL_PROXY` for either (upper or lower case), unless `NO_PROXY` names the host — a
//! comma-separated list of host names and domain suffixes, or `*` for every host. ureq's own
//! environment reading knows no `NO_PROXY`, so it is turned off.

use anyhow::{Context, Result};

/// The proxy variables, read once; [`Proxies::agent`] picks the proxy for a URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proxies {
    /// (variable name, value) of each set proxy variable: `HTTPS_PROXY`, `HTTP_PROXY`,
    /// `ALL_PROXY`, in that order.
    proxies: Vec<(&'static str, String)>,
    /// `NO_PROXY`'s host list.
    no_proxy: Option<String>,
}

impl Proxies {
    /// The proxy variables of this process's environment.
    pub fn from_env() -> Proxies {
        Proxies::from_vars(|name| std::env::var(name).ok())
    }

    /// The proxy variables `var` gives (each looked up in upper case, then lower case; empty
    /// counts as unset).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Proxies {
        let lookup = |name: &str| var(name).or_else(|| var(&name.to_ascii_lowercase())).filter(|v| !v.is_empty());
        let proxies = ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"]
            .into_iter()
            .filter_map(|name| lookup(name).map(|value| (name, value)))
            .collect();
        Proxies { proxies, no_proxy: lookup("NO_PROXY") }
    }

    /// An agent builder whose proxy is the one for requests to `url` (none where `NO_PROXY`
    /// names its host or no variable is set). Redirects to other hosts go the same way.
    pub fn agent(&self, url: &str) -> Result<ureq::AgentBuilder> {
        let builder = ureq::AgentBuilder::new().try_proxy_from_env(false);
        Ok(match self.proxy_for(url)? {
            Some(proxy) => builder.proxy(proxy),
            None => builder,
        })
    }

    /// The proxy for requests to `url`; `None` for a direct connection.
    pub fn proxy_for(&self, url: &str) -> Result<Option<ureq::Proxy>> {
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
        if self.no_proxy.as_deref().is_some_and(|list| bypasses(list, &host_of(rest))) {
            return Ok(None);
        }
        let chosen = if scheme.eq_ignore_ascii_case("https") { "HTTPS_PROXY" } else { "HTTP_PROXY" };
        let found = [chosen, "ALL_PROXY"]
            .into_iter()
            .find_map(|wanted| self.proxies.iter().find(|(name, _)| *name == wanted));
        let Some((name, proxy)) = found else { return Ok(None) };
        ureq::Proxy::new(proxy).map(Some).with_context(|| format!("{name}: {proxy:?} is not a proxy address"))
    }
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

    /// The proxy `url` goes through with these variables set.
    fn proxy(url: &str, vars: &'static [(&'static str, &'static str)]) -> Option<ureq::Proxy> {
        Proxies::from_vars(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned()))
            .proxy_for(url)
            .unwrap()
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
        assert_eq!(proxy("https://x.org", &[("HTTP_PROXY", "http://plain:1")]), None, "HTTP_PROXY is for http URLs");
        assert_eq!(proxy("https://x.org", &[("HTTPS_PROXY", "")]), None, "empty counts as unset");
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
        let proxies = Proxies::from_vars(|name| (name == "HTTPS_PROXY").then(|| "ftp://p:1".to_owned()));
        let err = format!("{:#}", proxies.proxy_for("https://x.org").unwrap_err());
        assert!(err.starts_with("HTTPS_PROXY: \"ftp://p:1\" is not a proxy address"), "{err}");
    }
}
