//! The few protobuf wire-format primitives the Perfetto writer needs (no schema compiler).

/// A message being written.
#[derive(Default)]
pub struct Message {
    bytes: Vec<u8>,
}

impl Message {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push(value as u8 | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire_type));
    }

    /// A varint field (uint32/uint64/int32 >= 0/enum/bool).
    pub fn uint(&mut self, field: u32, value: u64) -> &mut Self {
        self.key(field, 0);
        self.varint(value);
        self
    }

    /// A fixed64 field.
    pub fn fixed64(&mut self, field: u32, value: u64) -> &mut Self {
        self.key(field, 1);
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A string field.
    pub fn string(&mut self, field: u32, value: &str) -> &mut Self {
        self.bytes_field(field, value.as_bytes())
    }

    /// A nested message field.
    pub fn message(&mut self, field: u32, message: &Message) -> &mut Self {
        self.bytes_field(field, &message.bytes)
    }

    fn bytes_field(&mut self, field: u32, value: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(value.len() as u64);
        self.bytes.extend_from_slice(value);
        self
    }

    /// The encoded bytes.
    #[cfg(test)]
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Writes this message to `out` as field `field` of an enclosing message (a trace's
    /// packets one by one, never the whole trace in memory); returns the bytes written.
    pub fn write_as_field(
        &self,
        field: u32,
        out: &mut impl std::io::Write,
    ) -> std::io::Result<u64> {
        let mut head = Message::default();
        head.key(field, 2);
        head.varint(self.bytes.len() as u64);
        out.write_all(&head.bytes)?;
        out.write_all(&self.bytes)?;
        Ok((head.bytes.len() + self.bytes.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_wire_format() {
        let mut inner = Message::default();
        inner.uint(1, 150);
        let mut outer = Message::default();
        outer
            .string(2, "hi")
            .message(3, &inner)
            .fixed64(47, 1)
            .uint(4, u64::MAX);
        let bytes = outer.into_bytes();
        assert_eq!(&bytes[..4], &[0x12, 2, b'h', b'i']);
        assert_eq!(&bytes[4..9], &[0x1a, 3, 0x08, 0x96, 0x01]);
        assert_eq!(&bytes[9..11], &[0xf9, 0x02], "field 47, wire type 1");
        assert_eq!(&bytes[11..19], &1u64.to_le_bytes());
        assert_eq!(bytes[19], 0x20);
        assert_eq!(bytes.len(), 20 + 10, "u64::MAX is a ten-byte varint");
    }

    #[test]
    fn a_field_written_alone_is_the_field_in_its_message() {
        let mut inner = Message::default();
        inner.string(2, "hi").uint(1, 300);
        let mut outer = Message::default();
        outer.message(1, &inner).message(1, &inner);
        let mut streamed = Vec::new();
        let mut written = 0;
        for _ in 0..2 {
            written += inner.write_as_field(1, &mut streamed).unwrap();
        }
        assert_eq!(streamed, outer.into_bytes());
        assert_eq!(written, streamed.len() as u64);
    }
}
