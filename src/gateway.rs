//! An Application Gateway (v2) standing in front of the back end (`--break gateway-in-front`):
//! it answers every request 403 itself, so the app is never reached — not even by the front end.
//! Its page is also the one the gateway in front of the front end (`--front app-gateway`)
//! answers what its WAF blocks with.

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The gateway's `Server` header.
pub const GATEWAY_SERVER: &str = "Microsoft-Azure-Application-Gateway/v2";

/// The gateway's 403 body, as captured (179 bytes).
pub const GATEWAY_FORBIDDEN_PAGE: &str = "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden</h1></center>\r\n<hr><center>Microsoft-Azure-Application-Gateway/v2</center>\r\n</body>\r\n</html>\r\n";

/// The gateway: `403 Forbidden` to everyone, with its own page and `Server` header.
pub fn router() -> Router {
    Router::new().fallback(forbidden)
}

async fn forbidden() -> Response {
    forbidden_response()
}

/// The gateway's own `403 Forbidden` (also what its WAF answers in front of the front end).
pub fn forbidden_response() -> Response {
    let mut response = (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/html")],
        GATEWAY_FORBIDDEN_PAGE,
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::SERVER, HeaderValue::from_static(GATEWAY_SERVER));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_the_captured_size() {
        assert_eq!(GATEWAY_FORBIDDEN_PAGE.len(), 179);
        assert!(GATEWAY_FORBIDDEN_PAGE.contains(GATEWAY_SERVER));
    }
}
