//! Recognising App Service's own 403 pages — access restriction, stopped app, public access
//! disabled — and saying what each means. The one classifier used by `/diag/http`, the front
//! end's diagnosis and the smoke test; the lab's App Service emulator serves the same page texts.

use serde::Serialize;

/// A 403 that App Service's front end answered itself, before the app saw the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AppServiceBlock {
    /// An access restriction rule (`ipSecurityRestrictions`) rejected the caller's address.
    AccessRestricted,
    /// The app is stopped.
    AppStopped,
    /// The app's public endpoint was called while `publicNetworkAccess` is `Disabled`.
    PublicAccessDisabled,
}

impl AppServiceBlock {
    /// Stable `snake_case` code.
    pub fn code(self) -> &'static str {
        match self {
            Self::AccessRestricted => "access_restricted",
            Self::AppStopped => "app_stopped",
            Self::PublicAccessDisabled => "public_access_disabled",
        }
    }

    /// What happened, as a sentence.
    pub fn message(self) -> &'static str {
        match self {
            Self::AccessRestricted => {
                "App Service's access restrictions blocked the call: the caller's address matches no allow rule"
            }
            Self::AppStopped => "App Service answered that the app is stopped",
            Self::PublicAccessDisabled => {
                "App Service refused the call on the app's public address because public network access is disabled"
            }
        }
    }

    /// The next steps, in plain words.
    pub fn hint(self) -> &'static str {
        match self {
            Self::AccessRestricted => {
                "check that the front end has VNet integration, that route-all (vnetRouteAllEnabled) is on, and that the rule allows the integration subnet (with the Microsoft.Web service endpoint on it); service endpoint and rule changes take minutes to apply"
            }
            Self::AppStopped => "start the app (az webapp start), then call it again",
            Self::PublicAccessDisabled => {
                "you are calling the public address: the name did not resolve to the private endpoint; check that the privatelink.azurewebsites.net zone is linked to the VNet the caller uses (and that the caller uses that VNet's DNS), or call from inside the VNet"
            }
        }
    }
}

/// Classifies a response: `Some` only for a 403 whose body is one of App Service's pages.
/// Matching is case-insensitive; the stopped page is checked first because it also says
/// "attempted to reach".
pub fn classify(status: u16, body: &str) -> Option<AppServiceBlock> {
    if status != 403 {
        return None;
    }
    let body = body.to_ascii_lowercase();
    if body.contains("this web app is stopped") {
        Some(AppServiceBlock::AppStopped)
    } else if body.contains("blocked your access") {
        Some(AppServiceBlock::AccessRestricted)
    } else if body.contains("public network access") && body.contains("disabled") {
        Some(AppServiceBlock::PublicAccessDisabled)
    } else {
        None
    }
}

/// App Service's page for a caller rejected by an access restriction rule (403).
pub const ACCESS_RESTRICTED_PAGE: &str = r#"<!DOCTYPE html>
<html>
<head>
    <title>Web App - Unavailable</title>
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <style type="text/css">
        html { height: 100%; width: 100%; }
        body { font-family: "Segoe UI", "Segoe UI Web", Helvetica, Arial, sans-serif; color: #333; margin: 0; }
        #content { margin: 10% auto 0 auto; max-width: 720px; padding: 0 20px; }
        h3 { font-size: 36px; font-weight: 300; margin: 0 0 20px 0; }
        p { font-size: 16px; line-height: 1.5; }
    </style>
</head>
<body>
    <div id="content">
        <div class="content-container">
            <h3>Error 403 - Forbidden</h3>
        </div>
        <div class="content-container">
            <p>The web app you have attempted to reach has blocked your access.</p>
        </div>
    </div>
</body>
</html>
"#;

/// App Service's page for a stopped app (403).
pub const APP_STOPPED_PAGE: &str = r#"<!DOCTYPE html>
<html>
<head>
    <title>Web App - Unavailable</title>
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <style type="text/css">
        html { height: 100%; width: 100%; }
        body { font-family: "Segoe UI", "Segoe UI Web", Helvetica, Arial, sans-serif; color: #333; margin: 0; }
        #content { margin: 10% auto 0 auto; max-width: 720px; padding: 0 20px; }
        h3 { font-size: 36px; font-weight: 300; margin: 0 0 20px 0; }
        p { font-size: 16px; line-height: 1.5; }
    </style>
</head>
<body>
    <div id="content">
        <div class="content-container">
            <h3>Error 403 - This web app is stopped.</h3>
        </div>
        <div class="content-container">
            <p>The web app you have attempted to reach is currently stopped and does not accept any requests. Please try to reload the page or visit it again soon.</p>
            <p>If you are the web app administrator, please find the common 403 error scenarios and resolution <a href="https://go.microsoft.com/fwlink/?linkid=2095007" target="_blank">here</a>. For further troubleshooting tools and recommendations, please visit <a href="https://portal.azure.com/">Azure Portal</a>.</p>
        </div>
    </div>
</body>
</html>
"#;

/// App Service's page for a call to the public address of an app whose public network access
/// is disabled (403).
pub const PUBLIC_ACCESS_DISABLED_PAGE: &str = r#"<!DOCTYPE html>
<html>
<head>
    <title>Web App - Unavailable</title>
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <style type="text/css">
        html { height: 100%; width: 100%; }
        body { font-family: "Segoe UI", "Segoe UI Web", Helvetica, Arial, sans-serif; color: #333; margin: 0; }
        #content { margin: 10% auto 0 auto; max-width: 720px; padding: 0 20px; }
        h3 { font-size: 36px; font-weight: 300; margin: 0 0 20px 0; }
        p { font-size: 16px; line-height: 1.5; }
    </style>
</head>
<body>
    <div id="content">
        <div class="content-container">
            <h3>Error 403 - Forbidden</h3>
        </div>
        <div class="content-container">
            <p>Error 403 - Forbidden. Public network access to this web app is disabled.</p>
        </div>
    </div>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_three_pages() {
        assert_eq!(
            classify(403, ACCESS_RESTRICTED_PAGE),
            Some(AppServiceBlock::AccessRestricted)
        );
        assert_eq!(
            classify(403, APP_STOPPED_PAGE),
            Some(AppServiceBlock::AppStopped)
        );
        assert_eq!(
            classify(403, PUBLIC_ACCESS_DISABLED_PAGE),
            Some(AppServiceBlock::PublicAccessDisabled)
        );
        assert_eq!(
            classify(
                403,
                "Error 403 - Forbidden. PUBLIC NETWORK ACCESS to this web app is DISABLED."
            ),
            Some(AppServiceBlock::PublicAccessDisabled)
        );
    }

    #[test]
    fn only_403_pages_are_app_service_blocks() {
        assert_eq!(classify(200, ACCESS_RESTRICTED_PAGE), None);
        assert_eq!(classify(503, APP_STOPPED_PAGE), None);
        assert_eq!(
            classify(403, r#"{"error":{"code":"caller_not_allowed"}}"#),
            None
        );
        assert_eq!(classify(403, ""), None);
        assert_eq!(classify(403, "public network access is enabled"), None);
    }

    #[test]
    fn codes_and_hints() {
        let all = [
            AppServiceBlock::AccessRestricted,
            AppServiceBlock::AppStopped,
            AppServiceBlock::PublicAccessDisabled,
        ];
        let codes: Vec<_> = all.iter().map(|b| b.code()).collect();
        assert_eq!(
            codes,
            ["access_restricted", "app_stopped", "public_access_disabled"]
        );
        assert!(
            AppServiceBlock::AccessRestricted
                .hint()
                .contains("route-all")
        );
        assert!(AppServiceBlock::AccessRestricted.hint().contains("minutes"));
        assert!(AppServiceBlock::AppStopped.hint().contains("start the app"));
        assert!(
            AppServiceBlock::PublicAccessDisabled
                .hint()
                .contains("privatelink")
        );
        for block in all {
            assert_eq!(serde_json::to_value(block).unwrap(), block.code());
            assert!(!block.message().is_empty());
        }
    }
}
