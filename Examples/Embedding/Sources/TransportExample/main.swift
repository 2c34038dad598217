import PeatIdentity
import PeatTransport
import PeatTransportTesting
import ServiceLifecycle

// Two services of one formation exchange a frame over TLS 1.3 with mutual device authentication.
let secret = try FormationSecret(base64: "ZXhhbXBsZS1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc4")
func transport(_ context: String) throws -> TLSSyncTransport {
    try TLSSyncTransport(
        keypair: secret.deviceKeypair(context: context), formationKey: secret.formationKey(),
        configuration: .init(host: "127.0.0.1", port: 0))
}
/// Sends one frame and returns the first frame that comes back.
nonisolated func ask(_ connection: any SyncConnection, _ text: String) async throws -> String {
    try await connection.withFrames { inbound, outbound in
        try await outbound.send(Array(text.utf8))
        for try await frame in inbound { return String(decoding: frame, as: UTF8.self) }
        return ""
    }
}

let server = try transport("edge-7")
let client = try transport("edge-8")
try await withThrowingTaskGroup(of: Void.self) { group in
    group.addTask { try await server.run() }
    group.addTask { try await client.run() }
    group.addTask {
        for await connection in server.inboundConnections {
            try await connection.withFrames { inbound, outbound in
                for try await frame in inbound { try await outbound.send(frame.reversed()) }
            }
        }
    }
    let connection = try await client.connect(to: try await server.listeningAddress(), expectedPeer: server.localIdentity.deviceID)
    let reply = try await ask(connection, "hello")
    print("edge-8 heard \"\(reply)\" from \(connection.peer.deviceID)")
    guard reply == "olleh" else { fatalError("unexpected reply \(reply)") }
    group.cancelAll()
}

/// The suite an embedder runs against a transport of their own; here, the TLS transport.
struct LoopbackTLS: SyncTransportConformanceSubject {
    let maximumPayloadSize = 4096
    let unreachableAddress = PeerAddress(host: "127.0.0.1", port: 1)

    func makeTransport(name: String, secret: [UInt8]) throws -> any SyncTransport & Service {
        var configuration = TLSSyncTransport.Configuration(host: "127.0.0.1", port: 0)
        configuration.maximumPayloadSize = maximumPayloadSize
        return try TLSSyncTransport(
            keypair: DeviceKeypair.fromSeed(secret, context: name), formationKey: FormationKey(secret: secret), configuration: configuration)
    }

    func address(of transport: any SyncTransport & Service) async throws -> PeerAddress {
        try await (transport as! TLSSyncTransport).listeningAddress()
    }
}

for check in SyncTransportConformance.checks {
    try await check.run(on: LoopbackTLS())
    print("conforms: \(check)")
}
print("TransportExample: \(SyncTransportConformance.checks.count) checks passed")
