// swift-format-ignore-file: AlwaysUseLowerCamelCase

// The vector fields are named as in shared/vectors/identity.json.
import Foundation
import Testing

/// The reference vectors of `Vectors/identity.json` (a copy of `shared/vectors/identity.json`).
struct IdentityVectors: Decodable {
    struct DeviceKey: Decodable, Sendable, CustomTestStringConvertible {
        let seed_utf8: String
        let context: String
        let secret_key_hex: String
        let public_key_hex: String
        let device_id: String
        var testDescription: String { "\(seed_utf8)/\(context)" }
    }

    struct NodeIdentity: Decodable, Sendable, CustomTestStringConvertible {
        let PEAT_FORMATION_SECRET: String
        let HOSTNAME: String
        let public_key_hex: String
        let device_id: String
        var testDescription: String { HOSTNAME }
    }

    struct FormationKeyVector: Decodable, Sendable, CustomTestStringConvertible {
        let formation_id: String
        let secret_base64: String
        let shared_secret_hex: String
        let hmac_key_hex: String
        let hmac_sha256_nonce_zeros_then_id_hex: String
        let hmac_sha256_nonce_0_to_31_then_id_hex: String
        var testDescription: String { "\(formation_id)/\(secret_base64.prefix(8))" }
    }

    let device_keys: [DeviceKey]
    let node_identities: [NodeIdentity]
    let formation_keys: [FormationKeyVector]

    static let shared: IdentityVectors = {
        let url = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()
            .appendingPathComponent("Vectors/identity.json")
        do {
            return try JSONDecoder().decode(IdentityVectors.self, from: Data(contentsOf: url))
        } catch {
            fatalError("cannot load identity vectors at \(url.path): \(error)")
        }
    }()
}

/// Decodes test hex; test inputs are known-good.
func bytes(hex: String) -> [UInt8] {
    precondition(hex.count % 2 == 0)
    var out: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        out.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return out
}

func hex(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
}
