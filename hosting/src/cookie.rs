//! Reading one cookie from a request's `Cookie` headers (the CSRF token, the `ARRAffinity`
//! instance pin): every header, every `name=value` pair, names compared exactly.

use http::HeaderMap;
use http::header::COOKIE;

/// The value of the cookie `name`, from the first `Cookie` header pair that has it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value.to_owned())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn a_cookie_is_found_among_others_and_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_static("a=1; ARRAffinitySameSite=twin"),
        );
        headers.append(
            COOKIE,
            HeaderValue::from_static("ARRAffinity=abc; csrf=t0k"),
        );
        assert_eq!(cookie(&headers, "ARRAffinity").as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "csrf").as_deref(), Some("t0k"));
        assert_eq!(
            cookie(&headers, "ARRAffinitySameSite").as_deref(),
            Some("twin")
        );
        assert_eq!(cookie(&headers, "missing"), None);
    }
}
