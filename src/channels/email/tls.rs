//! TLS for implicit-TLS SMTP (SMTPS) over a byte-budgeted socket, with one
//! rustls client config per trust setting (platform roots plus a `ca_file`,
//! or none at all when certificates are not checked), built once per
//! process and shared by every instance with the same setting: the
//! platform's trust store is loaded once, not per instance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};

type Key = ([u8; 32], bool);

fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// The shared client config for a CA file's contents (none: the platform's
/// roots only) and whether certificates are checked at all.
pub(crate) fn client_config(
    ca_pem: Option<&[u8]>,
    accept_invalid: bool,
) -> Result<Arc<ClientConfig>> {
    static CONFIGS: OnceLock<Mutex<HashMap<Key, Arc<ClientConfig>>>> = OnceLock::new();
    let mut digest = [0u8; 32];
    if let Some(pem) = ca_pem {
        digest.copy_from_slice(&Sha256::digest(pem));
    }
    let key = (digest, accept_invalid);
    let configs = CONFIGS.get_or_init(Default::default);
    if let Some(c) = configs.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(c.clone());
    }
    let config = Arc::new(build(ca_pem, accept_invalid)?);
    configs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, config.clone());
    Ok(config)
}

fn build(ca_pem: Option<&[u8]>, accept_invalid: bool) -> Result<ClientConfig> {
    let tls_err =
        |e: rustls::Error| Error::config("params.ca_file", format!("cannot set up TLS: {e}"));
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?;
    let verifier: Arc<dyn ServerCertVerifier> =
        if accept_invalid {
            Arc::new(AcceptAny(provider()))
        } else {
            let mut extra = Vec::new();
            if let Some(pem) = ca_pem {
                for cert in CertificateDer::pem_slice_iter(pem) {
                    extra.push(cert.map_err(|_| {
                        Error::config("params.ca_file", "not a PEM certificate file")
                    })?);
                }
                if extra.is_empty() {
                    return Err(Error::config(
                        "params.ca_file",
                        "the file holds no PEM certificate",
                    ));
                }
            }
            Arc::new(
                rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider())
                    .map_err(tls_err)?,
            )
        };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// lettre's STARTTLS parameters for `host` and a trust setting, built once
/// per process (building loads the platform's trust store) and shared by
/// every instance with the same host and setting.
pub(crate) fn starttls_params(
    host: &str,
    ca_pem: Option<&[u8]>,
    accept_invalid: bool,
) -> Result<lettre::transport::smtp::client::TlsParameters> {
    use lettre::transport::smtp::client::{Certificate, TlsParameters};
    type Params = HashMap<(String, [u8; 32], bool), TlsParameters>;
    static PARAMS: OnceLock<Mutex<Params>> = OnceLock::new();
    let mut digest = [0u8; 32];
    if let Some(pem) = ca_pem {
        digest.copy_from_slice(&Sha256::digest(pem));
    }
    let key = (host.to_owned(), digest, accept_invalid);
    let params = PARAMS.get_or_init(Default::default);
    if let Some(p) = params.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(p.clone());
    }
    let mut b =
        TlsParameters::builder(host.to_owned()).dangerous_accept_invalid_certs(accept_invalid);
    if let Some(pem) = ca_pem {
        let cert = Certificate::from_pem(pem)
            .map_err(|e| Error::config("params.ca_file", format!("not a PEM certificate: {e}")))?;
        b = b.add_root_certificate(cert);
    }
    let built = b
        .build_rustls()
        .map_err(|e| Error::config("params.ca_file", format!("cannot set up TLS: {e}")))?;
    params
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, built.clone());
    Ok(built)
}

/// Accepts any certificate (`accept_invalid_certs`, Dinky's
/// `smtpSslTrust = "*"`), still checking the handshake's signatures.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS session over a budgeted socket, as lettre takes a transport.
#[derive(Debug)]
pub(crate) struct TlsTransport<S>(pub tokio_rustls::client::TlsStream<S>);

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> tokio::io::AsyncRead
    for TlsTransport<S>
{
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite
    for TlsTransport<S>
{
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S> lettre::transport::smtp::client::AsyncTokioStream for TlsTransport<S>
where
    S: lettre::transport::smtp::client::AsyncTokioStream,
{
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// A handshake failure as an error: permanent (a wrong certificate or
/// host name does not fix itself), one clean message.
pub(crate) fn handshake_error(host: &str, port: u16, e: &std::io::Error) -> Error {
    let why = e
        .get_ref()
        .map_or_else(|| e.to_string(), ToString::to_string);
    // A plaintext server answers the ClientHello with its "220" greeting.
    let hint = if why.contains("corrupt message") || why.contains("InvalidContentType") {
        " (the server answered in clear: is it a STARTTLS or plain port? then set tls = \"starttls\")"
    } else {
        ""
    };
    Error::new(
        ErrorKind::Transport,
        format!("TLS handshake with {host}:{port} failed: {why}{hint}"),
    )
    .with_retryable(false)
}
