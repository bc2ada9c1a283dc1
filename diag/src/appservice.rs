//! What App Service's own answers look like, and what each means. App Service (or a gateway in
//! front of it) answers some requests before the app sees them: an access restriction refusing
//! the caller, a stopped app, no instance answering. This module recognises those answers from
//! the strongest signal down — the status line's reason (`403 Ip Forbidden`, `403 Site
//! Disabled`), the `x-ms-forbidden-ip` header, the `Server` header, and last the page, which
//! Premium plans can replace with custom error pages — and is the one classifier used by
//! `/diag/http`, the front end's diagnosis and `probe smoke`. The lab's emulator serves the same
//! pages.
//!
//! There is no "public network access is disabled" page: an app whose public access is
//! disabled answers its public address exactly like an access restriction (`403 Ip Forbidden`,
//! `x-ms-forbidden-ip`). So `public_access_disabled` is concluded from context
//! ([`PlatformAnswer::in_context`]): a refusal of a call whose name goes through
//! `privatelink.azurewebsites.net` reached the public address of an app with a private endpoint.

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use hosting::service_endpoint::CallerAddr;

use crate::diagnosis::Code;

/// The header in which App Service names the caller it refused, as it saw it.
pub const FORBIDDEN_IP_HEADER: &str = "x-ms-forbidden-ip";

/// What a response's head says: the status, the status line's reason phrase when it is not the
/// standard one (hyper keeps it as [`hyper::ext::ReasonPhrase`]), and the headers.
#[derive(Debug, Clone, Copy)]
pub struct ResponseHead<'a> {
    /// The status code.
    pub status: u16,
    /// A non-standard reason phrase (`Ip Forbidden`, `Site Disabled`), if any.
    pub reason: Option<&'a str>,
    /// The response headers.
    pub headers: &'a HeaderMap,
}

impl<'a> ResponseHead<'a> {
    /// The head of a response whose extensions hyper filled (reqwest keeps them).
    pub fn new(status: u16, extensions: &'a http::Extensions, headers: &'a HeaderMap) -> Self {
        Self {
            status,
            reason: reason_phrase(extensions),
            headers,
        }
    }

    fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A non-standard reason phrase from a response's extensions.
pub fn reason_phrase(extensions: &http::Extensions) -> Option<&str> {
    extensions
        .get::<hyper::ext::ReasonPhrase>()
        .and_then(|reason| std::str::from_utf8(reason.as_bytes()).ok())
}

/// Which signal a classification rests on, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// The status line's reason phrase (`403 Ip Forbidden`, `403 Site Disabled`).
    StatusLine,
    /// The `x-ms-forbidden-ip` header.
    ForbiddenIpHeader,
    /// The `Server` header (a gateway, App Service's nginx).
    ServerHeader,
    /// The page's words (the weakest: Premium plans can replace the pages).
    Page,
}

impl Signal {
    fn phrase(self) -> &'static str {
        match self {
            Self::StatusLine => "the status line",
            Self::ForbiddenIpHeader => "the x-ms-forbidden-ip header",
            Self::ServerHeader => "the Server header",
            Self::Page => "the page",
        }
    }
}

/// An answer App Service (or a gateway in front of it) gave before the app saw the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformAnswer {
    /// `access_restricted`, `public_access_disabled`, `app_stopped`, `app_unavailable` or
    /// `gateway_refused`.
    pub code: Code,
    /// The strongest signal it rests on.
    pub signal: Signal,
    /// The status line as received (`403 Ip Forbidden`).
    pub status_line: String,
    /// The caller's address as App Service saw it (`x-ms-forbidden-ip`).
    pub forbidden_ip: Option<String>,
    /// The `Server` header, when it named who answered.
    pub server: Option<String>,
}

impl PlatformAnswer {
    /// A refusal of a call whose name went through `privatelink` (`via_privatelink`) reached the
    /// public address of an app that has a private endpoint: that is `public_access_disabled`,
    /// whose next step is the DNS, not the access rules.
    pub fn in_context(mut self, via_privatelink: bool) -> Self {
        if via_privatelink && self.code == Code::AccessRestricted {
            self.code = Code::PublicAccessDisabled;
        }
        self
    }

    /// What was received, as evidence: `403 Ip Forbidden, x-ms-forbidden-ip 203.0.113.7`.
    pub fn evidence(&self) -> String {
        let mut text = self.status_line.clone();
        if let Some(ip) = &self.forbidden_ip {
            text += &format!(", {FORBIDDEN_IP_HEADER} {ip}");
        }
        if let Some(server) = &self.server {
            text += &format!(", Server {server}");
        }
        text + &format!(", recognised by {}", self.signal.phrase())
    }

    /// The refused caller as App Service saw it, decoded: a service-endpoint IPv6 form carries
    /// the VNet address it came from.
    pub fn forbidden_caller(&self) -> Option<CallerAddr> {
        let text = self.forbidden_ip.as_deref()?.trim();
        CallerAddr::parse(text).or_else(|| {
            text.parse::<std::net::SocketAddr>()
                .ok()
                .map(|addr| CallerAddr::of(addr.ip()))
        })
    }

    /// "App Service saw this call as coming from …", when it said so, with both forms of a
    /// service-endpoint address and what the form tells about the path.
    pub fn seen_as(&self) -> Option<String> {
        let ip = self.forbidden_ip.as_deref()?;
        let Some(caller) = self.forbidden_caller() else {
            return Some(format!("App Service saw this call as coming from {ip}"));
        };
        let path = match caller {
            CallerAddr::ServiceEndpoint { vnet_ip, .. } => format!(
                ": it came through a service endpoint from {vnet_ip}, so that subnet has the endpoint and the rule does not allow it"
            ),
            CallerAddr::V4(_) => {
                ": not a service-endpoint address, so the call did not come through the integration subnet's service endpoint"
                    .to_owned()
            }
            CallerAddr::V6(_) => String::new(),
        };
        Some(format!(
            "App Service saw this call as coming from {caller}{}",
            if self.code == Code::AccessRestricted {
                path
            } else {
                String::new()
            }
        ))
    }

    /// What happened: the code's meaning, what came back, and whom App Service saw calling.
    pub fn message(&self) -> String {
        let mut text = format!("{} (got {})", self.code.meaning(), self.evidence());
        if let Some(seen) = self.seen_as() {
            text += &format!("; {seen}");
        }
        text
    }
}

/// Recognises App Service's (or a gateway's) own answer from a response's head and the start of
/// its body; `None` for everything else (the app's own answers included).
pub fn classify(head: &ResponseHead<'_>, body: &[u8]) -> Option<PlatformAnswer> {
    let forbidden_ip = head.header(FORBIDDEN_IP_HEADER).map(str::to_owned);
    let server = head.header("server").map(str::to_owned);
    let reason = head.reason.unwrap_or("");
    let page = String::from_utf8_lossy(&body[..body.len().min(16 * 1024)]).to_ascii_lowercase();
    let (code, signal) = match head.status {
        403 => {
            if reason.eq_ignore_ascii_case("Ip Forbidden") {
                (Code::AccessRestricted, Signal::StatusLine)
            } else if reason.eq_ignore_ascii_case("Site Disabled") {
                (Code::AppStopped, Signal::StatusLine)
            } else if forbidden_ip.is_some() {
                (Code::AccessRestricted, Signal::ForbiddenIpHeader)
            } else if server.as_deref().is_some_and(is_gateway) {
                (Code::GatewayRefused, Signal::ServerHeader)
            } else if page.contains("this web app is stopped") {
                // Checked before the restriction's words: the stopped page also says
                // "attempted to reach".
                (Code::AppStopped, Signal::Page)
            } else if page.contains("blocked your access") {
                (Code::AccessRestricted, Signal::Page)
            } else {
                return None;
            }
        }
        503 => {
            if server.as_deref().is_some_and(is_platform_nginx) {
                (Code::AppUnavailable, Signal::ServerHeader)
            } else if page.contains(":( application error") {
                (Code::AppUnavailable, Signal::Page)
            } else {
                return None;
            }
        }
        _ => return None,
    };
    let status_line = match head.reason {
        Some(reason) => format!("{} {reason}", head.status),
        None => head.status.to_string(),
    };
    let server = server.filter(|_| signal == Signal::ServerHeader || code == Code::GatewayRefused);
    Some(PlatformAnswer {
        code,
        signal,
        status_line,
        forbidden_ip,
        server,
    })
}

/// `Server: Microsoft-Azure-Application-Gateway/v2` (and v1).
fn is_gateway(server: &str) -> bool {
    server
        .to_ascii_lowercase()
        .starts_with("microsoft-azure-application-gateway")
}

/// App Service's front ends answer "no instance" as `Server: nginx` (with or without a version).
fn is_platform_nginx(server: &str) -> bool {
    let server = server.to_ascii_lowercase();
    server == "nginx" || server.starts_with("nginx/")
}

/// App Service's page for a caller its access restrictions deny (`403 Ip Forbidden`) — and, as
/// captured, for any call to the public address of an app whose public network access is
/// disabled: there is no page of its own for that. The structure, the sentences, the CRLF line
/// ends and the size (~1.9 KB) of the captured page; the markup is not byte-for-byte.
pub const ACCESS_RESTRICTED_PAGE: &str = concat!(
    "<!DOCTYPE html>\r\n",
    "<html>\r\n",
    "<head>\r\n",
    "    <title>Web App - Unavailable</title>\r\n",
    "    <style type=\"text/css\">\r\n",
    "        html {\r\n",
    "            height: 100%;\r\n",
    "            width: 100%;\r\n",
    "        }\r\n",
    "\r\n",
    "        #feature {\r\n",
    "            width: 960px;\r\n",
    "            margin: 75px auto 0 auto;\r\n",
    "            overflow: auto;\r\n",
    "        }\r\n",
    "\r\n",
    "        #content {\r\n",
    "            font-family: \"Segoe UI\";\r\n",
    "            font-weight: normal;\r\n",
    "            font-size: 22px;\r\n",
    "            color: #ffffff;\r\n",
    "            float: left;\r\n",
    "            width: 460px;\r\n",
    "            margin-top: 68px;\r\n",
    "            margin-left: 0px;\r\n",
    "            vertical-align: middle;\r\n",
    "        }\r\n",
    "\r\n",
    "            #content h1 {\r\n",
    "                font-family: \"Segoe UI Light\";\r\n",
    "                color: #ffffff;\r\n",
    "                font-weight: normal;\r\n",
    "                font-size: 60px;\r\n",
    "                line-height: 48pt;\r\n",
    "                width: 800px;\r\n",
    "            }\r\n",
    "\r\n",
    "        p a, p a:visited, p a:active, p a:hover {\r\n",
    "            color: #ffffff;\r\n",
    "        }\r\n",
    "\r\n",
    "        #content a.button {\r\n",
    "            background: #0DBCF2;\r\n",
    "            border: 1px solid #FFFFFF;\r\n",
    "            color: #FFFFFF;\r\n",
    "            display: inline-block;\r\n",
    "            font-family: Segoe UI;\r\n",
    "            font-size: 24px;\r\n",
    "            line-height: 46px;\r\n",
    "            margin-top: 10px;\r\n",
    "            padding: 0 15px 3px;\r\n",
    "            text-decoration: none;\r\n",
    "        }\r\n",
    "\r\n",
    "            #content a.button img {\r\n",
    "                float: right;\r\n",
    "                padding: 10px 0 0 15px;\r\n",
    "            }\r\n",
    "\r\n",
    "            #content a.button:hover {\r\n",
    "                background: #1C75BC;\r\n",
    "            }\r\n",
    "    </style>\r\n",
    "</head>\r\n",
    "<body bgcolor=\"#00abec\">\r\n",
    "    <div id=\"feature\">\r\n",
    "        <div id=\"content\">\r\n",
    "            <h1 id=\"unavailable\">Error 403 - Forbidden</h1>\r\n",
    "            <p id=\"tryAgain\">The web app you have attempted to reach has blocked your access.</p>\r\n",
    "        </div>\r\n",
    "    </div>\r\n",
    "</body>\r\n",
    "</html>\r\n",
);

/// App Service's page for a stopped app (`403 Site Disabled`): the structure, the sentences, the
/// CRLF line ends and the size (~1.1 KB) of the captured page; the markup is not byte-for-byte.
pub const APP_STOPPED_PAGE: &str = concat!(
    "<!DOCTYPE html>\r\n",
    "<html>\r\n",
    "<head>\r\n",
    "    <title>Web App - Unavailable</title>\r\n",
    "    <style type=\"text/css\">\r\n",
    "        #feature {\r\n",
    "            width: 960px;\r\n",
    "            margin: 75px auto 0 auto;\r\n",
    "            overflow: auto;\r\n",
    "        }\r\n",
    "\r\n",
    "        #content {\r\n",
    "            font-family: \"Segoe UI\";\r\n",
    "            font-weight: normal;\r\n",
    "            font-size: 22px;\r\n",
    "            color: #ffffff;\r\n",
    "            float: left;\r\n",
    "            width: 460px;\r\n",
    "            margin-top: 68px;\r\n",
    "            vertical-align: middle;\r\n",
    "        }\r\n",
    "\r\n",
    "            #content h1 {\r\n",
    "                font-family: \"Segoe UI Light\";\r\n",
    "                color: #ffffff;\r\n",
    "                font-weight: normal;\r\n",
    "                font-size: 60px;\r\n",
    "                width: 800px;\r\n",
    "            }\r\n",
    "    </style>\r\n",
    "</head>\r\n",
    "<body bgcolor=\"#00abec\">\r\n",
    "    <div id=\"feature\">\r\n",
    "        <div id=\"content\">\r\n",
    "            <h1 id=\"unavailable\">Error 403 - This web app is stopped.</h1>\r\n",
    "            <p id=\"tryAgain\">The web app you have attempted to reach is currently stopped and does not accept any requests. Please try to reload the page or visit it again soon.</p>\r\n",
    "        </div>\r\n",
    "    </div>\r\n",
    "</body>\r\n",
    "</html>\r\n",
);

/// App Service's page when no instance of the app answers (503, `Server: nginx`).
pub const APP_ERROR_PAGE: &str = "<!DOCTYPE html>\r\n<html>\r\n<head>\r\n    <title>Application Error</title>\r\n</head>\r\n<body>\r\n    <h1>:( Application Error</h1>\r\n    <p>If you are the application administrator, you can access the diagnostic resources.</p>\r\n</body>\r\n</html>\r\n";

#[cfg(test)]
mod tests {
    use http::{HeaderValue, StatusCode};

    use super::*;

    fn head(status: u16, reason: Option<&'static str>, headers: &[(&str, &str)]) -> HeaderMap {
        let _ = (status, reason);
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn answer(
        status: u16,
        reason: Option<&'static str>,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Option<PlatformAnswer> {
        let map = head(status, reason, headers);
        classify(
            &ResponseHead {
                status,
                reason,
                headers: &map,
            },
            body.as_bytes(),
        )
    }

    const CUSTOM_PAGE: &str = "<html><body>Sorry, Contoso is not available here.</body></html>";

    #[test]
    fn an_access_restriction_is_read_from_the_status_line_first() {
        let seen = answer(
            403,
            Some("Ip Forbidden"),
            &[("x-ms-forbidden-ip", "203.0.113.7")],
            ACCESS_RESTRICTED_PAGE,
        )
        .unwrap();
        assert_eq!(seen.code, Code::AccessRestricted);
        assert_eq!(seen.signal, Signal::StatusLine);
        assert_eq!(seen.forbidden_ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(seen.status_line, "403 Ip Forbidden");
        assert!(
            seen.message()
                .contains("App Service saw this call as coming from 203.0.113.7")
        );
        assert!(seen.evidence().contains("x-ms-forbidden-ip 203.0.113.7"));
    }

    #[test]
    fn a_custom_error_page_is_still_recognised_by_the_platform_signals() {
        let by_status = answer(403, Some("Ip Forbidden"), &[], CUSTOM_PAGE).unwrap();
        assert_eq!(by_status.code, Code::AccessRestricted);
        let by_header =
            answer(403, None, &[("x-ms-forbidden-ip", "10.0.0.9")], CUSTOM_PAGE).unwrap();
        assert_eq!(by_header.signal, Signal::ForbiddenIpHeader);
        let stopped = answer(403, Some("Site Disabled"), &[], CUSTOM_PAGE).unwrap();
        assert_eq!(stopped.code, Code::AppStopped);
        let unavailable = answer(503, None, &[("server", "nginx")], CUSTOM_PAGE).unwrap();
        assert_eq!(unavailable.code, Code::AppUnavailable);
        assert_eq!(unavailable.signal, Signal::ServerHeader);
    }

    #[test]
    fn a_denial_without_a_body_is_recognised() {
        let seen = answer(
            403,
            Some("Ip Forbidden"),
            &[("x-ms-forbidden-ip", "1.2.3.4")],
            "",
        )
        .unwrap();
        assert_eq!(seen.code, Code::AccessRestricted);
    }

    #[test]
    fn the_pages_alone_are_the_weakest_signal_and_still_count() {
        let restricted = answer(403, None, &[], ACCESS_RESTRICTED_PAGE).unwrap();
        assert_eq!(
            (restricted.code, restricted.signal),
            (Code::AccessRestricted, Signal::Page)
        );
        let stopped = answer(403, None, &[], APP_STOPPED_PAGE).unwrap();
        assert_eq!(
            (stopped.code, stopped.signal),
            (Code::AppStopped, Signal::Page)
        );
        let unavailable = answer(503, None, &[], APP_ERROR_PAGE).unwrap();
        assert_eq!(unavailable.code, Code::AppUnavailable);
    }

    #[test]
    fn the_forbidden_ip_tells_which_path_the_call_took() {
        let through_endpoint = answer(
            403,
            Some("Ip Forbidden"),
            &[("x-ms-forbidden-ip", "fde4:8dba:2300:5457:6f23:200:a00:104")],
            "",
        )
        .unwrap();
        let seen = through_endpoint.seen_as().unwrap();
        assert!(
            seen.contains("the service-endpoint form of 10.0.1.4"),
            "{seen}"
        );
        assert!(seen.contains("the rule does not allow it"), "{seen}");
        let public = answer(
            403,
            Some("Ip Forbidden"),
            &[("x-ms-forbidden-ip", "20.1.2.3")],
            "",
        )
        .unwrap()
        .seen_as()
        .unwrap();
        assert!(public.contains("did not come through"), "{public}");
        let with_port = answer(
            403,
            Some("Ip Forbidden"),
            &[(
                "x-ms-forbidden-ip",
                "[fde4:8dba:1200:98db:6a12:300:a02:126]:27842",
            )],
            "",
        )
        .unwrap();
        assert!(with_port.seen_as().unwrap().contains("10.2.1.38"));
        let odd = answer(
            403,
            Some("Ip Forbidden"),
            &[("x-ms-forbidden-ip", "unknown")],
            "",
        )
        .unwrap()
        .seen_as()
        .unwrap();
        assert_eq!(odd, "App Service saw this call as coming from unknown");
    }

    #[test]
    fn a_gateway_refusal_is_its_own_code_and_never_the_lockdown() {
        let page = "<html>\r\n<head><title>403 Forbidden</title></head>\r\n<body>\r\n<center><h1>403 Forbidden</h1></center>\r\n<hr><center>Microsoft-Azure-Application-Gateway/v2</center>\r\n</body>\r\n</html>\r\n";
        assert_eq!(page.len(), 179);
        let seen = answer(
            403,
            None,
            &[("server", "Microsoft-Azure-Application-Gateway/v2")],
            page,
        )
        .unwrap();
        assert_eq!(seen.code, Code::GatewayRefused);
        assert_eq!(
            seen.server.as_deref(),
            Some("Microsoft-Azure-Application-Gateway/v2")
        );
        // Context never turns a gateway's refusal into a lockdown finding.
        assert_eq!(seen.in_context(true).code, Code::GatewayRefused);
    }

    #[test]
    fn public_access_disabled_comes_from_context_not_from_a_page() {
        let seen = answer(
            403,
            Some("Ip Forbidden"),
            &[("x-ms-forbidden-ip", "203.0.113.7")],
            "",
        )
        .unwrap();
        assert_eq!(seen.clone().in_context(false).code, Code::AccessRestricted);
        let private = seen.in_context(true);
        assert_eq!(private.code, Code::PublicAccessDisabled);
        assert!(
            private
                .code
                .next_step()
                .contains("privatelink.azurewebsites.net")
        );
        let stopped = answer(403, Some("Site Disabled"), &[], "").unwrap();
        assert_eq!(stopped.in_context(true).code, Code::AppStopped);
    }

    #[test]
    fn the_apps_own_answers_are_not_the_platforms() {
        assert_eq!(answer(200, None, &[], ACCESS_RESTRICTED_PAGE), None);
        assert_eq!(
            answer(403, None, &[], r#"{"error":{"code":"caller_not_allowed"}}"#),
            None
        );
        assert_eq!(answer(403, None, &[("server", "Kestrel")], ""), None);
        assert_eq!(answer(503, None, &[("server", "Kestrel")], "busy"), None);
        assert_eq!(answer(401, Some("Ip Forbidden"), &[], ""), None);
        let status = StatusCode::FORBIDDEN.as_u16();
        assert_eq!(answer(status, Some("Forbidden"), &[], "no"), None);
    }

    #[test]
    fn the_pages_are_crlf_and_of_the_captured_size() {
        for page in [ACCESS_RESTRICTED_PAGE, APP_STOPPED_PAGE] {
            assert!(page.contains("\r\n"));
            assert!(
                !page.replace("\r\n", "").contains('\n'),
                "bare LF in a page"
            );
        }
    }
}
