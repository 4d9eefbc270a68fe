//! A throwaway certificate authority for TLS tests on 127.0.0.1.

use std::path::{Path, PathBuf};

/// A CA generated now and a server certificate for `localhost` and
/// `127.0.0.1` issued by it: what a test TLS server presents and what its
/// client trusts. rustls (alertkit's only TLS stack) rejects a bare
/// self-signed server certificate, hence the two levels.
///
/// ```
/// let pki = alertkit::testkit::Pki::generate().unwrap();
/// assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
/// assert!(pki.key_pem.contains("PRIVATE KEY"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Pki {
    /// The CA certificate (PEM): give it to the client (`ca_file`).
    pub ca_pem: String,
    /// The server's certificate followed by the CA's (PEM chain).
    pub cert_pem: String,
    /// The server's private key (PKCS #8 PEM).
    pub key_pem: String,
    pub(crate) chain_der: Vec<Vec<u8>>,
    pub(crate) key_der: Vec<u8>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki").finish_non_exhaustive()
    }
}

/// The three PEM files [`Pki::write_to`] wrote.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("alertkit-doc-pkifiles-{}", std::process::id()));
/// let files = alertkit::testkit::Pki::generate()?.write_to(&dir)?;
/// assert_eq!(files.ca, dir.join("ca.pem"));
/// assert!(std::fs::read_to_string(&files.key)?.contains("PRIVATE KEY"));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PkiFiles {
    /// `ca.pem`.
    pub ca: PathBuf,
    /// `cert.pem` (the server's chain).
    pub cert: PathBuf,
    /// `key.pem`.
    pub key: PathBuf,
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl Pki {
    /// Generates the CA and the server certificate (ECDSA P-256).
    ///
    /// ```
    /// use alertkit::testkit::Pki;
    /// let (a, b) = (Pki::generate()?, Pki::generate()?);
    /// assert_ne!(a.ca_pem, b.ca_pem); // a new CA each time: nothing to trust by accident
    /// assert!(a.cert_pem.ends_with(&a.ca_pem)); // the server's chain ends in its CA
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn generate() -> std::io::Result<Pki> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
            SanType,
        };
        let ca_key = KeyPair::generate().map_err(io_error)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(io_error)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "alertkit testkit CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).map_err(io_error)?;
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().map_err(io_error)?;
        let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).map_err(io_error)?;
        leaf.subject_alt_names
            .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(io_error)?;
        Ok(Pki {
            ca_pem: ca_cert.pem(),
            cert_pem: format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
            key_pem: leaf_key.serialize_pem(),
            chain_der: vec![leaf_cert.der().to_vec(), ca_cert.der().to_vec()],
            key_der: leaf_key.serialize_der(),
        })
    }

    /// Writes `ca.pem`, `cert.pem` and `key.pem` into `dir` (created if
    /// missing), for servers and clients configured with file paths.
    ///
    /// ```
    /// use alertkit::testkit::Pki;
    /// let dir = std::env::temp_dir().join(format!("alertkit-doc-pki-{}", std::process::id()));
    /// let pki = Pki::generate()?;
    /// let files = pki.write_to(&dir)?; // e.g. the email channel's `ca_file`
    /// assert_eq!(std::fs::read_to_string(&files.ca)?, pki.ca_pem);
    /// assert_eq!(std::fs::read_to_string(&files.cert)?, pki.cert_pem);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_to(&self, dir: &Path) -> std::io::Result<PkiFiles> {
        std::fs::create_dir_all(dir)?;
        let files = PkiFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.ca, &self.ca_pem)?;
        std::fs::write(&files.cert, &self.cert_pem)?;
        std::fs::write(&files.key, &self.key_pem)?;
        Ok(files)
    }

    /// A rustls server configuration presenting the server certificate
    /// (for a TLS fake of your own: wrap accepted sockets with
    /// `tokio_rustls::TlsAcceptor::from(Arc::new(config))`).
    ///
    /// ```
    /// use alertkit::testkit::Pki;
    /// let config = Pki::generate()?.server_config()?;
    /// let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    /// # let _ = acceptor;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn server_config(&self) -> std::io::Result<rustls::ServerConfig> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io_error)?
            .with_no_client_auth()
            .with_single_cert(
                self.chain_der
                    .iter()
                    .map(|d| CertificateDer::from(d.clone()))
                    .collect(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .map_err(io_error)
    }
}
