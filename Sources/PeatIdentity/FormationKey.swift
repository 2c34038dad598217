/// The key every member of a formation derives from the shared secret, used to prove membership.
///
/// Derivation (identical to the original's `FormationKey::from_base64`):
/// - shared secret = the secret bytes if exactly 32, else their SHA-256;
/// - HMAC key = HKDF-SHA256(salt: formation ID bytes, IKM: shared secret,
///   info: `peat-protocol-v1-formation`, 32 bytes).
///
/// Two formations that share a base secret still get unrelated keys, because the formation ID
/// is the salt. Key bytes are zeroed on release and never shown.
public struct FormationKey: Sendable, CustomStringConvertible {
    /// The formation ID the node uses: `peat`.
    public static let defaultFormationID = "peat"

    /// The HKDF info string of the formation key.
    static let hkdfInfo = Array("peat-protocol-v1-formation".utf8)

    /// The formation this key belongs to.
    public let formationID: String

    /// The 32-byte shared secret (kept for the test vectors; never leaves the module).
    let sharedSecret: SecretBytes

    /// The 32-byte HMAC key.
    let hmacKey: SecretBytes

    /// Derives the key of `formationID` from secret bytes of any length.
    /// - Parameters:
    ///   - formationID: The formation's name; the node uses `defaultFormationID`.
    ///   - secret: The shared secret bytes (decoded, not base64).
    public init<Bytes: Collection<UInt8>>(formationID: String = FormationKey.defaultFormationID, secret: Bytes) {
        self.formationID = formationID
        let shared: SecretBytes
        if secret.count == 32 {
            shared = SecretBytes(copying: secret)
        } else {
            var digest = SHA256.hash(secret)
            shared = SecretBytes(copying: digest)
            zeroize(&digest)
        }
        sharedSecret = shared
        hmacKey = SecretBytes(count: HMACSHA256.byteCount) { out in
            Array(formationID.utf8).withUnsafeBytes { salt in
                Self.hkdfInfo.withUnsafeBytes { info in
                    shared.withUnsafeBytes { ikm in
                        HKDFSHA256.derive(ikm: ikm, salt: salt, info: info, into: out)
                    }
                }
            }
        }
    }

    /// HMAC-SHA256 under the formation key over the concatenated `parts`.
    func authenticate(_ parts: [[UInt8]]) -> [UInt8] {
        hmacKey.withUnsafeBytes { HMACSHA256.authenticationCode(for: parts, key: $0) }
    }

    public var description: String { "FormationKey(formation_id: \(formationID), key: redacted)" }
}
