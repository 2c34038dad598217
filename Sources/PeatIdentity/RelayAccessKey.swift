/// The key a relay admits formation members with (`PEAT_RELAY_ACCESS_KEY`).
///
/// Derivation: HKDF-SHA256(salt: formation ID bytes, IKM: the formation's 32-byte shared secret
/// (as `FormationKey`), info: `peat-relay-v1-access`, 32 bytes). HKDF's output reveals nothing about
/// its input, and the info string differs from the formation key's (`peat-protocol-v1-formation`)
/// and from every device context, so a relay that holds this key can compute neither the formation
/// key nor any device key: it can admit members, and it can prove to them that it was given the
/// key, nothing more.
///
/// The text form is standard padded base64 of the 32 bytes (`peat-mesh-node relay-key` prints it).
/// Key bytes are zeroed on release and never shown; errors never quote the input.
public struct RelayAccessKey: Sendable, CustomStringConvertible {
    /// The number of key bytes.
    public static let byteCount = 32
    /// The HKDF info string of the relay access key.
    static let hkdfInfo = Array("peat-relay-v1-access".utf8)

    let key: SecretBytes

    /// Derives the relay access key of `formationID` from the formation secret.
    public init(secret: FormationSecret, formationID: String = FormationKey.defaultFormationID) {
        let formation = secret.formationKey(formationID: formationID)
        key = SecretBytes(count: Self.byteCount) { out in
            Array(formationID.utf8).withUnsafeBytes { salt in
                Self.hkdfInfo.withUnsafeBytes { info in
                    formation.sharedSecret.withUnsafeBytes { ikm in
                        HKDFSHA256.derive(ikm: ikm, salt: salt, info: info, into: out)
                    }
                }
            }
        }
    }

    /// Parses the configured text: trimmed, standard padded base64 of exactly 32 bytes.
    /// - Throws: `IdentityError` with `.invalidBase64` or `.invalidLength`, never quoting the input.
    public init(base64: String) throws(IdentityError) {
        let decoded: FormationSecret
        do {
            decoded = try FormationSecret(base64: base64)
        } catch let error where error.code == .invalidBase64 {
            throw IdentityError(code: .invalidBase64, message: "the relay access key is not standard padded base64")
        } catch {
            throw IdentityError(code: .invalidLength, message: "the relay access key must decode to \(Self.byteCount) bytes")
        }
        guard decoded.byteCount == Self.byteCount else {
            throw IdentityError(
                code: .invalidLength, message: "the relay access key decodes to \(decoded.byteCount) bytes, not \(Self.byteCount)")
        }
        key = decoded.bytes
    }

    /// The key as standard padded base64, the form `PEAT_RELAY_ACCESS_KEY` takes.
    ///
    /// Hand it to the relay's secret store, never to a log.
    public func base64EncodedString() -> String {
        key.withUnsafeBytes { raw in
            // FormationSecret's encoder; the 32 bytes are at least its minimum.
            (try? FormationSecret(rawBytes: raw))?.base64EncodedString() ?? ""
        }
    }

    /// HMAC-SHA256 under the access key over the concatenated `parts`.
    public func authenticationCode(_ parts: [[UInt8]]) -> [UInt8] {
        key.withUnsafeBytes { HMACSHA256.authenticationCode(for: parts, key: $0) }
    }

    /// Whether `code` is the HMAC of `parts`, compared in constant time.
    public func verify(_ code: [UInt8], for parts: [[UInt8]]) -> Bool {
        constantTimeEqual(authenticationCode(parts), code)
    }

    public var description: String { "RelayAccessKey(redacted)" }
}
