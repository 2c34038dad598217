/// A device's identity: the first 16 bytes of SHA-256 of its Ed25519 public key.
///
/// Shown and parsed as 32 lowercase hexadecimal characters. Ordering is byte-wise, so every
/// node breaks ties (such as two simultaneous dials) the same way.
public struct DeviceID: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    /// The number of bytes in a device ID.
    public static let byteCount = 16

    /// The 16 raw bytes.
    public let rawRepresentation: [UInt8]

    /// Creates a device ID from its 16 raw bytes.
    /// - Throws: `IdentityError` with code `.invalidLength` for any other length.
    public init<Bytes: Collection<UInt8>>(rawRepresentation bytes: Bytes) throws(IdentityError) {
        rawRepresentation = try IdentityError.exactBytes(bytes, count: Self.byteCount, "a device ID")
    }

    /// Derives the device ID of a public key.
    public init(publicKey: DevicePublicKey) {
        rawRepresentation = Array(SHA256.hash(publicKey.rawRepresentation).prefix(Self.byteCount))
    }

    /// Parses 32 hexadecimal characters (either case).
    /// - Throws: `IdentityError` with code `.invalidHex` for any other input.
    public init(hex: String) throws(IdentityError) {
        guard hex.utf8.count == Self.byteCount * 2, let bytes = Hex.decode(hex) else {
            throw IdentityError(
                code: .invalidHex,
                message: "a device ID is \(Self.byteCount * 2) hexadecimal characters, got \(Self.describe(hex))")
        }
        rawRepresentation = bytes
    }

    /// The 32 lowercase hexadecimal characters.
    public var hex: String { Hex.encode(rawRepresentation) }

    public var description: String { hex }

    public static func < (lhs: DeviceID, rhs: DeviceID) -> Bool {
        lhs.rawRepresentation.lexicographicallyPrecedes(rhs.rawRepresentation)
    }

    public init(from decoder: any Decoder) throws {
        let string = try decoder.singleValueContainer().decode(String.self)
        self = try DeviceID(hex: string)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(hex)
    }

    /// A short, safe rendering of bad input for an error message (device IDs are not secret, but
    /// the input may be anything, so it is truncated and control characters are escaped).
    private static func describe(_ input: String) -> String {
        let shown = input.prefix(40).unicodeScalars.map { scalar in
            scalar.properties.generalCategory == .control ? scalar.escaped(asASCII: true) : String(scalar)
        }.joined()
        return "\"\(shown)\(input.count > 40 ? "…" : "")\" (\(input.utf8.count) bytes)"
    }
}
