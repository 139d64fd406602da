//! TLS for the JS-thread connection: a rustls client configuration built from the store's
//! TLS settings (a CA or the system roots, mutual TLS, SNI, or an explicit opt-out of
//! verification), and the socket a connection runs over, plain or TLS.

use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::config::TlsSettings;

/// What a TLS connection needs: the shared configuration (which also caches sessions, so a
/// reconnect resumes) and the name the certificate must carry.
#[derive(Clone)]
pub struct TlsTarget {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTarget")
            .field("server_name", &self.server_name)
            .finish()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The operating system's trusted roots, read once per process.
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        roots
    })
}

impl TlsTarget {
    /// `host` is the address connected to; `settings.servername`, when given, is the name
    /// verified and sent as SNI instead.
    pub fn new(settings: &TlsSettings, host: &str) -> Result<TlsTarget, String> {
        let name = settings.servername.as_deref().unwrap_or(host);
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|e| format!("invalid TLS server name {name:?}: {e}"))?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if settings.reject_unauthorized {
            let roots = match &settings.ca {
                Some(pem) => {
                    let mut roots = RootCertStore::empty();
                    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                        let cert = cert.map_err(|e| format!("tls.ca: {e}"))?;
                        roots.add(cert).map_err(|e| format!("tls.ca: {e}"))?;
                    }
                    if roots.is_empty() {
                        return Err("tls.ca holds no PEM certificate".into());
                    }
                    roots
                }
                None => system_roots().clone(),
            };
            builder.with_root_certificates(roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
        };
        let config = match (&settings.cert, &settings.key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("tls.cert: {e}"))?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|e| format!("tls.key: {e}"))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("tls.cert/tls.key: {e}"))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("tls.cert and tls.key must be given together".into()),
        };
        Ok(TlsTarget {
            config: Arc::new(config),
            server_name,
        })
    }

    /// Runs the handshake over a blocking socket; runs off the JS thread.
    pub fn handshake(&self, tcp: &mut Socket) -> Result<ClientConnection, String> {
        let mut tls = ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|e| format!("TLS: {e}"))?;
        while tls.is_handshaking() {
            tls.complete_io(tcp)
                .map_err(|e| format!("TLS handshake: {e}"))?;
        }
        Ok(tls)
    }
}

/// `rejectUnauthorized: false`: the certificate is not checked, but the handshake's
/// signatures still are, so the session keys belong to whoever holds the certificate's key.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A connected stream socket: TCP, or a unix socket (`path`).
pub enum Socket {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(std::os::unix::net::UnixStream),
}

impl Socket {
    pub fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => s.set_nonblocking(on),
            #[cfg(unix)]
            Socket::Unix(s) => s.set_nonblocking(on),
        }
    }

    /// Read and write timeouts, for the blocking handshake.
    pub fn set_timeouts(&self, limit: std::time::Duration) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => {
                s.set_read_timeout(Some(limit))?;
                s.set_write_timeout(Some(limit))
            }
            #[cfg(unix)]
            Socket::Unix(s) => {
                s.set_read_timeout(Some(limit))?;
                s.set_write_timeout(Some(limit))
            }
        }
    }

    /// The server's address, for a TCP socket.
    pub fn peer_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            Socket::Tcp(s) => s.peer_addr().ok(),
            #[cfg(unix)]
            Socket::Unix(_) => None,
        }
    }

    #[cfg(unix)]
    pub fn raw_fd(&self) -> std::os::unix::io::RawFd {
        use std::os::unix::io::AsRawFd;
        match self {
            Socket::Tcp(s) => s.as_raw_fd(),
            Socket::Unix(s) => s.as_raw_fd(),
        }
    }

    #[cfg(windows)]
    pub fn raw_socket(&self) -> usize {
        use std::os::windows::io::AsRawSocket;
        match self {
            Socket::Tcp(s) => s.as_raw_socket() as usize,
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Socket::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Socket::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Socket::Tcp(s) => s.flush(),
            #[cfg(unix)]
            Socket::Unix(s) => s.flush(),
        }
    }
}

/// The socket under a connection: plain, or rustls over the same non-blocking socket.
pub enum Wire {
    Plain(Socket),
    Tls(Box<ClientConnection>, Socket),
}

/// A blocking view of a wire for the handshake's commands (`AUTH`, `SELECT`, `ROLE`).
pub struct Blocking<'a>(&'a mut Wire);

impl Read for Blocking<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0 {
            Wire::Plain(tcp) => tcp.read(buf),
            Wire::Tls(tls, tcp) => rustls::Stream::new(tls.as_mut(), tcp).read(buf),
        }
    }
}

impl Write for Blocking<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0 {
            Wire::Plain(tcp) => tcp.write(buf),
            Wire::Tls(tls, tcp) => rustls::Stream::new(tls.as_mut(), tcp).write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.0 {
            Wire::Plain(tcp) => tcp.flush(),
            Wire::Tls(tls, tcp) => rustls::Stream::new(tls.as_mut(), tcp).flush(),
        }
    }
}

impl Wire {
    pub fn socket(&self) -> &Socket {
        match self {
            Wire::Plain(socket) | Wire::Tls(_, socket) => socket,
        }
    }

    pub fn blocking(&mut self) -> Blocking<'_> {
        Blocking(self)
    }

    /// Hands `data` to the socket without blocking; returns how much was taken (0 when the
    /// socket is full). For TLS, "taken" means encrypted and queued; `wants_write` then says
    /// whether records still wait for the socket.
    pub fn send(&mut self, data: &[u8]) -> Result<usize, String> {
        match self {
            Wire::Plain(tcp) => loop {
                match tcp.write(data) {
                    Ok(0) => return Err("the connection closed while writing".into()),
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == IoKind::WouldBlock => return Ok(0),
                    Err(e) if e.kind() == IoKind::Interrupted => {}
                    Err(e) => return Err(format!("write failed: {e}")),
                }
            },
            Wire::Tls(tls, tcp) => {
                let taken = tls
                    .writer()
                    .write(data)
                    .map_err(|e| format!("TLS write failed: {e}"))?;
                Self::flush_records(tls, tcp)?;
                Ok(taken)
            }
        }
    }

    /// Writes queued TLS records until done or the socket is full.
    fn flush_records(tls: &mut ClientConnection, tcp: &mut Socket) -> Result<(), String> {
        while tls.wants_write() {
            match tls.write_tls(tcp) {
                Ok(0) => return Err("the connection closed while writing".into()),
                Ok(_) => {}
                Err(e) if e.kind() == IoKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => return Err(format!("write failed: {e}")),
            }
        }
        Ok(())
    }

    /// Whether bytes already taken still wait for the socket.
    pub fn wants_write(&self) -> bool {
        match self {
            Wire::Plain(_) => false,
            Wire::Tls(tls, _) => tls.wants_write(),
        }
    }

    /// Writes what TLS still holds back.
    pub fn flush(&mut self) -> Result<(), String> {
        match self {
            Wire::Plain(_) => Ok(()),
            Wire::Tls(tls, tcp) => Self::flush_records(tls, tcp),
        }
    }

    /// Reads what the socket has, without blocking, into `sink` (through `scratch`). `Ok(true)`
    /// when the peer closed the connection.
    pub fn receive(&mut self, scratch: &mut [u8], sink: &mut Vec<u8>) -> Result<bool, String> {
        match self {
            Wire::Plain(tcp) => loop {
                match tcp.read(scratch) {
                    Ok(0) => return Ok(true),
                    Ok(n) => {
                        sink.extend_from_slice(&scratch[..n]);
                        if n < scratch.len() {
                            return Ok(false);
                        }
                    }
                    Err(e) if e.kind() == IoKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == IoKind::Interrupted => {}
                    Err(e) => return Err(format!("read failed: {e}")),
                }
            },
            Wire::Tls(tls, tcp) => {
                // Plaintext is drained after every read: rustls holds only a bounded amount of
                // it and refuses to read more records past that.
                let mut closed = false;
                loop {
                    let more = match tls.read_tls(tcp) {
                        Ok(0) => {
                            closed = true;
                            false
                        }
                        Ok(_) => {
                            tls.process_new_packets()
                                .map_err(|e| format!("TLS error: {e}"))?;
                            true
                        }
                        Err(e) if e.kind() == IoKind::WouldBlock => false,
                        Err(e) if e.kind() == IoKind::Interrupted => continue,
                        Err(e) => return Err(format!("read failed: {e}")),
                    };
                    loop {
                        match tls.reader().read(scratch) {
                            Ok(0) => {
                                closed = true;
                                break;
                            }
                            Ok(n) => sink.extend_from_slice(&scratch[..n]),
                            Err(e) if e.kind() == IoKind::WouldBlock => break,
                            Err(e) if e.kind() == IoKind::UnexpectedEof => {
                                closed = true;
                                break;
                            }
                            Err(e) => return Err(format!("TLS read failed: {e}")),
                        }
                    }
                    if !more || closed {
                        break;
                    }
                }
                // TLS may answer something of its own (a key update, an alert).
                Self::flush_records(tls, tcp)?;
                Ok(closed)
            }
        }
    }
}
