//! Decoding `pgoutput` (protocol version 1) messages: begin, commit, relation, insert,
//! update, delete, truncate; type and origin messages are skipped. Column values come in
//! text format.

use std::fmt;

/// A log sequence number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    /// PostgreSQL's `X/Y` form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl std::str::FromStr for Lsn {
    type Err = String;

    fn from_str(s: &str) -> Result<Lsn, String> {
        let (hi, lo) = s.split_once('/').ok_or_else(|| format!("bad LSN {s:?}"))?;
        let hi = u64::from_str_radix(hi, 16).map_err(|e| format!("bad LSN {s:?}: {e}"))?;
        let lo = u64::from_str_radix(lo, 16).map_err(|e| format!("bad LSN {s:?}: {e}"))?;
        Ok(Lsn((hi << 32) | lo))
    }
}

/// One column of a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Type OID (decides how the text value becomes JSON).
    pub type_oid: u32,
}

/// A relation (table) description, sent before its first change in a decoding session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// Relation OID.
    pub id: u32,
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Columns in order.
    pub columns: Vec<Column>,
}

/// One column value of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// An unchanged TOASTed value (not sent).
    Unchanged,
    /// The value in text format.
    Text(String),
}

/// A row image.
pub type Tuple = Vec<Value>;

/// A decoded `pgoutput` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgOutput {
    /// A transaction starts; `final_lsn` is its commit's LSN.
    Begin {
        /// LSN of the commit record.
        final_lsn: Lsn,
        /// Commit time, microseconds since 2000-01-01 UTC.
        commit_time: i64,
        /// Transaction id.
        xid: u32,
    },
    /// A transaction ends.
    Commit {
        /// LSN of the commit record.
        commit_lsn: Lsn,
        /// End of the commit record: where the slot may be confirmed to.
        end_lsn: Lsn,
    },
    /// A relation description.
    Relation(Relation),
    /// A row was inserted.
    Insert {
        /// Relation OID.
        rel: u32,
        /// The new row.
        new: Tuple,
    },
    /// A row was updated.
    Update {
        /// Relation OID.
        rel: u32,
        /// The old key (`K`) or whole old row (`O`, replica identity full), when sent.
        old: Option<Tuple>,
        /// The new row.
        new: Tuple,
    },
    /// A row was deleted.
    Delete {
        /// Relation OID.
        rel: u32,
        /// The old key or whole old row.
        old: Tuple,
    },
    /// Tables were truncated.
    Truncate {
        /// Relation OIDs.
        rels: Vec<u32>,
    },
    /// Anything else (type, origin, logical message): not routed.
    Other(u8),
}

/// A message that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pgoutput: {0}")]
pub struct DecodeError(pub String);

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError("message truncated".into()));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn cstr(&mut self) -> Result<String, DecodeError> {
        let end = self
            .buf
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| DecodeError("unterminated string".into()))?;
        let s = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    fn tuple(&mut self) -> Result<Tuple, DecodeError> {
        let n = self.u16()?;
        let mut out = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            out.push(match self.u8()? {
                b'n' => Value::Null,
                b'u' => Value::Unchanged,
                b't' => {
                    let len = self.u32()? as usize;
                    Value::Text(String::from_utf8_lossy(self.take(len)?).into_owned())
                }
                b'b' => {
                    let len = self.u32()? as usize;
                    self.take(len)?;
                    Value::Unchanged
                }
                other => return Err(DecodeError(format!("unknown tuple value kind {other}"))),
            });
        }
        Ok(out)
    }
}

/// Decodes one message.
pub fn decode(buf: &[u8]) -> Result<PgOutput, DecodeError> {
    let mut r = Reader { buf };
    let tag = r.u8()?;
    Ok(match tag {
        b'B' => PgOutput::Begin {
            final_lsn: Lsn(r.u64()?),
            commit_time: r.u64()? as i64,
            xid: r.u32()?,
        },
        b'C' => {
            r.u8()?;
            PgOutput::Commit {
                commit_lsn: Lsn(r.u64()?),
                end_lsn: Lsn(r.u64()?),
            }
        }
        b'R' => {
            let id = r.u32()?;
            let schema = r.cstr()?;
            let table = r.cstr()?;
            r.u8()?;
            let n = r.u16()?;
            let mut columns = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                r.u8()?;
                let name = r.cstr()?;
                let type_oid = r.u32()?;
                r.u32()?;
                columns.push(Column { name, type_oid });
            }
            PgOutput::Relation(Relation {
                id,
                schema: if schema.is_empty() {
                    "pg_catalog".into()
                } else {
                    schema
                },
                table,
                columns,
            })
        }
        b'I' => {
            let rel = r.u32()?;
            expect(r.u8()?, b'N')?;
            PgOutput::Insert {
                rel,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let rel = r.u32()?;
            let mut kind = r.u8()?;
            let mut old = None;
            if kind == b'K' || kind == b'O' {
                old = Some(r.tuple()?);
                kind = r.u8()?;
            }
            expect(kind, b'N')?;
            PgOutput::Update {
                rel,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let rel = r.u32()?;
            let kind = r.u8()?;
            if kind != b'K' && kind != b'O' {
                return Err(DecodeError(format!("delete: unexpected tuple kind {kind}")));
            }
            PgOutput::Delete {
                rel,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.u32()?;
            r.u8()?;
            let mut rels = Vec::new();
            for _ in 0..n {
                rels.push(r.u32()?);
            }
            PgOutput::Truncate { rels }
        }
        other => PgOutput::Other(other),
    })
}

fn expect(got: u8, want: u8) -> Result<(), DecodeError> {
    if got == want {
        Ok(())
    } else {
        Err(DecodeError(format!(
            "expected tuple kind {:?}, got {:?}",
            want as char, got as char
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// Messages captured from PostgreSQL 15 (`pg_logical_slot_peek_binary_changes`): a
    /// transaction inserting and updating `t_probe(id int primary key, v text)`, then a delete.
    #[test]
    fn decodes_captured_messages() {
        assert_eq!(
            decode(&hex("420000000001ddffe0000304d34d878b40000002e6")).unwrap(),
            PgOutput::Begin {
                final_lsn: Lsn(0x1dd_ffe0),
                commit_time: 0x0003_04d3_4d87_8b40,
                xid: 742
            }
        );
        let rel = decode(&hex(
            "520000401a7075626c696300745f70726f6265006400020169640000000017ffffffff00760000000019ffffffff",
        ))
        .unwrap();
        assert_eq!(
            rel,
            PgOutput::Relation(Relation {
                id: 0x401a,
                schema: "public".into(),
                table: "t_probe".into(),
                columns: vec![
                    Column {
                        name: "id".into(),
                        type_oid: 23
                    },
                    Column {
                        name: "v".into(),
                        type_oid: 25
                    }
                ]
            })
        );
        assert_eq!(
            decode(&hex("490000401a4e0002740000000131740000000161")).unwrap(),
            PgOutput::Insert {
                rel: 0x401a,
                new: vec![Value::Text("1".into()), Value::Text("a".into())]
            }
        );
        assert_eq!(
            decode(&hex("550000401a4e0002740000000131740000000162")).unwrap(),
            PgOutput::Update {
                rel: 0x401a,
                old: None,
                new: vec![Value::Text("1".into()), Value::Text("b".into())]
            }
        );
        assert_eq!(
            decode(&hex("43000000000001ddffe00000000001de0028000304d34d878b40")).unwrap(),
            PgOutput::Commit {
                commit_lsn: Lsn(0x1dd_ffe0),
                end_lsn: Lsn(0x1de_0028)
            }
        );
        assert_eq!(
            decode(&hex("440000401a4b00027400000001316e")).unwrap(),
            PgOutput::Delete {
                rel: 0x401a,
                old: vec![Value::Text("1".into()), Value::Null]
            }
        );
        assert!(decode(&hex("490000401a4e000274")).is_err(), "truncated");
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn lsn_text_round_trips() {
        let l: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(l, Lsn(0x16_B374_D848));
        assert_eq!(l.to_string(), "16/B374D848");
        assert!("nope".parse::<Lsn>().is_err());
    }
}
