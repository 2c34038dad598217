import Foundation
import PeatIdentity
import PeatTransport
import Testing

/// The running node's sync port, exercised from outside with a real TLS transport.
@Suite(.timeLimit(.minutes(1)))
struct NodeSyncPortTests {
    static let secret = "dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc4"

    static func withNode(_ body: (PeerAddress, DeviceID) async throws -> Void) async throws {
        let dataDirectory = RunCommandTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
        let node = try NodeProcess(environment: RunCommandTests.environment(dataDirectory: dataDirectory))
        let output = try node.waitForOutput(containing: "Sync transport listening")
        let port = try #require(RunCommandTests.syncPort(in: output))
        // The node's device ID, predicted from the secret and HOSTNAME as an operator would.
        let expected = try FormationSecret(base64: secret).deviceKeypair(context: "peat-mesh-1").deviceID
        try await body(PeerAddress(host: "127.0.0.1", port: port), expected)
        node.signal(SIGTERM)
        let result = try node.finish()
        #expect(result.status == 0)
        #expect(!result.stdout.contains(secret))
    }

    static func client(secret: String, name: String) throws -> TLSSyncTransport {
        let formationSecret = try FormationSecret(base64: secret)
        return try TLSSyncTransport(
            keypair: formationSecret.deviceKeypair(context: name), formationKey: formationSecret.formationKey(),
            configuration: .init(host: "127.0.0.1", port: 0))
    }

    @discardableResult
    static func running<R: Sendable>(_ transport: TLSSyncTransport, _ body: () async throws -> R) async throws -> R {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await transport.run() }
            defer { group.cancelAll() }
            return try await body()
        }
    }

    @Test func formationMemberIsAuthenticatedAsThePredictedDevice() async throws {
        try await Self.withNode { address, expected in
            let member = try Self.client(secret: Self.secret, name: "peat-mesh-2")
            try await Self.running(member) {
                let connection = try await member.connect(to: address, expectedPeer: expected)
                #expect(connection.peer.deviceID == expected)
                await connection.close()
            }
        }
    }

    @Test func outsiderIsRejected() async throws {
        try await Self.withNode { address, _ in
            let outsider = try Self.client(secret: "b3RoZXItZm9ybWF0aW9uLXNlY3JldC0xMjM0NTY3OA==", name: "peat-mesh-2")
            try await Self.running(outsider) {
                await #expect {
                    _ = try await outsider.connect(to: address, expectedPeer: nil)
                } throws: { error in
                    (error as? TransportError)?.code == .notFormationMember
                }
            }
        }
    }
}
