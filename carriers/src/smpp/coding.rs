//! Text codings a carrier's `submit_sm`s use, split into concatenated parts between
//! characters, never inside one:
//!
//! - [`Coding::Utf16`] (`data_coding` 0x08): what handsets read as UCS-2, with a
//!   character beyond it (an emoji) as a surrogate pair, kept in one part. 70
//!   characters of the first plane a part.
//! - [`Coding::EucKr`] (KS C 5601, 0x0E), for carriers that ask for it
//!   (`data_coding = "euc_kr"`): Korean in two bytes, ASCII in one, so a part holds
//!   140 ASCII characters or 70 Korean ones. A text with a character EUC-KR has no
//!   code for goes in UTF-16 instead (a fallback of [`rusmpp::extra::fallback`]).
use rusmpp::extra::concatenation::{Concatenation, Concatenator, MAX_PARTS};
use rusmpp::extra::encoding::Encoder;
use rusmpp::values::DataCoding;

/// A text coding, split character by character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Utf16,
    EucKr,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodingError {
    #[error("{0:?} has no EUC-KR code")]
    Unmappable(char),
    #[error("the text needs {0} parts; at most {MAX_PARTS}")]
    TooManyParts(usize),
    #[error("a part cannot hold one character")]
    PartTooSmall,
}

impl Coding {
    fn data_coding(self) -> DataCoding {
        match self {
            Coding::Utf16 => DataCoding::Ucs2,
            Coding::EucKr => DataCoding::Ksc5601,
        }
    }

    /// `character` in this coding.
    fn encoded(self, character: char) -> Result<Vec<u8>, CodingError> {
        match self {
            Coding::Utf16 => {
                let mut units = [0; 2];
                Ok(character
                    .encode_utf16(&mut units)
                    .iter()
                    .flat_map(|unit| unit.to_be_bytes())
                    .collect())
            }
            Coding::EucKr => {
                let mut buffer = [0; 4];
                let (bytes, _, unmappable) =
                    encoding_rs::EUC_KR.encode(character.encode_utf8(&mut buffer));
                if unmappable {
                    return Err(CodingError::Unmappable(character));
                }
                Ok(bytes.into_owned())
            }
        }
    }
}

impl Encoder for Coding {
    type Error = CodingError;

    /// The whole text, for a `message_payload`.
    fn encode(&self, message: &str) -> Result<(Vec<u8>, DataCoding), Self::Error> {
        let mut bytes = Vec::with_capacity(message.len() * 2);
        for character in message.chars() {
            bytes.extend(self.encoded(character)?);
        }
        Ok((bytes, self.data_coding()))
    }
}

impl Concatenator for Coding {
    type Error = CodingError;

    fn concatenate(
        &self,
        message: &str,
        max_message_size: usize,
        part_header_size: usize,
    ) -> Result<(Concatenation, DataCoding), Self::Error> {
        let characters = message
            .chars()
            .map(|character| self.encoded(character))
            .collect::<Result<Vec<_>, _>>()?;
        let total: usize = characters.iter().map(Vec::len).sum();
        if total <= max_message_size {
            return Ok((
                Concatenation::Single(characters.concat()),
                self.data_coding(),
            ));
        }
        let capacity = max_message_size.saturating_sub(part_header_size);
        let mut parts: Vec<Vec<u8>> = vec![Vec::new()];
        for character in characters {
            if character.len() > capacity {
                return Err(CodingError::PartTooSmall);
            }
            let current = parts.last_mut().expect("there is a part");
            if current.len() + character.len() > capacity {
                parts.push(character);
            } else {
                current.extend_from_slice(&character);
            }
        }
        if parts.len() > MAX_PARTS {
            return Err(CodingError::TooManyParts(parts.len()));
        }
        Ok((Concatenation::Concatenated(parts), self.data_coding()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(coding: Coding, text: &str) -> Vec<Vec<u8>> {
        match coding.concatenate(text, 140, 7).unwrap() {
            (Concatenation::Single(bytes), _) => vec![bytes],
            (Concatenation::Concatenated(parts), _) => parts,
        }
    }

    fn euc_kr(bytes: &[u8]) -> String {
        let (text, _, malformed) = encoding_rs::EUC_KR.decode(bytes);
        assert!(!malformed, "a part cut a character: {bytes:?}");
        text.into_owned()
    }

    fn utf16(bytes: &[u8]) -> String {
        let units: Vec<u16> = bytes
            .chunks(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]))
            .collect();
        String::from_utf16(&units).expect("a part cut a surrogate pair")
    }

    #[test]
    fn euc_kr_parts_are_cut_between_characters() {
        assert_eq!(parts(Coding::EucKr, "안녕 RNS"), [euc_kr_bytes("안녕 RNS")]);
        // An odd ASCII prefix puts the 133-byte cut inside a Korean character unless
        // the cut moves back.
        let text = format!("abc{}", "가나다라마바사아자차".repeat(10));
        let cut = parts(Coding::EucKr, &text);
        assert_eq!(cut.len(), 2);
        assert!(cut.iter().all(|part| part.len() <= 133));
        assert_eq!(
            cut.iter().map(|part| euc_kr(part)).collect::<String>(),
            text
        );
        assert_eq!(
            Coding::EucKr.concatenate("hello 😀", 140, 7).unwrap_err(),
            CodingError::Unmappable('😀')
        );
    }

    #[test]
    fn utf16_keeps_surrogate_pairs_in_one_part() {
        assert_eq!(
            parts(Coding::Utf16, "감사 🙏"),
            [vec![
                0xAC, 0x10, 0xC0, 0xAC, 0x00, 0x20, 0xD8, 0x3D, 0xDE, 0x4F
            ]]
        );
        // 66 characters fill 132 bytes: the emoji's pair would end at 136, past the
        // 133 a part holds, so it starts the next part.
        let text = format!("{}🙏{}", "가".repeat(66), "나".repeat(70));
        let cut = parts(Coding::Utf16, &text);
        assert!(cut
            .iter()
            .all(|part| part.len() <= 133 && part.len() % 2 == 0));
        assert_eq!(cut.iter().map(|part| utf16(part)).collect::<String>(), text);
    }

    fn euc_kr_bytes(text: &str) -> Vec<u8> {
        encoding_rs::EUC_KR.encode(text).0.into_owned()
    }
}
