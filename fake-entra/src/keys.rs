//! RSA signing keys generated at run time (aws-lc-rs, already in the tree through rustls), shown
//! as JWKs the way Entra's keys endpoint shows them, and signing RS256 tokens.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// An RSA-2048 key pair with its key id. Cheap to clone.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    pair: Arc<RsaKeyPair>,
    n: String,
    e: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.kid)
    }
}

impl SigningKey {
    /// Generates a fresh RSA-2048 key named `kid`.
    ///
    /// # Panics
    /// When the crypto library cannot generate a key (it has no failure mode in practice).
    pub fn generate(kid: impl Into<String>) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("aws-lc-rs generates RSA keys");
        let public = aws_lc_rs::signature::KeyPair::public_key(&pair);
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        Self {
            kid: kid.into(),
            pair: Arc::new(pair),
            n,
            e,
        }
    }

    /// The key id (`kid`) tokens name.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as Entra's keys endpoint lists it.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": self.n,
            "e": self.e,
        })
    }

    /// The public key under another `kid` (a key whose id was reused).
    pub fn jwk_as(&self, kid: &str) -> Value {
        let mut jwk = self.jwk();
        jwk["kid"] = json!(kid);
        jwk["x5t"] = json!(kid);
        jwk
    }

    /// Signs `header.claims` with RS256, whatever the header says.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let message = format!("{}.{}", part(header), part(claims));
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message.as_bytes(),
                &mut signature,
            )
            .expect("RS256 signing with a generated key");
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// A token as Entra issues it: `{"typ":"JWT","alg":"RS256","kid":…,"x5t":…}`, signed by this key.
    pub fn token(&self, claims: &Value) -> String {
        self.token_with_kid(&self.kid, claims)
    }

    /// A token that names `kid` in its header but is signed by this key.
    pub fn token_with_kid(&self, kid: &str, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": kid, "x5t": kid});
        self.sign(&header, claims)
    }
}

/// One base64url part of a token.
pub(crate) fn part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}
