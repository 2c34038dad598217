import Crypto
import Foundation
import PeatTestSupport
import PropertyBased
import Testing

/// The `identity` command, run as a separate process exactly as operators run it.
struct IdentityCommandTests {
    static let secret = "dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc4"

    /// `node_identities` of shared/vectors/identity.json.
    @Test(arguments: [
        ("peat-mesh-0", "f15e5546858a28909aae7c0e24e0ffe1"),
        ("peat-mesh-1", "6249fce8bedd0145bde16f39d326a57c"),
        ("peat-mesh-2", "79cd6fa4f6b768140ea7330b1c5160c7"),
        ("node-a", "62dad4f97530c262f9ca69202b973814"),
    ])
    func printsReferenceIdentity(hostname: String, deviceID: String) throws {
        let result = try NodeProcess.run(["identity"], environment: ["PEAT_FORMATION_SECRET": Self.secret, "HOSTNAME": hostname])
        #expect(result.status == 0)
        #expect(result.stdout == "node_id=\(hostname) device_id=\(deviceID)\n")
        #expect(result.stderr.isEmpty)
    }

    @Test func hostnameDefaultsToPeatMeshZero() throws {
        let result = try NodeProcess.run(["identity"], environment: ["PEAT_FORMATION_SECRET": Self.secret])
        #expect(result.stdout == "node_id=peat-mesh-0 device_id=f15e5546858a28909aae7c0e24e0ffe1\n")
    }

    @Test func identityContextReplacesHostnameAsContext() throws {
        let result = try NodeProcess.run(
            ["identity"],
            environment: ["PEAT_FORMATION_SECRET": Self.secret, "HOSTNAME": "peat-mesh-0", "PEAT_IDENTITY_CONTEXT": "node-a"])
        #expect(result.stdout == "node_id=node-a device_id=62dad4f97530c262f9ca69202b973814\n")
    }

    @Test func emptyIdentityContextCountsAsUnset() throws {
        let result = try NodeProcess.run(
            ["identity"],
            environment: ["PEAT_FORMATION_SECRET": Self.secret, "HOSTNAME": "peat-mesh-1", "PEAT_IDENTITY_CONTEXT": ""])
        #expect(result.stdout == "node_id=peat-mesh-1 device_id=6249fce8bedd0145bde16f39d326a57c\n")
    }

    @Test func secretIsTrimmedLikeTheOriginal() throws {
        let result = try NodeProcess.run(["identity"], environment: ["PEAT_FORMATION_SECRET": "  \(Self.secret)\n"])
        #expect(result.stdout == "node_id=peat-mesh-0 device_id=f15e5546858a28909aae7c0e24e0ffe1\n")
    }

    static let refusedSecrets: [(String, String?)] = [
        ("missing", nil),
        ("empty", ""),
        ("not base64", "this is not base64!"),
        ("missing padding", "dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc"),
        ("URL-safe alphabet", "dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc4_-__"),
        ("15 bytes", "YWJjZGVmZ2hpamtsbW5v"),
        ("1 byte", "QQ=="),
    ]

    @Test(arguments: refusedSecrets)
    func refusesBadSecretWithOneLineNamingTheVariable(_ name: String, _ secret: String?) throws {
        var environment = ["HOSTNAME": "peat-mesh-0"]
        environment["PEAT_FORMATION_SECRET"] = secret
        for arguments in [["identity"], []] {  // the identity command and the default run path
            let result = try NodeProcess.run(arguments, environment: environment)
            #expect(result.status != 0, "\(name) \(arguments)")
            #expect(result.stdout.isEmpty)
            #expect(result.stderrLines.count == 1)
            #expect(result.stderr.contains("PEAT_FORMATION_SECRET"))
            if let secret, !secret.isEmpty {
                #expect(!result.stderr.contains(secret), "the refusal must not echo the secret")
            }
        }
    }

    @Test func sixteenByteSecretIsAccepted() throws {
        let result = try NodeProcess.run(["identity"], environment: ["PEAT_FORMATION_SECRET": "YWJjZGVmZ2hpamtsbW5vcA=="])
        #expect(result.status == 0)
        #expect(result.stdout.hasPrefix("node_id=peat-mesh-0 device_id="))
    }

    /// swift-crypto (BoringSSL) as an independent implementation of the derivation.
    static func expectedDeviceID(secret: [UInt8], context: String) throws -> String {
        let seed = HKDF<SHA256>.deriveKey(inputKeyMaterial: SymmetricKey(data: secret), info: Data(context.utf8), outputByteCount: 32)
        let key = try seed.withUnsafeBytes { try Curve25519.Signing.PrivateKey(rawRepresentation: $0) }
        return SHA256.hash(data: key.publicKey.rawRepresentation).prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    @Test func agreesWithIndependentImplementationForArbitrarySecretsAndContexts() async throws {
        let contexts = Gen<Character>.character(in: "!"..."\u{10FF}").string(of: 1...48)
        await throwingPropertyCheck(count: 40, input: Gen<UInt8>.value().array(of: 16...128), contexts, Gen.bool) { secret, context, viaContextVariable in
            var environment = ["PEAT_FORMATION_SECRET": Data(secret).base64EncodedString()]
            environment[viaContextVariable ? "PEAT_IDENTITY_CONTEXT" : "HOSTNAME"] = context
            let result = try NodeProcess.run(["identity"], environment: environment)
            #expect(result.status == 0)
            #expect(result.stdout == "node_id=\(context) device_id=\(try Self.expectedDeviceID(secret: secret, context: context))\n")
        }
    }

    @Test func generatedSecretIsUsable() throws {
        let generated = try NodeProcess.run(["generate-secret"], environment: [:])
        #expect(generated.status == 0)
        let secret = generated.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(Data(base64Encoded: secret)?.count == 32)
        let identity = try NodeProcess.run(["identity"], environment: ["PEAT_FORMATION_SECRET": secret])
        #expect(identity.status == 0)
        let again = try NodeProcess.run(["generate-secret"], environment: [:])
        #expect(again.stdout != generated.stdout)
    }
}
