//! `search`: repositories of a registry that match a term (docker's `search`), through the
//! registry's search API, with docker's filters.

use rbuild_registry::{Client, SearchResult};

use crate::error::{EngineError, Result, ResultExt};

/// Docker's default and largest `--limit`.
pub const DEFAULT_SEARCH_LIMIT: usize = 25;

/// The registry a search term names and the term to send it: `HOST/TERM` when the first
/// part looks like a host (it has a `.` or `:`, or is `localhost`), as docker splits it;
/// Docker Hub otherwise.
pub fn search_target(term: &str) -> (String, String) {
    if let Some((first, rest)) = term.split_once('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        return (super::normalize_host(first), rest.to_owned());
    }
    ("docker.io".to_owned(), term.to_owned())
}

/// Whether `r` passes docker's search filters: `stars=N` (at least N), `is-official=BOOL`,
/// `is-automated=BOOL`.
pub fn search_filter(r: &SearchResult, filters: &[(String, String)]) -> Result<bool> {
    for (k, v) in filters {
        let bool_of = |v: &str| match v {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(EngineError::InvalidParameter(format!(
                "invalid filter '{k}={v}': expected true or false"
            ))),
        };
        let pass = match k.as_str() {
            "stars" => {
                let n: u64 = v.parse().map_err(|_| {
                    EngineError::InvalidParameter(format!(
                        "invalid filter 'stars={v}': expected a number"
                    ))
                })?;
                r.star_count >= n
            }
            "is-official" => r.is_official == bool_of(v)?,
            "is-automated" => r.is_automated == bool_of(v)?,
            _ => {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid filter '{k}'"
                )));
            }
        };
        if !pass {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Search the registry `term` names (see [`search_target`]) for at most `limit` repositories
/// (1 to 100), keeping those `filters` pass.
pub async fn search(
    client: &Client,
    term: &str,
    limit: usize,
    filters: &[(String, String)],
) -> Result<Vec<SearchResult>> {
    if !(1..=100).contains(&limit) {
        return Err(EngineError::InvalidParameter(format!(
            "limit {limit} is outside the range of [1, 100]"
        )));
    }
    // Bad filters fail before any request.
    let probe = SearchResult {
        name: String::new(),
        description: String::new(),
        star_count: 0,
        is_official: false,
        is_automated: false,
    };
    search_filter(&probe, filters)?;
    let (host, query) = search_target(term);
    let found = async {
        let reg = client.registry(&host).await?;
        reg.search(&query, limit).await
    }
    .await
    .with_context(|| format!("searching {host} for {query:?}"))?;
    let mut out = Vec::new();
    for r in found {
        if search_filter(&r, filters)? {
            out.push(r);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_term_names_the_registry_as_docker_splits_it() {
        assert_eq!(
            search_target("busybox"),
            ("docker.io".into(), "busybox".into())
        );
        assert_eq!(
            search_target("library/busybox"),
            ("docker.io".into(), "library/busybox".into())
        );
        assert_eq!(
            search_target("localhost:5000/app"),
            ("localhost:5000".into(), "app".into())
        );
        assert_eq!(
            search_target("registry.example.com/team/app"),
            ("registry.example.com".into(), "team/app".into())
        );
    }

    #[test]
    fn filters() {
        let r = SearchResult {
            name: "x".into(),
            description: String::new(),
            star_count: 10,
            is_official: true,
            is_automated: false,
        };
        let f = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert!(search_filter(&r, &f("stars", "10")).unwrap());
        assert!(!search_filter(&r, &f("stars", "11")).unwrap());
        assert!(search_filter(&r, &f("is-official", "true")).unwrap());
        assert!(!search_filter(&r, &f("is-automated", "true")).unwrap());
        assert!(search_filter(&r, &f("stars", "x")).is_err());
        assert!(search_filter(&r, &f("nope", "1")).is_err());
    }
}
