//! TLS for the `postgres` client, with libpq's sslmode meanings: `prefer` and
//! `require` encrypt without checking the certificate (unless a root
//! certificate is configured, when `require` acts as `verify-ca`),
//! `verify-ca` checks the chain, `verify-full` the chain and the host name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use thiserror::Error;

use super::settings::{ConnectionSettings, Host, RootCertificates, SslMode, TlsOptions};

#[derive(Debug, Error)]
pub enum TlsSetupError {
    #[error(
        "sslmode={mode} verifies the server against root certificates, but none is configured: \
         give the file with sslrootcert=PATH (or PGSSLROOTCERT), use sslrootcert=system for the \
         system's trust store, or choose sslmode=require to encrypt without verifying"
    )]
    NoRootCertificates { mode: &'static str },
    #[error("cannot read certificates from {}: {reason}", path.display())]
    BadPem { path: PathBuf, reason: String },
    #[error(
        "ssl_min_protocol_version=TLSv1.3 and ssl_max_protocol_version=TLSv1.2 leave no TLS version to use"
    )]
    NoProtocolVersion,
    #[error(
        "sslcrldir names a directory with no certificate revocation list in it, so the server's certificate cannot be checked: put the issuer's CRL there, or leave sslcrldir unset"
    )]
    NoRevocationList,
    #[error("the system trust store holds no usable certificate")]
    EmptySystemStore,
    #[error("the TLS configuration is invalid: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The client TLS configuration for these settings; `None` when TLS is off.
pub fn client_config(settings: &ConnectionSettings) -> Result<Option<ClientConfig>, TlsSetupError> {
    let over_tcp = settings
        .endpoints
        .iter()
        .any(|endpoint| matches!(endpoint.host, Host::Tcp(_)));
    if !over_tcp {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = &settings.tls;
    let verifier: Arc<dyn ServerCertVerifier> = match (settings.sslmode, &tls.root_certificates) {
        (SslMode::Disable, _) => return Ok(None),
        // As libpq: a root certificate file, when there is one, is used by
        // every mode that encrypts (prefer falls back to plain when the
        // check fails).
        (SslMode::Allow | SslMode::Prefer | SslMode::Require | SslMode::VerifyCa, Some(roots)) => {
            Arc::new(ChainOnly {
                inner: webpki_verifier(roots, tls, &provider)?,
            })
        }
        (SslMode::Allow | SslMode::Prefer | SslMode::Require, None) => {
            Arc::new(AcceptAnyCertificate {
                provider: provider.clone(),
            })
        }
        (SslMode::VerifyFull, Some(roots)) => webpki_verifier(roots, tls, &provider)?,
        // Settings resolution refuses this; settings built by hand may not.
        (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
            return Err(TlsSetupError::NoRootCertificates {
                mode: settings.sslmode.name(),
            });
        }
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match (tls.only_tls12, tls.only_tls13) {
        (true, true) => return Err(TlsSetupError::NoProtocolVersion),
        (true, false) => &[&rustls::version::TLS12],
        (false, true) => &[&rustls::version::TLS13],
        (false, false) => rustls::DEFAULT_VERSIONS,
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &tls.client_certificate {
        Some((cert_path, key_path)) => {
            let chain = read_certificates(cert_path)?;
            let key =
                PrivateKeyDer::from_pem_file(key_path).map_err(|err| TlsSetupError::BadPem {
                    path: key_path.clone(),
                    reason: format!(
                        "{err} (an encrypted key cannot be read: decrypt it with openssl pkey)"
                    ),
                })?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.enable_sni = tls.sni;
    Ok(Some(config))
}

fn webpki_verifier(
    roots: &RootCertificates,
    tls: &TlsOptions,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsSetupError> {
    let mut store = RootCertStore::empty();
    match roots {
        // Its existence was checked when the settings were resolved.
        RootCertificates::File(path) => {
            for certificate in read_certificates(path)? {
                store.add(certificate)?;
            }
        }
        RootCertificates::System => {
            let (added, _ignored) =
                store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                return Err(TlsSetupError::EmptySystemStore);
            }
        }
    }
    let mut crls = Vec::new();
    for path in &tls.revocation_lists {
        let bad = |reason: String| TlsSetupError::BadPem {
            path: path.clone(),
            reason,
        };
        for crl in
            CertificateRevocationListDer::pem_file_iter(path).map_err(|err| bad(err.to_string()))?
        {
            crls.push(crl.map_err(|err| bad(err.to_string()))?);
        }
    }
    if tls.revocation_required && crls.is_empty() {
        return Err(TlsSetupError::NoRevocationList);
    }
    WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .with_crls(crls)
        .build()
        .map_err(|err| TlsSetupError::BadPem {
            path: PathBuf::from("(root certificates)"),
            reason: err.to_string(),
        })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let bad = |reason: String| TlsSetupError::BadPem {
        path: path.to_path_buf(),
        reason,
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|err| bad(err.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| bad(err.to_string()))?;
    if certificates.is_empty() {
        return Err(bad("no PEM certificate in it".to_owned()));
    }
    Ok(certificates)
}

/// Encrypts without authenticating the server (libpq's prefer and require).
/// Handshake signatures are still checked, so the session is bound to the key
/// the server presented.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// verify-ca: the chain must lead to a trusted root; the host name is not
/// compared. The full verifier checks the chain before the name, so a name
/// mismatch means the chain was good.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::settings::{Environment, resolve};

    #[test]
    fn a_verify_mode_without_roots_is_an_error_not_a_crash() {
        let mut settings = resolve(
            Some("host=h sslmode=require user=u"),
            &Environment::with_vars([], None),
        )
        .unwrap();
        settings.sslmode = SslMode::VerifyFull;
        let err = client_config(&settings).unwrap_err();
        assert!(
            matches!(
                err,
                TlsSetupError::NoRootCertificates {
                    mode: "verify-full"
                }
            ),
            "{err}"
        );
    }
}
