//! [`DeflateStream`]: the byte-stream layer beneath tungstenite that turns the peer's
//! compressed messages into plain frames.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{codec, DeflateError};

/// Size bounds on the peer's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message on the wire (the payload of all its frames, compressed or not).
    pub wire: usize,
    /// Largest message once inflated.
    pub inflated: usize,
}

/// A stream whose reads pass the peer's frames through, except compressed messages (RSV1 on
/// their first frame), which are collected, inflated and handed on as one plain frame of the
/// same type. Writes go straight through.
///
/// Plain ([`DeflateStream::plain`]) it adds one word to a connection and does nothing. With
/// compression negotiated the parser state is boxed (about 120 bytes); a message being
/// collected and its inflated form exist only until tungstenite has read them.
///
/// Bounds: every data message's wire bytes are checked against [`Limits::wire`] from the
/// frame headers, before the payload arrives; inflating stops past [`Limits::inflated`].
/// Either gives [`DeflateError::TooBig`]; invalid DEFLATE data gives
/// [`DeflateError::Corrupt`]. The error is returned once the bytes before it were read, and
/// again on every later read.
#[derive(Debug)]
pub struct DeflateStream<S> {
    inner: S,
    reader: Option<Box<Reader>>,
}

impl<S> DeflateStream<S> {
    /// A stream with no extension: reads and writes go straight through.
    pub fn plain(inner: S) -> Self {
        DeflateStream {
            inner,
            reader: None,
        }
    }

    /// A stream on which permessage-deflate was negotiated. `server`: this end is the server,
    /// so the peer's frames are masked (and the plain frames handed on are masked with a zero
    /// key, which leaves the bytes as they are).
    pub fn negotiated(inner: S, server: bool, limits: Limits) -> Self {
        let mut s = DeflateStream::plain(inner);
        s.enable(server, limits);
        s
    }

    /// Turns the extension on (a client, once the handshake answer accepted it).
    pub fn enable(&mut self, server: bool, limits: Limits) {
        self.reader = Some(Box::new(Reader::new(server, limits)));
    }

    /// Whether permessage-deflate is on for this stream.
    pub fn is_negotiated(&self) -> bool {
        self.reader.is_some()
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for DeflateStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(reader) = this.reader.as_deref_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        loop {
            if reader.serve_pending(buf) {
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = reader.failed {
                return Poll::Ready(Err(e.into()));
            }
            let dst = buf.initialize_unfilled();
            if dst.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let mut rb = ReadBuf::new(dst);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                return Poll::Ready(Ok(()));
            }
            let kept = reader.process(&mut dst[..n]);
            if kept > 0 {
                buf.advance(kept);
                return Poll::Ready(Ok(()));
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for DeflateStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The frame parser of a negotiated stream.
#[derive(Debug)]
struct Reader {
    /// The peer is a client (its frames are masked).
    server: bool,
    limits: Limits,
    /// The header being read (2 to 14 bytes) and how much of it has arrived.
    head: [u8; 14],
    head_len: usize,
    /// Payload bytes of the current frame still to come (`None`: reading a header).
    left: Option<u64>,
    /// The current frame's mask and the offset of the next payload byte in it.
    mask: [u8; 4],
    mask_pos: usize,
    /// The current frame's payload belongs to the compressed message being collected.
    absorb: bool,
    /// The current frame ends its message.
    fin: bool,
    /// Wire bytes of the current data message so far.
    msg_wire: u64,
    /// A compressed message being collected: text or binary, and its bytes (unmasked).
    packed: Option<(bool, Vec<u8>)>,
    /// Bytes to hand on before anything newer: a plain frame built from an inflated message,
    /// and whatever followed it in the same read.
    out: Vec<u8>,
    out_pos: usize,
    /// The failure, once there was one.
    failed: Option<DeflateError>,
}

impl Reader {
    fn new(server: bool, limits: Limits) -> Reader {
        Reader {
            server,
            limits,
            head: [0; 14],
            head_len: 0,
            left: None,
            mask: [0; 4],
            mask_pos: 0,
            absorb: false,
            fin: false,
            msg_wire: 0,
            packed: None,
            out: Vec::new(),
            out_pos: 0,
            failed: None,
        }
    }

    /// Copies pending bytes into `buf`; true when some were copied.
    fn serve_pending(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        if self.out_pos == self.out.len() || buf.remaining() == 0 {
            return false;
        }
        let n = buf.remaining().min(self.out.len() - self.out_pos);
        buf.put_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        if self.out_pos == self.out.len() {
            // Nothing stays allocated once tungstenite has it all.
            self.out = Vec::new();
            self.out_pos = 0;
        }
        true
    }

    /// Parses freshly read bytes in place: what passes through is moved to the front of
    /// `data` (returned: how many bytes), or appended to `out` once something is pending there.
    fn process(&mut self, data: &mut [u8]) -> usize {
        let mut r = 0;
        let mut w = 0;
        while r < data.len() && self.failed.is_none() {
            match self.left {
                None => {
                    // Header: the first two bytes tell its length.
                    let want = if self.head_len < 2 {
                        2
                    } else {
                        header_len(&self.head)
                    };
                    let n = (want - self.head_len).min(data.len() - r);
                    self.head[self.head_len..self.head_len + n].copy_from_slice(&data[r..r + n]);
                    self.head_len += n;
                    r += n;
                    if self.head_len < 2 || self.head_len < header_len(&self.head) {
                        continue;
                    }
                    if let Err(e) = self.start_frame() {
                        self.failed = Some(e);
                        break;
                    }
                    if !self.absorb {
                        let head = self.head;
                        self.emit(data, &mut w, r, &head[..self.head_len]);
                    }
                    self.head_len = 0;
                    if self.left == Some(0) {
                        self.end_frame(data, &mut w, r);
                    }
                }
                Some(left) => {
                    let n = (left.min((data.len() - r) as u64)) as usize;
                    if self.absorb {
                        let packed = &mut self.packed.as_mut().expect("absorbing").1;
                        let start = packed.len();
                        packed.extend_from_slice(&data[r..r + n]);
                        for (i, b) in packed[start..].iter_mut().enumerate() {
                            *b ^= self.mask[(self.mask_pos + i) % 4];
                        }
                        self.mask_pos = (self.mask_pos + n) % 4;
                    } else if self.out.is_empty() {
                        data.copy_within(r..r + n, w);
                        w += n;
                    } else {
                        self.out.extend_from_slice(&data[r..r + n]);
                    }
                    r += n;
                    self.left = Some(left - n as u64);
                    if left == n as u64 {
                        self.end_frame(data, &mut w, r);
                    }
                }
            }
        }
        w
    }

    /// A header is complete: decides where its payload goes.
    fn start_frame(&mut self) -> Result<(), DeflateError> {
        let h = &self.head;
        let fin = h[0] & 0x80 != 0;
        let rsv1 = h[0] & 0x40 != 0;
        let opcode = h[0] & 0x0f;
        let masked = h[1] & 0x80 != 0;
        let len = match h[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
            127 => u64::from_be_bytes(h[2..10].try_into().expect("8 bytes")),
            n => u64::from(n),
        };
        self.mask = if masked {
            let at = header_len(h) - 4;
            h[at..at + 4].try_into().expect("4 bytes")
        } else {
            [0; 4]
        };
        self.mask_pos = 0;
        self.left = Some(len);
        self.fin = fin;
        self.absorb = false;
        if opcode >= 8 {
            // Control frames pass through (tungstenite checks their rules).
            return Ok(());
        }
        if opcode != 0 {
            if self.packed.is_some() {
                return Err(DeflateError::Protocol);
            }
            self.msg_wire = 0;
        }
        self.msg_wire = self.msg_wire.saturating_add(len);
        if self.msg_wire > self.limits.wire as u64 {
            return Err(DeflateError::TooBig);
        }
        match (opcode, rsv1, self.packed.is_some()) {
            (1 | 2, true, false) => {
                self.packed = Some((opcode == 1, Vec::new()));
                self.absorb = true;
            }
            (0, true, true) => return Err(DeflateError::Protocol),
            (0, false, true) => self.absorb = true,
            _ => {}
        }
        Ok(())
    }

    /// The current frame's payload is complete.
    fn end_frame(&mut self, data: &mut [u8], w: &mut usize, r: usize) {
        self.left = None;
        if !(self.absorb && self.fin) {
            return;
        }
        let (text, packed) = self.packed.take().expect("absorbing");
        match codec::inflate(&packed, self.limits.inflated) {
            Ok(message) => {
                let head = plain_header(text, message.len(), self.server);
                self.emit(data, w, r, &head.0[..head.1]);
                self.emit(data, w, r, &message);
            }
            Err(e) => self.failed = Some(e),
        }
    }

    /// Hands `bytes` on: in place when nothing is pending and they fit before the unread
    /// part of `data` (which starts at `r`), else into `out`.
    fn emit(&mut self, data: &mut [u8], w: &mut usize, r: usize, bytes: &[u8]) {
        if self.out.is_empty() && *w + bytes.len() <= r {
            data[*w..*w + bytes.len()].copy_from_slice(bytes);
            *w += bytes.len();
        } else {
            self.out.extend_from_slice(bytes);
        }
    }
}

/// The full length of a frame header whose first two bytes are known.
fn header_len(h: &[u8; 14]) -> usize {
    let ext = match h[1] & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if h[1] & 0x80 != 0 { 4 } else { 0 }
}

/// The header of one final, uncompressed text or binary frame of `len` bytes; masked with a
/// zero key when it goes to a server-role reader (which requires masked frames).
fn plain_header(text: bool, len: usize, masked: bool) -> ([u8; 14], usize) {
    let mut h = [0u8; 14];
    h[0] = 0x80 | if text { 1 } else { 2 };
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut n = if len < 126 {
        h[1] = mask_bit | len as u8;
        2
    } else if len <= usize::from(u16::MAX) {
        h[1] = mask_bit | 126;
        h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        4
    } else {
        h[1] = mask_bit | 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    if masked {
        n += 4; // zero key: the bytes already there
    }
    (h, n)
}

#[cfg(test)]
mod tests;
