//! A logical replication connection: PostgreSQL's streaming replication protocol, just what
//! the CDC stream needs, on `postgres-protocol`'s message encoders and authentication helpers.
//!
//! [`ReplicationConnection::connect`] opens a `replication=database` session (TCP or Unix
//! socket; TLS as the DSN and `tls_ca_pem_file` ask, see `postgresql_outbox::connect`; trust,
//! cleartext, MD5 or SCRAM-SHA-256 authentication) and
//! [`ReplicationConnection::start`] sends `START_REPLICATION SLOT … LOGICAL …` with the
//! `pgoutput` options. The CopyBoth stream then carries XLogData (`w`, one `pgoutput` message
//! each) and primary keepalives (`k`) from the server, and standby status updates (`r`) back.
//!
//! `super::pump` hands the started stream to the one task that owns the socket.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_postgres::config::Host;

use super::pgoutput::Lsn;

/// Seconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_SECS: u64 = 946_684_800;

/// The largest backend message accepted (PostgreSQL's own limit for a CopyData is 1 GB).
const MAX_FRAME_BYTES: usize = 1 << 30;

/// What went wrong on the replication connection.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReplicationError {
    /// The socket failed or closed.
    #[error("replication connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered with an error.
    #[error("{message} (SQLSTATE {code})")]
    Server {
        /// SQLSTATE, e.g. `42704` (undefined object), `28000` (no REPLICATION attribute).
        code: String,
        /// The server's message.
        message: String,
    },
    /// TLS could not be set up.
    #[error("TLS: {0}")]
    Tls(String),
    /// The server asked for an authentication this client cannot give.
    #[error("authentication: {0}")]
    Auth(String),
    /// The server sent something this client does not expect.
    #[error("protocol: {0}")]
    Protocol(String),
    /// Connecting took too long.
    #[error("connect: timed out")]
    Timeout,
}

impl ReplicationError {
    /// The SQLSTATE of a server error.
    pub(super) fn code(&self) -> Option<&str> {
        match self {
            ReplicationError::Server { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A socket: TCP, TLS over TCP, or a Unix socket.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One backend message.
struct Frame {
    tag: u8,
    body: Bytes,
}

/// A replication session (see the module docs).
pub(super) struct ReplicationConnection {
    io: Box<dyn Io>,
    input: BytesMut,
    output: BytesMut,
}

impl ReplicationConnection {
    /// Connects and authenticates to the first reachable host of `config` within `timeout`;
    /// `tls`: encrypt and verify the server with this configuration.
    pub(super) async fn connect(
        config: &tokio_postgres::Config,
        tls: Option<Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Result<ReplicationConnection, ReplicationError> {
        tokio::time::timeout(timeout, Self::connect_now(config, tls))
            .await
            .map_err(|_| ReplicationError::Timeout)?
    }

    async fn connect_now(
        config: &tokio_postgres::Config,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<ReplicationConnection, ReplicationError> {
        let hosts = config.get_hosts();
        let ports = config.get_ports();
        let mut last = ReplicationError::Protocol("the DSN names no host".into());
        for (i, host) in hosts.iter().enumerate() {
            let port = ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432);
            match Self::open(host, port, tls.clone()).await {
                Ok(io) => {
                    let mut conn = ReplicationConnection {
                        io,
                        input: BytesMut::with_capacity(64 * 1024),
                        output: BytesMut::new(),
                    };
                    conn.startup(config).await?;
                    return Ok(conn);
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The socket to `host`, over TLS when `tls` is set.
    async fn open(
        host: &Host,
        port: u16,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Box<dyn Io>, ReplicationError> {
        let name = match host {
            #[cfg(unix)]
            Host::Unix(dir) => {
                if tls.is_some() {
                    return Err(ReplicationError::Tls(
                        "TLS over a Unix socket is not supported".into(),
                    ));
                }
                let path: PathBuf = dir.join(format!(".s.PGSQL.{port}"));
                return Ok(Box::new(tokio::net::UnixStream::connect(path).await?));
            }
            Host::Tcp(name) => name,
            #[allow(unreachable_patterns)]
            _ => return Err(ReplicationError::Protocol("unsupported host kind".into())),
        };
        let mut tcp = tokio::net::TcpStream::connect((name.as_str(), port)).await?;
        tcp.set_nodelay(true)?;
        let Some(tls) = tls else {
            return Ok(Box::new(tcp));
        };
        let mut request = BytesMut::new();
        frontend::ssl_request(&mut request);
        tcp.write_all(&request).await?;
        if tcp.read_u8().await? != b'S' {
            return Err(ReplicationError::Tls(
                "the server does not offer TLS".into(),
            ));
        }
        let server = rustls::pki_types::ServerName::try_from(name.clone())
            .map_err(|e| ReplicationError::Tls(format!("{name}: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(server, tcp)
            .await
            .map_err(|e| ReplicationError::Tls(e.to_string()))?;
        Ok(Box::new(stream))
    }

    /// Startup message, authentication, then waits until the server is ready.
    async fn startup(&mut self, config: &tokio_postgres::Config) -> Result<(), ReplicationError> {
        let user = config
            .get_user()
            .ok_or_else(|| ReplicationError::Auth("the DSN names no user".into()))?;
        let mut params = vec![("user", user), ("replication", "database")];
        if let Some(db) = config.get_dbname() {
            params.push(("database", db));
        }
        params.push((
            "application_name",
            config.get_application_name().unwrap_or("pushwire"),
        ));
        // e.g. `options='-c wal_sender_timeout=30s'`.
        if let Some(options) = config.get_options() {
            params.push(("options", options));
        }
        frontend::startup_message(params, &mut self.output)?;
        self.flush().await?;
        let password = config.get_password();
        let mut scram: Option<ScramSha256> = None;
        loop {
            let frame = self.read_frame().await?;
            match frame.tag {
                b'R' => {
                    let mut body = frame.body;
                    let kind = take_i32(&mut body)?;
                    match kind {
                        0 => {}
                        3 => {
                            let pw = password.ok_or_else(no_password)?;
                            frontend::password_message(pw, &mut self.output)?;
                            self.flush().await?;
                        }
                        5 => {
                            let pw = password.ok_or_else(no_password)?;
                            if body.len() < 4 {
                                return Err(ReplicationError::Protocol("short MD5 salt".into()));
                            }
                            let salt = [body[0], body[1], body[2], body[3]];
                            let hash = md5_hash(user.as_bytes(), pw, salt);
                            frontend::password_message(hash.as_bytes(), &mut self.output)?;
                            self.flush().await?;
                        }
                        10 => {
                            let pw = password.ok_or_else(no_password)?;
                            let offered = body
                                .split(|b| *b == 0)
                                .any(|m| m == SCRAM_SHA_256.as_bytes());
                            if !offered {
                                return Err(ReplicationError::Auth(
                                    "the server offers no SASL mechanism this client knows (SCRAM-SHA-256)".into(),
                                ));
                            }
                            let s = ScramSha256::new(pw, ChannelBinding::unsupported());
                            frontend::sasl_initial_response(
                                SCRAM_SHA_256,
                                s.message(),
                                &mut self.output,
                            )?;
                            self.flush().await?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                ReplicationError::Protocol("SASL continue before SASL".into())
                            })?;
                            s.update(&body)
                                .map_err(|e| ReplicationError::Auth(e.to_string()))?;
                            frontend::sasl_response(s.message(), &mut self.output)?;
                            self.flush().await?;
                        }
                        12 => {
                            let s = scram.as_mut().ok_or_else(|| {
                                ReplicationError::Protocol("SASL final before SASL".into())
                            })?;
                            s.finish(&body)
                                .map_err(|e| ReplicationError::Auth(e.to_string()))?;
                        }
                        other => {
                            return Err(ReplicationError::Auth(format!(
                                "unsupported authentication request {other} (trust, password, md5 and scram-sha-256 are)"
                            )))
                        }
                    }
                }
                b'Z' => return Ok(()),
                b'E' => return Err(server_error(&frame.body)),
                // ParameterStatus, BackendKeyData, notices.
                _ => {}
            }
        }
    }

    /// Starts streaming `slot` from `from` with the `pgoutput` options for `publication`;
    /// returns once the server switched to CopyBoth.
    pub(super) async fn start(
        &mut self,
        slot: &str,
        publication: &str,
        from: Lsn,
    ) -> Result<(), ReplicationError> {
        // Both names are validated SQL identifiers ([a-z_][a-z0-9_]*).
        let sql = format!(
            "START_REPLICATION SLOT \"{slot}\" LOGICAL {from} \
             (\"proto_version\" '1', \"publication_names\" '\"{publication}\"')"
        );
        frontend::query(&sql, &mut self.output)?;
        self.flush().await?;
        loop {
            let frame = self.read_frame().await?;
            match frame.tag {
                b'W' => return Ok(()),
                b'E' => return Err(server_error(&frame.body)),
                b'N' | b'S' => {}
                other => {
                    return Err(ReplicationError::Protocol(format!(
                        "unexpected message {:?} after START_REPLICATION",
                        other as char
                    )))
                }
            }
        }
    }

    /// The next stream message (cancel safe: a partly read message stays buffered).
    pub(super) async fn next_message(&mut self) -> Result<Message, ReplicationError> {
        loop {
            let frame = self.read_frame().await?;
            match frame.tag {
                b'd' => return parse_copy_data(frame.body),
                b'E' => return Err(server_error(&frame.body)),
                b'c' => {
                    return Err(ReplicationError::Protocol(
                        "the server ended the stream (CopyDone)".into(),
                    ))
                }
                // Notices and parameter changes.
                _ => {}
            }
        }
    }

    /// Sends a standby status update: everything up to `flushed` is written, flushed and
    /// applied (no reply asked).
    pub(super) async fn status(&mut self, flushed: Lsn) -> Result<(), ReplicationError> {
        let mut body = BytesMut::with_capacity(34);
        body.put_u8(b'r');
        for _ in 0..3 {
            body.put_u64(flushed.0);
        }
        body.put_i64(pg_now_micros());
        body.put_u8(0);
        frontend::CopyData::new(body.freeze())?.write(&mut self.output);
        self.flush().await
    }

    /// Ends the stream politely (CopyDone, Terminate); errors are ignored.
    pub(super) async fn close(&mut self) {
        frontend::copy_done(&mut self.output);
        frontend::terminate(&mut self.output);
        let _ = self.flush().await;
    }

    async fn flush(&mut self) -> Result<(), ReplicationError> {
        self.io.write_all(&self.output).await?;
        self.output.clear();
        self.io.flush().await?;
        Ok(())
    }

    /// The next backend message (cancel safe).
    async fn read_frame(&mut self) -> Result<Frame, ReplicationError> {
        loop {
            if self.input.len() >= 5 {
                let len = i32::from_be_bytes([
                    self.input[1],
                    self.input[2],
                    self.input[3],
                    self.input[4],
                ]);
                let len = usize::try_from(len)
                    .ok()
                    .filter(|l| (4..=MAX_FRAME_BYTES).contains(l))
                    .ok_or_else(|| ReplicationError::Protocol(format!("bad length {len}")))?;
                if self.input.len() > len {
                    let mut frame = self.input.split_to(1 + len);
                    let tag = frame[0];
                    frame.advance(5);
                    return Ok(Frame {
                        tag,
                        body: frame.freeze(),
                    });
                }
                self.input.reserve(1 + len - self.input.len());
            }
            if self.io.read_buf(&mut self.input).await? == 0 {
                return Err(ReplicationError::Io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                )));
            }
        }
    }
}

fn no_password() -> ReplicationError {
    ReplicationError::Auth("the server asks for a password and the DSN has none".into())
}

/// A CopyData payload of the replication stream.
#[derive(Debug, PartialEq)]
pub(super) enum Message {
    /// XLogData.
    XLogData {
        /// WAL position of the record.
        start: Lsn,
        /// The `pgoutput` message.
        data: Bytes,
    },
    /// Primary keepalive.
    Keepalive {
        /// The server's sent position.
        wal_end: Lsn,
        /// Whether the server asks for a status update now.
        reply: bool,
    },
}

fn parse_copy_data(mut body: Bytes) -> Result<Message, ReplicationError> {
    let short = || ReplicationError::Protocol("short replication message".into());
    if body.is_empty() {
        return Err(short());
    }
    match body.get_u8() {
        b'w' => {
            if body.len() < 24 {
                return Err(short());
            }
            let start = Lsn(body.get_u64());
            let _wal_end = body.get_u64();
            let _sent_at = body.get_i64();
            Ok(Message::XLogData { start, data: body })
        }
        b'k' => {
            if body.len() < 17 {
                return Err(short());
            }
            let wal_end = Lsn(body.get_u64());
            let _sent_at = body.get_i64();
            Ok(Message::Keepalive {
                wal_end,
                reply: body.get_u8() == 1,
            })
        }
        other => Err(ReplicationError::Protocol(format!(
            "unknown replication message {:?}",
            other as char
        ))),
    }
}

fn take_i32(body: &mut Bytes) -> Result<i32, ReplicationError> {
    if body.len() < 4 {
        return Err(ReplicationError::Protocol("short message".into()));
    }
    Ok(body.get_i32())
}

/// An ErrorResponse's SQLSTATE and message.
fn server_error(body: &[u8]) -> ReplicationError {
    let (mut code, mut message) = (String::new(), String::new());
    let mut rest = body;
    while let Some((&field, tail)) = rest.split_first() {
        if field == 0 {
            break;
        }
        let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
        let value = String::from_utf8_lossy(&tail[..end]).into_owned();
        match field {
            b'C' => code = value,
            b'M' => message = value,
            _ => {}
        }
        rest = tail.get(end + 1..).unwrap_or_default();
    }
    ReplicationError::Server { code, message }
}

/// Microseconds since 2000-01-01 UTC.
fn pg_now_micros() -> i64 {
    let since_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let micros = since_unix.as_micros() as i64;
    micros - (PG_EPOCH_SECS as i64) * 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_data_messages_decode() {
        let mut w = BytesMut::new();
        w.put_u8(b'w');
        w.put_u64(0x1_0000_00a0);
        w.put_u64(0x1_0000_00b0);
        w.put_i64(5);
        w.put_slice(b"B...");
        assert_eq!(
            parse_copy_data(w.freeze()).unwrap(),
            Message::XLogData {
                start: Lsn(0x1_0000_00a0),
                data: Bytes::from_static(b"B...")
            }
        );
        let mut k = BytesMut::new();
        k.put_u8(b'k');
        k.put_u64(42);
        k.put_i64(5);
        k.put_u8(1);
        assert_eq!(
            parse_copy_data(k.freeze()).unwrap(),
            Message::Keepalive {
                wal_end: Lsn(42),
                reply: true
            }
        );
        assert!(parse_copy_data(Bytes::from_static(b"k\0")).is_err());
        assert!(parse_copy_data(Bytes::from_static(b"x")).is_err());
    }

    #[test]
    fn server_errors_keep_their_sqlstate() {
        let body = b"SERROR\0VERROR\0C42704\0Mreplication slot \"s\" does not exist\0\0";
        let e = server_error(body);
        assert_eq!(e.code(), Some("42704"));
        assert_eq!(
            e.to_string(),
            "replication slot \"s\" does not exist (SQLSTATE 42704)"
        );
    }
}
