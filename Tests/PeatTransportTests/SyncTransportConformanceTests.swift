import PeatIdentity
import ServiceLifecycle
import Testing
@testable import PeatTransport

/// The behaviour every `SyncTransport` must have, run against each implementation.
@Suite(.timeLimit(.minutes(1)))
struct SyncTransportConformanceTests {
    enum Kind: String, CaseIterable, Sendable {
        case tls, inMemory
    }

    /// Makes transports of one kind that can reach each other.
    final class Factory: Sendable {
        let kind: Kind
        let network = InMemoryNetwork()

        init(_ kind: Kind) { self.kind = kind }

        func make(_ name: String, secret: [UInt8] = TransportHarness.secret, port: Int) throws -> (any SyncTransport & Service, PeerAddress) {
            switch kind {
            case .tls:
                let transport = try TransportHarness.transport(name, secret: secret) { $0.maximumPayloadSize = 4096 }
                return (transport, PeerAddress(host: "127.0.0.1", port: 0))
            case .inMemory:
                let address = PeerAddress(host: "10.99.0.\(port)", port: 11204)
                let transport = InMemorySyncTransport(
                    keypair: DeviceKeypair.fromSeed(secret, context: name), formationKey: FormationKey(secret: secret),
                    address: address, network: network, maximumPayloadSize: 4096)
                return (transport, address)
            }
        }

        /// Where a running transport can be dialled.
        func address(of transport: any SyncTransport, fallback: PeerAddress) async throws -> PeerAddress {
            if let tls = transport as? TLSSyncTransport { return try await tls.listeningAddress() }
            return fallback
        }
    }

    /// Runs two transports and `body` with (dialler, listener, listener's address).
    static func withPair(
        _ kind: Kind, listenerSecret: [UInt8] = TransportHarness.secret,
        _ body: (any SyncTransport, any SyncTransport, PeerAddress) async throws -> Void
    ) async throws {
        let factory = Factory(kind)
        let (a, addressA) = try factory.make("peat-mesh-0", port: 1)
        let (b, addressB) = try factory.make("peat-mesh-1", secret: listenerSecret, port: 2)
        _ = addressA
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await a.run() }
            group.addTask { try await b.run() }
            // In-memory listeners register when run() starts: wait for that before dialling.
            let address = try await factory.address(of: b, fallback: addressB)
            if kind == .inMemory {
                try await TransportHarness.eventually { factory.network.listener(at: address) != nil }
            }
            try await body(a, b, address)
            group.cancelAll()
        }
    }

    static func nextInbound(_ transport: any SyncTransport) async throws -> any SyncConnection {
        let stream = transport.inboundConnections
        return try await TransportHarness.withTimeout(.seconds(10)) {
            var iterator = stream.makeAsyncIterator()
            guard let connection = await iterator.next() else { throw TransportError(code: .transportClosed, message: "ended") }
            return connection
        }
    }

    @Test(arguments: Kind.allCases)
    func exchangesFramesInBothDirections(_ kind: Kind) async throws {
        try await Self.withPair(kind) { a, b, address in
            async let accepted = Self.nextInbound(b)
            let outbound = try await a.connect(to: address, expectedPeer: b.localIdentity.deviceID)
            let inbound = try await accepted
            #expect(outbound.peer == b.localIdentity && inbound.peer == a.localIdentity)
            async let echoed: [[UInt8]] = outbound.withFrames { frames, writer in
                for index in 0..<50 { try await writer.send([UInt8(index), 1, 2, 3]) }
                var received: [[UInt8]] = []
                for try await frame in frames {
                    received.append(frame)
                    if received.count == 50 { break }
                }
                return received
            }
            try await inbound.withFrames { frames, writer in
                var count = 0
                for try await frame in frames {
                    try await writer.send(frame.reversed())
                    count += 1
                    if count == 50 { break }
                }
            }
            let result = try await echoed
            #expect(result.count == 50)
            #expect(result.first == [3, 2, 1, 0] && result.last == [3, 2, 1, 49])
        }
    }

    @Test(arguments: Kind.allCases)
    func rejectsPeerWithAnotherFormationSecret(_ kind: Kind) async throws {
        try await Self.withPair(kind, listenerSecret: Array("some other formation entirely".utf8)) { a, _, address in
            await #expect {
                _ = try await a.connect(to: address, expectedPeer: nil)
            } throws: { error in
                (error as? TransportError)?.code == .notFormationMember
            }
        }
    }

    @Test(arguments: Kind.allCases)
    func rejectsUnexpectedIdentity(_ kind: Kind) async throws {
        try await Self.withPair(kind) { a, _, address in
            let someoneElse = DeviceKeypair.fromSeed(TransportHarness.secret, context: "peat-mesh-9").deviceID
            await #expect {
                _ = try await a.connect(to: address, expectedPeer: someoneElse)
            } throws: { error in
                (error as? TransportError)?.code == .unexpectedIdentity
            }
        }
    }

    @Test(arguments: Kind.allCases)
    func closingEndsThePeersInbound(_ kind: Kind) async throws {
        try await Self.withPair(kind) { a, b, address in
            async let accepted = Self.nextInbound(b)
            let outbound = try await a.connect(to: address, expectedPeer: nil)
            let inbound = try await accepted
            try await outbound.withFrames { _, writer in try await writer.send([42]) }  // returns: closes
            let received: [[UInt8]] = try await inbound.withFrames { frames, _ in
                var all: [[UInt8]] = []
                for try await frame in frames { all.append(frame) }
                return all
            }
            #expect(received == [[42]])
        }
    }

    @Test(arguments: Kind.allCases)
    func refusesSecondUseAndOversizedFrames(_ kind: Kind) async throws {
        try await Self.withPair(kind) { a, _, address in
            let connection = try await a.connect(to: address, expectedPeer: nil)
            await #expect {
                try await connection.withFrames { _, writer in try await writer.send([UInt8](repeating: 1, count: 4097)) }
            } throws: { error in
                (error as? TransportError)?.code == .frameTooLarge
            }
            await #expect(throws: TransportError.self) {
                try await connection.withFrames { _, _ in }
            }
        }
    }

    @Test(arguments: Kind.allCases)
    func refusesUnknownAddress(_ kind: Kind) async throws {
        try await Self.withPair(kind) { a, _, _ in
            await #expect(throws: TransportError.self) {
                _ = try await a.connect(to: PeerAddress(host: "127.0.0.1", port: 1), expectedPeer: nil)
            }
        }
    }
}
