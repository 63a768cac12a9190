//! RFC 8285 header extension elements (one-byte and two-byte forms).

use crate::rtp::RtpError;

/// RFC 8285 §4.2: the one-byte form's profile.
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// RFC 8285 §4.3: the two-byte form's profile is 0x100 followed by 4 application bits.
pub const TWO_BYTE_PROFILE_MASK: u16 = 0xFFF0;
const TWO_BYTE_PROFILE: u16 = 0x1000;

/// Checks that every element fits its block (RFC 8285 §4.2, §4.3).
pub(crate) fn validate_extensions(profile: u16, data: &[u8]) -> Result<(), RtpError> {
    let mut it = ExtensionIter::new(profile, data);
    for _ in it.by_ref() {}
    if it.error {
        Err(RtpError::BadExtensionElement)
    } else {
        Ok(())
    }
}

/// Iterates `(id, data)` elements; stops at the first malformed one (and remembers it).
#[derive(Debug, Clone)]
pub struct ExtensionIter<'a> {
    profile: u16,
    data: &'a [u8],
    pos: usize,
    error: bool,
}

impl<'a> ExtensionIter<'a> {
    pub(crate) fn new(profile: u16, data: &'a [u8]) -> Self {
        Self { profile, data, pos: 0, error: false }
    }
}

impl<'a> Iterator for ExtensionIter<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let one_byte = self.profile == ONE_BYTE_PROFILE;
        let two_byte = self.profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE;
        if !one_byte && !two_byte {
            return None;
        }
        loop {
            let first = *self.data.get(self.pos)?;
            if first == 0 {
                // Padding octet between elements (RFC 8285 §4.2, §4.3).
                self.pos += 1;
                continue;
            }
            let (id, len, header) = if one_byte {
                let id = first >> 4;
                if id == 0 {
                    // RFC 8285 §4.2: id 0 is reserved for padding; an octet with id 0 and a
                    // non-zero length is skipped as one padding octet, ignoring the length (as
                    // libwebrtc does), never returned as an element.
                    self.pos += 1;
                    continue;
                }
                if id == 15 {
                    // RFC 8285 §4.2: id 15 ends the processing of the block.
                    self.pos = self.data.len();
                    return None;
                }
                (id, usize::from(first & 0x0f) + 1, 1)
            } else {
                let Some(len) = self.data.get(self.pos + 1) else {
                    self.error = true;
                    self.pos = self.data.len();
                    return None;
                };
                (first, usize::from(*len), 2)
            };
            let start = self.pos + header;
            let Some(value) = self.data.get(start..start + len) else {
                self.error = true;
                self.pos = self.data.len();
                return None;
            };
            self.pos = start + len;
            return Some((id, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_byte_form_with_empty_element() {
        let data = [0x05, 0x00, 0x07, 0x03, 1, 2, 3, 0x00];
        let v: Vec<_> = ExtensionIter::new(0x1000, &data).collect();
        assert_eq!(v, vec![(5, &[][..]), (7, &[1, 2, 3][..])]);
        assert!(validate_extensions(0x1000, &data).is_ok());
        assert!(validate_extensions(0x1000, &[0x05, 0x09, 1]).is_err());
    }

    #[test]
    fn one_byte_id_15_stops_and_other_profiles_yield_nothing() {
        let data = [0x10, 0xAA, 0xF0, 0x20, 0xBB];
        let v: Vec<_> = ExtensionIter::new(ONE_BYTE_PROFILE, &data).collect();
        assert_eq!(v, vec![(1, &[0xAA][..])]);
        assert_eq!(ExtensionIter::new(0x1234, &data).count(), 0);
    }

    /// Found by the structured generator (`rtp/proptests.rs`): an octet with id 0 and a non-zero
    /// length was returned as element 0, which RFC 8285 reserves for padding.
    #[test]
    fn one_byte_id_0_is_a_padding_octet_whatever_its_length() {
        let data = [0x07, 0x10, 0xAA, 0x00];
        let v: Vec<_> = ExtensionIter::new(ONE_BYTE_PROFILE, &data).collect();
        assert_eq!(v, vec![(1, &[0xAA][..])]);
        assert!(validate_extensions(ONE_BYTE_PROFILE, &data).is_ok());
    }
}
