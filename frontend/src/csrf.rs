//! Cross-site request forgery protection for state-changing requests. Two independent checks:
//! the browser's own `Sec-Fetch-Site` / `Origin` headers must say same-origin, and HTML forms
//! must carry the token from the `csrf` cookie (double submit).

use axum::http::{HeaderMap, header};
use subtle::ConstantTimeEq;

/// The cookie and form field that carry the double-submit token.
pub const CSRF_FIELD: &str = "csrf";

/// A fresh random token (UUID v4: 122 random bits).
pub fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// True unless the browser says the request comes from another site. Requests without either
/// header (curl, scripts) pass this check; forms still need the token. `public_authority` is the
/// host the browser used: `Host`, or behind our Front Door its `X-Forwarded-Host` (Front Door
/// sends the origin's own host name as `Host`, which a browser's `Origin` never names).
pub fn same_origin(headers: &HeaderMap, public_authority: Option<&str>) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let origin_authority = origin.split_once("://").map(|(_, rest)| rest);
    matches!((origin_authority, public_authority), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

/// The token in the request's `csrf` cookie.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    hosting::cookie::cookie(headers, CSRF_FIELD)
}

/// True when the form's token matches the cookie's (constant time).
pub fn form_token_matches(headers: &HeaderMap, form_token: &str) -> bool {
    match cookie_token(headers) {
        Some(cookie) if !cookie.is_empty() => cookie.as_bytes().ct_eq(form_token.as_bytes()).into(),
        _ => false,
    }
}

/// The `Set-Cookie` value for a token; `Secure` when the page was served over HTTPS (App
/// Service terminates TLS and says so in `X-Forwarded-Proto`).
pub fn set_cookie(token: &str, headers: &HeaderMap) -> String {
    let https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let secure = if https { "; Secure" } else { "" };
    format!("{CSRF_FIELD}={token}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let fe = Some("app-fe.azurewebsites.net");
        assert!(!same_origin(
            &headers(&[("sec-fetch-site", "cross-site")]),
            fe
        ));
        assert!(!same_origin(
            &headers(&[("sec-fetch-site", "same-site")]),
            fe
        ));
        assert!(same_origin(
            &headers(&[("sec-fetch-site", "same-origin")]),
            fe
        ));
        assert!(!same_origin(
            &headers(&[("origin", "https://evil.example")]),
            fe
        ));
        assert!(same_origin(
            &headers(&[("origin", "https://app-fe.azurewebsites.net")]),
            fe
        ));
        assert!(!same_origin(&headers(&[("origin", "null")]), Some("a")));
        assert!(!same_origin(&headers(&[("origin", "https://a")]), None));
        assert!(same_origin(&HeaderMap::new(), fe));
    }

    #[test]
    fn form_tokens_must_match_the_cookie() {
        let h = headers(&[("cookie", "other=1; csrf=abc123")]);
        assert!(form_token_matches(&h, "abc123"));
        assert!(!form_token_matches(&h, "abc124"));
        assert!(!form_token_matches(&HeaderMap::new(), ""));
        assert!(!form_token_matches(&headers(&[("cookie", "csrf=")]), ""));
    }
}
