//! Sealing of membership packets with a shared key: XChaCha20-Poly1305 with a random
//! nonce per packet, the key being SHA-256 of the secret. Without a key, packets go as
//! they are behind a one-byte marker, so a keyed and an unkeyed speaker never confuse
//! each other's packets.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngExt;
use sha2::{Digest, Sha256};

const PLAIN: u8 = 0;
const SEALED: u8 = 1;
const NONCE: usize = 24;

/// Seals and opens packets.
#[derive(Clone)]
pub struct Sealer {
    cipher: Option<XChaCha20Poly1305>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("keyed", &self.cipher.is_some())
            .finish()
    }
}

impl Sealer {
    /// A sealer for `secret` (`None`: no protection).
    pub fn new(secret: Option<&[u8]>) -> Self {
        Self {
            cipher: secret.map(|s| {
                let digest = Sha256::digest(s);
                XChaCha20Poly1305::new(&Key::try_from(digest.as_slice()).expect("SHA-256 is 32 bytes"))
            }),
        }
    }

    /// Bytes added to each packet.
    pub fn overhead(&self) -> usize {
        if self.cipher.is_some() { 1 + NONCE + 16 } else { 1 }
    }

    /// The packet to send for `data`.
    pub fn seal(&self, data: &[u8]) -> Vec<u8> {
        match &self.cipher {
            None => [&[PLAIN][..], data].concat(),
            Some(cipher) => {
                let mut nonce = [0u8; NONCE];
                rand::rng().fill(&mut nonce);
                let body = cipher
                    .encrypt(&XNonce::from(nonce), data)
                    .expect("encryption of a bounded buffer cannot fail");
                [&[SEALED][..], &nonce, &body].concat()
            }
        }
    }

    /// The data of a received packet; `None` when it is not ours (wrong key, no key,
    /// garbage).
    pub fn open(&self, packet: &[u8]) -> Option<Vec<u8>> {
        let (&kind, rest) = packet.split_first()?;
        match (&self.cipher, kind) {
            (None, PLAIN) => Some(rest.to_vec()),
            (Some(cipher), SEALED) if rest.len() >= NONCE => {
                let (nonce, body) = rest.split_at(NONCE);
                let nonce: [u8; NONCE] = nonce.try_into().ok()?;
                cipher.decrypt(&XNonce::from(nonce), body).ok()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_the_same_key_opens() {
        let a = Sealer::new(Some(b"k1"));
        let b = Sealer::new(Some(b"k2"));
        let none = Sealer::new(None);
        let p = a.seal(b"hello");
        assert_eq!(p.len(), 5 + a.overhead());
        assert_eq!(a.open(&p).as_deref(), Some(&b"hello"[..]));
        assert_eq!(b.open(&p), None);
        assert_eq!(none.open(&p), None);
        assert_eq!(
            a.open(&none.seal(b"hello")),
            None,
            "a keyed speaker ignores plain packets"
        );
        assert_eq!(none.open(&none.seal(b"hello")).as_deref(), Some(&b"hello"[..]));
        assert_ne!(a.seal(b"x"), a.seal(b"x"), "fresh nonce per packet");
    }

    proptest! {
        #[test]
        fn garbage_never_opens_or_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(Sealer::new(Some(b"k")).open(&bytes), None);
        }

        #[test]
        fn tampering_is_detected(data in proptest::collection::vec(any::<u8>(), 0..100), at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let s = Sealer::new(Some(b"k"));
            let mut p = s.seal(&data);
            let i = at.index(p.len());
            p[i] ^= 1 << bit;
            prop_assert_eq!(s.open(&p), None);
        }
    }
}
